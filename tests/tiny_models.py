"""Tiny random-weight diffusers pipelines built offline (nothing from a hub): a tokenizer
trained here on a few sentences, a tiny T5 encoder, tiny Wan transformer and VAE."""

from __future__ import annotations

from pathlib import Path

WORDS = ("max lena driver reporter waves smiles celebrating victory crowd cheering engines revving pit lane "
         "microphone trophy podium sunset track helmet says replies a the in on with his her at of and to")


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=["<pad>", "</s>", "<unk>"])
    tok.train_from_iterator([WORDS] * 4, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=64)


def _text_encoder_and_vae(tokenizer):
    import torch
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2,
                                               num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                                               eos_token_id=1, decoder_start_token_id=0))
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    return text_encoder, vae


def _transformer(in_channels: int, **extra):
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12,
                                 in_channels=in_channels, out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32,
                                 num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
                                 rope_max_seq_len=32, **extra)


def tiny_wan_t2v(folder: Path) -> Path:
    """Save a tiny WanPipeline to ``folder`` and return it."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanPipeline

    tokenizer = tiny_tokenizer()
    text_encoder, vae = _text_encoder_and_vae(tokenizer)
    transformer = _transformer(16)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                       scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    pipe.save_pretrained(folder)
    return folder


def tiny_wan_i2v(folder: Path) -> Path:
    """Save a tiny Wan 2.1-style WanImageToVideoPipeline (with a tiny CLIP image encoder)."""
    from diffusers import FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    tokenizer = tiny_tokenizer()
    text_encoder, vae = _text_encoder_and_vae(tokenizer)
    transformer = _transformer(36, image_dim=4)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=1))
    pipe = WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, transformer=transformer,
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), image_encoder=image_encoder,
                                   image_processor=CLIPImageProcessor(crop_size=32, size=32))
    pipe.save_pretrained(folder)
    return folder

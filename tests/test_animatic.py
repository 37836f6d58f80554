"""The animatic engine: exact clips, speech from the prompt, determinism, typed errors."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
import pytest

from engines import EngineInputError, get_engine
from engines.animatic import animatic_args
from media.probe import audio_samples, probe
from media.tts import check_voice, speak_to_wav
from tests.engine_contract import EngineContract, request
from tests.media import audio_pcm


class TestAnimaticContract(EngineContract):
    @pytest.fixture
    def engine(self):
        return get_engine("animatic")

    @pytest.fixture
    def bad_call(self, engine, tmp_path):
        broken = tmp_path / "broken.png"
        broken.write_bytes(b"not a png")
        return lambda out: engine.generate(request(image=str(broken)), out)


@pytest.fixture
def engine():
    return get_engine("animatic")


@pytest.mark.slow
def test_exact_size_fps_frames_and_samples(engine, tmp_path):
    result = engine.generate(request(width=576, height=896, fps=25, duration=3.0), tmp_path)
    info = probe(result.path, count_frames=True)
    assert (info.width, info.height, info.fps, info.video_frames) == (576, 896, 25.0, 75)
    assert (info.video_codec, info.audio_codec, info.audio_rate, info.audio_channels) == ("h264", "aac", 48000, 2)
    assert info.audio_duration == pytest.approx(3.0, abs=0.001)


def test_same_inputs_give_the_same_bytes(engine, tmp_path):
    a = engine.generate(request(), tmp_path / "a").path
    b = engine.generate(request(), tmp_path / "b").path
    digest = lambda p: hashlib.sha256(open(p, "rb").read()).hexdigest()  # noqa: E731
    assert digest(a) == digest(b)


def test_speech_is_spoken_and_silence_when_there_is_none(engine, tmp_path):
    spoken, rate = audio_pcm(engine.generate(request(), tmp_path / "s").path)
    quiet, _ = audio_pcm(engine.generate(request(prompt="Max waves."), tmp_path / "q").path)
    assert np.sqrt((spoken ** 2).mean()) > 0.02
    assert np.abs(quiet).max() < 1e-3


def test_long_speech_is_sped_up_to_fit(engine, tmp_path):
    words = " ".join(["bananas"] * 20)
    result = engine.generate(request(prompt=f"<S>{words}<E>", duration=2.0), tmp_path)
    pcm, rate = audio_pcm(result.path)
    tail = pcm[int(rate * 1.9):]
    assert len(pcm) == pytest.approx(2.0 * rate, abs=2048)
    assert np.abs(tail).max() < 0.5  # the line finished (or was cut) at the clip's end


def test_scene_audio_file_wins_over_tts(engine, tmp_path):
    wav = tmp_path / "line.wav"
    speak_to_wav("completely different words", wav, "en-us")
    result = engine.generate(request(audio=str(wav)), tmp_path / "o")
    assert probe(result.path).has_audio
    assert audio_samples(result.path) >= 96000


def test_scene_audio_plays_from_its_first_sample_to_the_clip_s_end(engine, tmp_path):
    """A scene's own recording got the TTS lead-in: it started 0.3 s late and its last 0.3 s
    were never heard."""
    from media import ffmpeg

    wav = tmp_path / "line.wav"                  # 1.7 s of 440 Hz, then 0.3 s of 1 kHz
    ffmpeg.run(["-f", "lavfi", "-i", "sine=f=440:sample_rate=48000:d=1.7", "-f", "lavfi", "-i",
                "sine=f=1000:sample_rate=48000:d=0.3", "-filter_complex", "[0:a][1:a]concat=n=2:v=0:a=1",
                "-ac", "2", str(wav)])
    result = engine.generate(request(audio=str(wav), duration=2.0), tmp_path / "o")
    pcm, rate = audio_pcm(result.path)
    mono = pcm.mean(axis=1) if pcm.ndim == 2 else pcm

    def strongest(a: float, b: float) -> float:
        part = mono[int(a * rate):int(b * rate)]
        spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part))))
        return float(np.fft.rfftfreq(len(part), 1 / rate)[spectrum.argmax()])

    assert strongest(0.05, 0.25) == pytest.approx(440, abs=15)       # heard from the start
    assert strongest(1.75, 1.95) == pytest.approx(1000, abs=15)      # and to its end


def test_no_image_gives_a_placeholder_card(engine, tmp_path):
    result = engine.generate(request(image=None), tmp_path)
    assert probe(result.path, count_frames=True).video_frames == 48


def test_unknown_voice_is_an_input_error(engine, tmp_path):
    with pytest.raises(EngineInputError, match="unknown TTS voice"):
        engine.generate(request(voice="zz-top"), tmp_path)


def test_voice_check():
    assert check_voice("en-us") is None and check_voice("en+f3") is None
    assert "unknown TTS voice" in check_voice("xx")
    assert "variant" in check_voice("en+nobody")


def test_tts_writes_a_real_wav(tmp_path):
    seconds = speak_to_wav("Hello from reelflow", tmp_path / "a.wav", "en")
    with wave.open(str(tmp_path / "a.wav")) as w:
        assert w.getnchannels() == 1 and w.getnframes() / w.getframerate() == pytest.approx(seconds)
    assert 0.5 < seconds < 3


def test_tts_writes_a_relative_path_where_this_process_means_it(tmp_path, monkeypatch):
    """The synthesis runs in a child whose working folder is the repository: a relative path is
    this process's, and a path that cannot be written says so (not a wave module AttributeError)."""
    from media.tts import TTSError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "rel").mkdir()
    speak_to_wav("Hello", Path("rel") / "a.wav", "en")
    assert (tmp_path / "rel" / "a.wav").stat().st_size > 1000
    with pytest.raises(TTSError, match=r"^cannot write speech to .*/missing/a\.wav: No such file or directory$"):
        speak_to_wav("Hello", Path("missing") / "a.wav", "en")


def test_motion_depends_on_seed():
    common = dict(still="s.png", caption="c.png", speech=None, ambience=False, width=64, height=64,
                  rate=24, frames=24, samples=48000, out="o.mp4")
    from fractions import Fraction
    common["rate"] = Fraction(24)
    graphs = {animatic_args(seed=s, **common)[animatic_args(seed=s, **common).index("-filter_complex") + 1]
              for s in range(4)}
    assert len(graphs) == 4


def test_a_second_speaker_speaks_in_their_own_voice(engine, tmp_path):
    """Both lines were spoken in the first character's voice (a German voice read the English
    reply; a voice with no dictionary made the whole clip silent)."""
    from media.soundtrack import TURN_GAP
    from media.tts import speak

    prompt = "Max waves. Max says <S>Guten Tag, wie geht es?<E>. Lena replies <S>I am fine, thank you<E>."
    result = engine.generate(request(prompt=prompt, voice="de", voice2="en-us", duration=4.0), tmp_path / "o")
    words = result.meta["words"]["words"]
    reply = [w for w in words if w["offset"] >= len("Guten Tag, wie geht es? ")]
    first = [w for w in words if w not in reply]
    alone = speak("I am fine, thank you", tmp_path / "alone.wav", "en-us").words
    assert [w["text"] for w in reply] == [w.text for w in alone]
    spans = [round(w["end"] - w["start"], 2) for w in reply]
    assert spans == pytest.approx([round(w.end - w.start, 2) for w in alone], abs=0.02)    # the en-us voice's pace
    assert reply[0]["start"] >= first[-1]["end"] + TURN_GAP - 0.001


def test_a_voice_that_speaks_nothing_is_refused():
    from media.tts import check_voice

    assert "has no dictionary" in check_voice("fo") and check_voice("en-us") is None and check_voice("nb") is None

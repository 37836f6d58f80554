"""Speech as audio for audio-driven model families (MultiTalk, InfiniteTalk, OmniAvatar): a
scene's own ``audio`` file wins; otherwise its line (and a second speaker's) is spoken by the
offline TTS in each character's voice. Plain functions (no Prefect): the cost estimate and the
storyboard use them without paying for Prefect's import."""

from __future__ import annotations

import hashlib
from pathlib import Path

from engines import EngineInputError, registry
from engines.adapters import family_of
from media import tts
from reelflow.settings import get_settings
from tasks.models import ClipPlan
from tasks.plan import clip_key


def needs_audio(plan: ClipPlan) -> bool:
    """Does the plan's engine take its speech as audio (as the engine declares), and has it none yet?"""
    return (plan.kind == "generate" and plan.request.audio is None
            and registry.needs_speech_audio(plan.engine, plan.model, plan.engine_params))


def spoken(text: str, voice: str, folder: Path) -> str:
    """A WAV of ``text`` in ``voice``, made once per (text, voice)."""
    digest = hashlib.sha256(f"{voice}\n{text}".encode()).hexdigest()[:24]
    path = folder / f"{digest}.wav"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".part.wav")
        tts.speak_to_wav(text, tmp, voice)
        tmp.replace(path)
    return str(path)


def with_speech(plan: ClipPlan, folder: Path) -> ClipPlan:
    """The plan with its speech as audio (and its key recomputed), if its family needs that."""
    if not needs_audio(plan):
        return plan
    if not plan.speech:
        raise EngineInputError(f"scene {plan.scene_id!r}: the {family_of(plan.model, plan.engine_params)} "
                               f"family is driven by speech; give the scene a speech line or an audio file")
    audio = spoken(plan.speech, plan.request.voice, folder)
    audio2 = spoken(plan.speech2, plan.voice2 or plan.request.voice, folder) if plan.speech2 else None
    request = plan.request.model_copy(update={"audio": audio, "audio2": audio2})
    return plan.model_copy(update={"request": request, "key": clip_key(request, plan.engine, plan.model)})


def speech_folder() -> Path:
    return Path(get_settings().work_dir).resolve() / "speech"

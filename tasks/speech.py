"""The synthesize_speech step: audio-driven model families (MultiTalk, InfiniteTalk,
OmniAvatar) take speech as audio, not text. A scene's own ``audio`` file wins; otherwise
its line (and a second speaker's) is spoken by the offline TTS in each character's voice.
The WAVs are cached by (text, voice) and become part of the clip's content key."""

from __future__ import annotations

from tasks.step import step

from tasks.models import ClipPlan
from tasks.spoken import needs_audio, speech_folder, spoken, with_speech

__all__ = ["needs_audio", "speech_folder", "spoken", "synthesize_speech", "with_speech"]


@step(task_run_name="synthesize-speech")
def synthesize_speech(chains: list[list[ClipPlan]]) -> list[list[ClipPlan]]:
    """Give every plan of an audio-driven family its speech as WAV files."""
    folder = speech_folder()
    return [[with_speech(plan, folder) for plan in chain] for chain in chains]

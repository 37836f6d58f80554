"""Media helpers shared by engines, tasks and flows: ffmpeg, probing, TTS, subtitles, images."""

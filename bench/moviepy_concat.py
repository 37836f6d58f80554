"""moviepy's ``concatenate_videoclips`` on the same clips (run by bench/turnaround.py with
an interpreter that has moviepy: ``pip install -e '.[bench]'``).

    python bench/moviepy_concat.py OUT WIDTH HEIGHT FPS CLIP...
"""

import sys

from moviepy import VideoFileClip, concatenate_videoclips


def main(out: str, width: int, height: int, fps: float, paths: list[str]) -> None:
    clips = []
    for path in paths:
        clip = VideoFileClip(path)
        scale = min(width / clip.w, height / clip.h)
        fitted = clip.resized(scale).with_background_color(size=(width, height), color=(0, 0, 0), pos="center")
        clips.append(fitted.with_fps(fps))
    final = concatenate_videoclips(clips, method="chain")
    final.write_videofile(out, fps=fps, codec="libx264", preset="veryfast", audio_codec="aac", audio_fps=48000,
                          audio_bitrate="192k", logger=None)
    for clip in clips:
        clip.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5:])

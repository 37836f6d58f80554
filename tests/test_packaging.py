"""The installed environment is consistent: every extra the suite uses resolves together."""

from __future__ import annotations

import pytest
import subprocess
import sys
from importlib.metadata import requires


@pytest.mark.slow
def test_pip_check_is_clean():
    proc = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_install_has_no_torch():
    base = [r for r in requires("reelflow") if "extra ==" not in r]
    assert not any(r.startswith(("torch", "diffusers")) for r in base)
    assert not any(r.startswith(("runpod", "gradio", "minio")) for r in base)


@pytest.mark.slow
def test_engines_import_nothing_heavy_at_package_import():
    code = ("import sys, engines, storage, flows.render; "
            "heavy = [m for m in ('torch', 'diffusers', 'gradio_client', 'runpod', 'minio') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_command_starts_no_helper_process_to_find_its_tools():
    """The bundled ffmpeg is found without running it, and the C library without `ldconfig -p`
    (together about 30 ms before every command's first ffmpeg)."""
    code = ("import subprocess, sys\n"
            "started = []\n"
            "real = subprocess.Popen.__init__\n"
            "subprocess.Popen.__init__ = lambda self, args, *a, **k: started.append(args) or real(self, args, *a, **k)\n"
            "import imageio_ffmpeg, reelflow.process, reelflow.heap\n"
            "from media import ffmpeg\n"
            "found = ffmpeg.ffmpeg_binary()\n"
            "print(started)\n"
            "sys.exit(0 if not started and found == imageio_ffmpeg.get_ffmpeg_exe() else 1)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr

"""binder/ is enough: a fresh virtual environment installed from binder/requirements.txt runs every
notebook (nbval, as in CI) and has Voila's server extension for the /voila route."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_binder_environment_runs_the_notebooks(tmp_path):
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == f"python-3.{sys.version_info.minor}"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run([python, "-m", "pip", "install", "--quiet", "-r", "binder/requirements.txt", "nbval"],
                             cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert install.returncode == 0, install.stderr[-3000:]
    extensions = subprocess.run([str(venv / "bin" / "jupyter"), "server", "extension", "list"],
                                capture_output=True, text=True, timeout=120)
    assert "voila" in extensions.stdout + extensions.stderr
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "notebooks"],
                         cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:]
    assert " passed" in run.stdout and "failed" not in run.stdout

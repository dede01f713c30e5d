"""Third-party tools the tests run in virtual environments of their own (tests/.venvs/NAME), so that their
dependencies never meet toolbridge's: made with uv on first use (``make node`` makes them before the suite),
once even when several pytest-xdist workers ask at the same time. Their bytecode is compiled when they are
made: with PYTHONDONTWRITEBYTECODE set, every process started from them would compile its imports again."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def venv_python(name: str, spec: Sequence[str]) -> str:
    """The interpreter of tests/.venvs/``name`` with ``spec`` installed, made when it is missing."""
    venv = ROOT / "tests" / ".venvs" / name
    python, ready = venv / "bin" / "python", venv / ".ready"
    if ready.exists():
        return str(python)
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be making it: wait for it
        if not ready.exists():
            uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
            if not Path(uv).exists():
                pytest.fail(f"making tests/.venvs/{name} needs uv: run 'make env'")
            subprocess.run([uv, "venv", "-q", "--allow-existing", "--python", "3.11", str(venv)], check=True)
            subprocess.run(
                [uv, "pip", "install", "-q", "--compile-bytecode", "--python", str(python), *spec],
                check=True,
                timeout=600,
            )
            ready.touch()
    return str(python)

"""One way to run the ``ocibuild`` command in a test: a subprocess of this Python, its own cache."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

EPOCH = "1700000000"  # the SOURCE_DATE_EPOCH of every run unless a test says otherwise


def ocibuild(*args: str | Path, cache: Path, check: bool = True, cwd: Path | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``python -m ocibuild ARGS`` with ``OCIBUILD_CACHE=cache`` and ``SOURCE_DATE_EPOCH=1700000000``
    (``env`` adds or overrides); AssertionError with its stderr when it fails and ``check``."""
    full = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc

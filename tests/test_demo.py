"""The README's first command works as written (the demo: setup, base from a Debian package, build, run)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_first_command(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    assert "bash examples/demo.sh" in readme.split("```bash")[1].split("```")[0]
    env = {**os.environ, "OUT": str(tmp_path / "out"), "OCIBUILD_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", "examples/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "Hello from ocibuild on x86_64"
    for name in ("hello/index.json", "hello.tar", "hello-docker.tar", "bases/busybox/index.json"):
        assert (tmp_path / "out" / name).exists(), name

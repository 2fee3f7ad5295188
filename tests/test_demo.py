"""The README's first command works as written: set up, train, build linux/amd64 + linux/arm64 on a base
made from Debian packages, push to a local registry, run with runc, predict over HTTP, edit and re-push."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_readme_first_command(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    first = readme.split("```bash")[1].split("```")[0].strip().splitlines()[0]
    assert first.split("#")[0].strip() == "bash examples/demo.sh"
    env = {**os.environ, "OUT": str(tmp_path / "out"), "OCIBUILD_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(["bash", "examples/demo.sh"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=1500)
    out = proc.stdout
    assert proc.returncode == 0, out[-5000:]
    assert 'healthz: {"status": "ok", "version": "1"}' in out
    assert 'predict: {"predictions": ["setosa", "virginica"]}' in out
    assert "server state after SIGTERM: stopped" in out
    assert (tmp_path / "out" / "iris" / "index.json").is_file()
    # after the one-line edit only the code layer (shared by both platforms) and the two configs are uploaded,
    # and the evidence that names them: an SBOM per platform and the provenance
    edit = out.split("== 5.")[1]
    uploaded = re.findall(r"^push\s+(\w+)\s+uploaded", edit, re.MULTILINE)
    assert len(uploaded) == 6, edit
    assert "model" in edit and re.search(r"^layer\s+model\s+cached", edit, re.MULTILINE)
    assert re.search(r"^layer\s+code\s+built", edit, re.MULTILINE)

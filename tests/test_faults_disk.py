"""A full disk, temp files of killed builds, and bounded memory while writing (issue 12, point 5).

The cache or the output folder is a small tmpfs (CI runs as root) and the project has a layer larger
than it: the build fails with exactly one line ``no space left on device while writing <path>``,
no traceback, nothing left in the store's ``tmp/`` or beside / inside the output, and once there is
space (the tmpfs remounted bigger) the same build succeeds. Temp files older than a few hours in the
store and beside outputs are swept, fresher ones kept. A docker archive of a 200 MB layer is written
with a peak RSS far below that.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.hostile import run_measured
from harness.layout import images_of_index
from harness.validate import validate_layout, validate_output

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
DAY = 24 * 3600


class Tmpfs:
    """Mounts small tmpfs file systems; every one is unmounted at teardown."""

    def __init__(self) -> None:
        self.mounts: list[Path] = []

    def __call__(self, where: Path, size: str) -> Path:
        assert os.geteuid() == 0, "the disk-full tests mount a tmpfs: run them as root (CI does)"
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
        self.mounts.append(where)
        return where

    @staticmethod
    def resize(where: Path, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(where)], check=True)

    def close(self) -> None:
        for where in reversed(self.mounts):
            if subprocess.run(["umount", str(where)], check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def tmpfs() -> Iterator[Tmpfs]:
    mounts = Tmpfs()
    try:
        yield mounts
    finally:
        mounts.close()


def _build(project: Path, *args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "0"}
    return subprocess.run([sys.executable, "-m", "ocibuild", "build", str(project), "--base", "scratch",
                           *map(str, args)], capture_output=True, text=True, env=env, timeout=300)


def _assert_disk_full(proc: subprocess.CompletedProcess[str], where: Path, advice: str) -> str:
    """Exit 1, exactly one error line, saying ``no space left on device while writing`` a file under
    ``where`` and what to do; no traceback, no misleading "cannot read"."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("ocibuild: error: "), proc.stderr
    assert "no space left on device while writing " + str(where) in lines[0], lines[0]
    assert advice in lines[0] and "cannot read" not in lines[0], lines[0]
    return lines[0]


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp-" in p.name or p.name.startswith(("blob-", ".layer-"))]


@pytest.fixture
def big_project(tmp_path: Path) -> Path:
    """The hello example plus 30 MB that does not compress: a layer larger than a 20 MB tmpfs."""
    project = tmp_path / "proj"
    shutil.copytree(HELLO, project)
    with (project / "weights.bin").open("wb") as f:
        for _ in range(30):
            f.write(os.urandom(1 << 20))
    return project


# ---------------------------------------------------------------------------------------------------
# the cache is full
# ---------------------------------------------------------------------------------------------------

def test_full_cache_is_one_clear_error_and_the_next_build_works(tmp_path: Path, tmpfs: Tmpfs,
                                                                big_project: Path) -> None:
    cache = tmpfs(tmp_path / "cache", "20m")
    out = tmp_path / "out"
    proc = _build(big_project, "--output", f"oci:{out}:v1", cache=cache)
    _assert_disk_full(proc, cache, "--cache-dir")
    assert list((cache / "tmp").iterdir()) == [], "the failed layer's temp blob stayed in the store"
    assert not out.exists()
    # once there is room, the same store builds (nothing stale in it trips the next build)
    tmpfs.resize(cache, "100m")
    again = _build(big_project, "--output", f"oci:{out}:v1", cache=cache)
    assert again.returncode == 0, again.stderr
    validate_layout(out)
    assert list((cache / "tmp").iterdir()) == []


def test_a_full_disk_while_tarring_is_not_a_read_error_of_the_source(tmp_path: Path, tmpfs: Tmpfs) -> None:
    """The tar writer lets the output's ENOSPC out as it is (for the caller to name its file) instead
    of reporting ``cannot read SOURCE`` for the file it was copying."""
    from ocibuild.errors import LayerError
    from ocibuild.layers.tarwriter import TarEntry, write_tar

    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(3 << 20))
    disk = tmpfs(tmp_path / "disk", "1m")
    with (disk / "layer.tar").open("wb", buffering=0) as out, pytest.raises(OSError) as failed:
        write_tar([TarEntry(path="weights.bin", kind="file", size=3 << 20, source=source)], out)
    assert failed.value.errno == errno.ENOSPC and not isinstance(failed.value, LayerError)
    with pytest.raises(LayerError, match="cannot read"):  # a source that cannot be read still says so
        write_tar([TarEntry(path="x", kind="file", size=1, source=tmp_path / "missing")], io.BytesIO())


# ---------------------------------------------------------------------------------------------------
# the output folder is full
# ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_full_output_disk_is_one_clear_error_and_leaves_nothing(tmp_path: Path, tmpfs: Tmpfs,
                                                                big_project: Path, kind: str) -> None:
    disk = tmpfs(tmp_path / "disk", "20m")
    target = disk / ("image" if kind == "oci" else "image.tar")
    output = f"{kind}:{target}" + (":v1" if kind == "oci" else "")
    proc = _build(big_project, "--output", output, cache=tmp_path / "cache")
    _assert_disk_full(proc, target, "choose another output")
    assert list(disk.iterdir()) == [], "a failed write left something in the output folder"
    assert list((tmp_path / "cache" / "tmp").iterdir()) == []
    tmpfs.resize(disk, "100m")
    again = _build(big_project, "--output", output, cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    validate_output(target)
    assert _temp_files(disk) == []


def test_full_disk_while_adding_a_tag_keeps_the_layout_as_it_was(tmp_path: Path, tmpfs: Tmpfs,
                                                                 big_project: Path) -> None:
    disk = tmpfs(tmp_path / "disk", "20m")
    layout = disk / "image"
    small = _build(HELLO, "--output", f"oci:{layout}:small", cache=tmp_path / "cache")
    assert small.returncode == 0, small.stderr
    before = {p.relative_to(layout): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    proc = _build(big_project, "--output", f"oci:{layout}:big", cache=tmp_path / "cache")
    _assert_disk_full(proc, layout, "choose another output")
    after = {p.relative_to(layout): p.read_bytes() for p in layout.rglob("*") if p.is_file()}
    assert after == before, "the failed write changed the layout (blobs added or index.json touched)"
    tmpfs.resize(disk, "100m")
    again = _build(big_project, "--output", f"oci:{layout}:big", cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]
            for m in images_of_index(json.loads((layout / "index.json").read_text()))}
    assert tags == {"small", "big"}
    validate_layout(layout)


# ---------------------------------------------------------------------------------------------------
# temp files of killed builds are swept once stale
# ---------------------------------------------------------------------------------------------------

def _make(path: Path, age: float, folder: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        path.mkdir()
        (path / "inside").write_bytes(b"x" * 100)
        os.utime(path / "inside", (time.time() - age, time.time() - age))
    else:
        path.write_bytes(b"partial")
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_stale_temp_files_are_swept_fresh_ones_kept(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / "out"
    layout = out / "lay"
    first = _build(HELLO, "--output", f"oci:{layout}:v1", cache=cache)
    assert first.returncode == 0, first.stderr
    blobs = layout / "blobs" / "sha256"
    stale = [
        _make(cache / "tmp" / "blob-killed", DAY),
        _make(cache / "tmp" / ".0123abcd.json.tmp-killed", DAY),
        _make(cache / "tmp" / "sdist-killed", DAY, folder=True),
        _make(out / ".img.tar.tmp-killed", DAY),
        _make(out / ".lay.tmp-killed", DAY, folder=True),  # the old rename-into-place layout writer's
        _make(layout / ".index.json.tmp-killed", DAY),
        _make(blobs / ("." + "ab" * 32 + ".tmp-killed"), DAY),
    ]
    fresh = [
        _make(cache / "tmp" / "blob-running", 60),
        _make(out / ".img.tar.tmp-running", 60),
        _make(layout / ".index.json.tmp-running", 60),
        _make(blobs / ("." + "cd" * 32 + ".tmp-running"), 60),
        _make(out / ".other.tar.tmp-killed", DAY),  # beside another output: not this build's to sweep
    ]
    busy = _make(cache / "tmp" / "sdist-busy", DAY, folder=True)  # an old folder still being written to
    os.utime(busy / "inside")
    proc = _build(HELLO, "--output", f"oci:{layout}:v2", "--output", f"oci-archive:{out / 'img.tar'}",
                  "--label", "second=yes", cache=cache)
    assert proc.returncode == 0, proc.stderr
    assert [p for p in stale if p.exists()] == []
    assert [p for p in fresh if not p.exists()] == [] and (busy / "inside").exists()
    validate_layout(layout)
    validate_output(out / "img.tar")


# ---------------------------------------------------------------------------------------------------
# bounded memory: a docker archive (layers decompressed while written) of a 200 MB layer
# ---------------------------------------------------------------------------------------------------

def _peak_rss_mb(cmd: list[str], env: dict[str, str], log: Path) -> tuple[int, float]:
    """Run ``cmd``; return its exit status and its own peak RSS in MB (see ``harness.hostile.run_measured``)."""
    measured = run_measured(cmd, env=env, timeout=600, address_space=None)
    log.write_text(measured.stdout + measured.stderr)
    return measured.returncode, measured.max_rss / 1024 / 1024


@pytest.mark.parametrize(("kind", "compression"), [("docker-archive", "gzip"), ("oci-archive", "none")])
def test_archive_of_a_big_layer_is_written_in_bounded_memory(tmp_path: Path, kind: str, compression: str) -> None:
    """docker-archive: the gzip layer is decompressed (twice: size, then content) while written;
    oci-archive: a 200 MB uncompressed blob is copied and verified on the way."""
    project = tmp_path / "proj"
    shutil.copytree(HELLO, project)
    with (project / "big.bin").open("wb") as f:
        f.truncate(200 << 20)  # 200 MB of zeros: a 2 MB gzip layer that decompresses to 200 MB
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp_path / "cache"), "SOURCE_DATE_EPOCH": "0"}
    cache_only = [sys.executable, "-m", "ocibuild", "build", str(project), "--compression", compression,
                  "--output", f"oci:{tmp_path / 'l'}"]
    assert subprocess.run(cache_only, env=env, capture_output=True, timeout=300).returncode == 0
    archive = tmp_path / "image.tar"
    cmd = [sys.executable, "-m", "ocibuild", "build", str(project), "--compression", compression,
           "--output", f"{kind}:{archive}"]
    status, peak = _peak_rss_mb(cmd, env, tmp_path / "log")
    assert status == 0, (tmp_path / "log").read_text()
    assert archive.stat().st_size > 200 << 20
    assert peak < 100, f"peak RSS {peak:.0f} MB writing a {kind} of a 200 MB layer"
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(tmp_path / "l")  # the conformance check reads the archive; the layout is not needed

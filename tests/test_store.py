"""The content store: verified atomic writes, selectors, and two builds at once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.errors import DigestMismatch, StoreError
from ocibuild.spec import Digest
from ocibuild.store import ContentStore, default_cache_dir

REPO = Path(__file__).resolve().parents[1]


def test_put_and_read_verified(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    d = store.put_bytes(b"hello")
    assert d == Digest.of(b"hello") and store.has(d) and store.read_bytes(d) == b"hello"
    assert store.blob_path(d) == tmp_path / "blobs" / "sha256" / hashlib.sha256(b"hello").hexdigest()


def test_wrong_digest_or_size_keeps_nothing(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    src = tmp_path / "src.bin"
    src.write_bytes(b"content")
    with pytest.raises(DigestMismatch, match="expected"):
        store.put_file(src, Digest.of(b"other"))
    with pytest.raises(DigestMismatch, match="expected 3"):
        store.put_file(src, Digest.of(b"content"), 3)
    assert list(store.iter_blobs()) == [] and list(store.tmp_dir.iterdir()) == []


def test_corrupted_blob_is_detected_on_read(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    d = store.put_bytes(b"hello")
    store.blob_path(d).write_bytes(b"HELLO")
    with pytest.raises(DigestMismatch, match="corrupt"):
        store.read_bytes(d)
    with pytest.raises(StoreError, match="not in the cache"):
        store.open(Digest.of(b"missing"))


def test_selectors_need_their_blob(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    d = store.put_bytes(b"layer")
    store.put_selector("k" * 64, {"digest": str(d), "size": 5, "diff_id": str(d)})
    assert store.get_selector("k" * 64) == {"digest": str(d), "size": 5, "diff_id": str(d)}
    store.blob_path(d).unlink()
    assert store.get_selector("k" * 64) is None  # a selector whose blob vanished is a miss, not an error
    (tmp_path / "selectors" / ("j" * 64 + ".json")).write_text("{truncated")
    assert store.get_selector("j" * 64) is None


def test_unusable_cache_dir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot use cache directory"):
        ContentStore(tmp_path / "file" / "cache")


def test_default_cache_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OCIBUILD_CACHE", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("OCIBUILD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ocibuild"


def test_two_builds_at_once_share_one_store(tmp_path: Path) -> None:
    """Two processes build overlapping images into the same store at the same time."""
    project = tmp_path / "p"
    project.mkdir()
    for i in range(200):
        (project / f"f{i:03}.txt").write_bytes(os.urandom(20_000))
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp_path / "store"), "SOURCE_DATE_EPOCH": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "ocibuild", "build", str(project), "--json", "--base", "scratch",
                               "--output", f"oci:{tmp_path / f'out{i}'}:t"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    digests = {json.loads(out)["digest"] for out, _ in results}
    assert len(digests) == 1
    store = ContentStore(tmp_path / "store")
    for d in store.iter_blobs():
        assert hashlib.sha256(store.blob_path(d).read_bytes()).hexdigest() == d.hex
    assert list(store.tmp_dir.iterdir()) == []

"""ocibuild.layers: the deterministic tar writer, file trees, ignore rules, compression, layer cache."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from ocibuild.errors import LayerError
from ocibuild.layers import Compression, IgnoreRules, TarEntry, TarOptions, build_layer, collect, write_tar
from ocibuild.store import ContentStore


def _tar(entries: list[TarEntry], options: TarOptions = TarOptions()) -> bytes:
    buf = io.BytesIO()
    write_tar(entries, buf, options)
    return buf.getvalue()


def _members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_tar_sorted_with_parents_and_normalised_metadata() -> None:
    data = _tar([TarEntry.file("/opt/app/z.py", b"z"), TarEntry.file("opt/app/a.py", b"a", executable=True),
                 TarEntry.symlink("opt/app/link", "a.py")], TarOptions(uid=0, gid=0, mtime=1234))
    members = _members(data)
    assert [m.name for m in members] == ["opt", "opt/app", "opt/app/a.py", "opt/app/link", "opt/app/z.py"]
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", 1234)
        assert not m.pax_headers
    modes = {m.name: m.mode for m in members}
    assert modes == {"opt": 0o755, "opt/app": 0o755, "opt/app/a.py": 0o755, "opt/app/link": 0o777,
                     "opt/app/z.py": 0o644}
    assert members[3].issym() and members[3].linkname == "a.py"
    assert len(data) % 10240 == 0
    assert b"PaxHeader" not in data and b"atime" not in data


def test_tar_uid_gid_configurable_and_long_names_deterministic() -> None:
    long = "d/" + "x" * 150 + ".txt"
    a = _tar([TarEntry.file(long, b"1")], TarOptions(uid=1000, gid=1001))
    assert a == _tar([TarEntry.file(long, b"1")], TarOptions(uid=1000, gid=1001))
    m = _members(a)[-1]
    assert (m.name, m.uid, m.gid) == (long, 1000, 1001)


@pytest.mark.parametrize("path", ["../etc/passwd", "a/../../b"])
def test_tar_rejects_paths_escaping_root(path: str) -> None:
    with pytest.raises(LayerError, match="escapes"):
        _tar([TarEntry.file(path, b"x")])


def test_tar_rejects_duplicate_files() -> None:
    with pytest.raises(LayerError, match="two entries"):
        _tar([TarEntry.file("a", b"1"), TarEntry.file("/a", b"2")])


def _tree(tmp: Path) -> Path:
    src = tmp / "src"
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref")
    (src / "pkg" / "__pycache__" / "m.cpython-311.pyc").write_bytes(b"pyc")
    (src / "pkg" / "m.py").write_text("print(1)\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o700)
    (src / "notes.md").write_text("n")
    (src / "README.md").write_text("r")
    os.symlink("pkg/m.py", src / "alias.py")
    return src


def test_collect_tree_defaults_and_modes(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    entries = {e.path: e for e in collect(src, "/app")}
    assert sorted(entries) == ["app", "app/README.md", "app/alias.py", "app/notes.md", "app/pkg", "app/pkg/m.py",
                               "app/run.sh"]
    assert entries["app/run.sh"].mode == 0o755 and entries["app/pkg/m.py"].mode == 0o644
    assert entries["app/alias.py"].kind == "symlink" and entries["app/alias.py"].linkname == "pkg/m.py"


def test_collect_ignore_file_excludes_and_negation(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    (src / ".ociignore").write_text("# docs\n*.md\n!README.md\n")
    paths = {e.path for e in collect(src, "/app", excludes=["pkg"])}
    assert "app/README.md" in paths and "app/notes.md" not in paths
    assert not any(p.startswith("app/pkg") for p in paths)


def test_collect_single_file(tmp_path: Path) -> None:
    f = tmp_path / "model.bin"
    f.write_bytes(b"w" * 10)
    assert [e.path for e in collect(f, "/models/m.bin")] == ["models/m.bin"]
    assert [e.path for e in collect(f, "/models/")] == ["models/model.bin"]


@pytest.mark.parametrize(("target", "message"), [("/etc/passwd", "absolute path"), ("../../outside", "escapes")])
def test_collect_rejects_escaping_symlinks(tmp_path: Path, target: str, message: str) -> None:
    src = _tree(tmp_path)
    os.symlink(target, src / "pkg" / "bad")
    with pytest.raises(LayerError, match=message):
        collect(src, "/app")


def test_collect_rejects_fifo_and_missing_source(tmp_path: Path) -> None:
    src = _tree(tmp_path)
    os.mkfifo(src / "pipe")
    with pytest.raises(LayerError, match="device, FIFO or socket"):
        collect(src, "/app")
    with pytest.raises(LayerError, match="does not exist"):
        collect(tmp_path / "nope", "/app")
    with pytest.raises(LayerError, match="absolute path"):
        collect(tmp_path / "src" / "README.md", "app")


@pytest.mark.parametrize(("patterns", "path", "excluded"), [
    (["*.md"], "a.md", True),
    (["*.md"], "docs/a.md", False),
    (["**/*.md"], "docs/a.md", True),
    (["docs"], "docs/x/y.txt", True),
    (["docs/"], "docs/x", True),
    (["/docs"], "docs", True),
    (["./docs"], "docs", True),
    (["d?cs"], "docs", True),
    (["[a-c]*.txt"], "b.txt", True),
    (["[!a-c]*.txt"], "b.txt", False),
    (["*.md", "!keep.md"], "keep.md", False),
    (["!keep.md", "*.md"], "keep.md", True),
    (["**/__pycache__"], "a/b/__pycache__/x.pyc", True),
    (["a/**/z"], "a/b/c/z", True),
    (["a/**/z"], "a/z", True),
    (["# comment"], "# comment", False),
    (["x"], "xy", False),
])
def test_ignore_rules(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreRules(patterns).excluded(path) is excluded


def test_gzip_is_deterministic_and_standard() -> None:
    payload = os.urandom(1 << 16) + b"abc" * 300_000
    c = Compression.parse("gzip")
    out = []
    for _ in range(2):
        comp = c.compressor()
        out.append(b"".join([comp.compress(payload[:1000]), comp.compress(payload[1000:]), comp.flush()]))
    assert out[0] == out[1]
    assert out[0][:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # no mtime, no name
    assert gzip.decompress(out[0]) == payload


def test_zstd_roundtrip_and_determinism() -> None:
    payload = b"model weights " * 200_000
    c = Compression.parse("zstd:3")
    blobs = []
    for _ in range(2):
        comp = c.compressor()
        blobs.append(comp.compress(payload) + comp.flush())
    assert blobs[0] == blobs[1]
    assert zstandard.ZstdDecompressor().decompressobj().decompress(blobs[0]) == payload


@pytest.mark.parametrize("text", ["brotli", "gzip:0", "gzip:10", "zstd:x", "zstd:20"])
def test_compression_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="compression"):
        Compression.parse(text)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_build_layer_digests_and_cache(tmp_path: Path, compression: str) -> None:
    store = ContentStore(tmp_path / "store")
    src = _tree(tmp_path)
    comp = Compression.parse(compression)
    first = build_layer(collect(src, "/app"), store, compression=comp)
    assert not first.cached
    blob = store.blob_path(first.descriptor.digest).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == first.descriptor.digest.hex
    assert len(blob) == first.descriptor.size
    raw = {"gzip": gzip.decompress, "none": bytes,
           "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)}[compression](blob)
    assert hashlib.sha256(raw).hexdigest() == first.diff_id.hex
    assert first.descriptor.media_type == comp.media_type
    again = build_layer(collect(src, "/app"), store, compression=comp)
    assert again.cached and again.descriptor == first.descriptor and again.diff_id == first.diff_id
    (src / "pkg" / "m.py").write_text("print(2)\n")
    changed = build_layer(collect(src, "/app"), store, compression=comp)
    assert not changed.cached and changed.diff_id != first.diff_id


def test_build_layer_leaves_no_temp_files_on_error(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    entry = TarEntry(path="a", kind="file", size=5, source=tmp_path / "missing")
    with pytest.raises(LayerError):
        build_layer([entry], store, use_cache=False)
    assert list(store.tmp_dir.iterdir()) == []
    assert list(store.iter_blobs()) == []


@pytest.mark.parametrize("compression", ["gzip:1", "zstd:3"])
def test_compressed_bytes_do_not_depend_on_write_sizes(compression: str) -> None:
    """The pipeline re-cuts tar output into fixed chunks, so tarfile's write pattern cannot leak in."""
    from ocibuild.layers.builder import _Pipeline

    payload = os.urandom(1 << 19) * 5 + b"tail" * 1000

    def run(step: int) -> bytes:
        out = io.BytesIO()
        pipe = _Pipeline(Compression.parse(compression).compressor(), out)
        for i in range(0, len(payload), step):
            pipe.write(payload[i:i + step])
        pipe.close()
        assert pipe.diff.hexdigest() == hashlib.sha256(payload).hexdigest()
        return out.getvalue()

    assert run(512) == run(65536) == run(3 << 20)

"""ocibuild.imagefs: the merged filesystem of an image's layers (whiteouts, opaque dirs, links)."""

from __future__ import annotations

import ast
import gzip
import io
import sys
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, BinaryIO

import pytest

from ocibuild.errors import SourceError
from ocibuild.image import Layer, MemoryImage, store_layer
from ocibuild.imagefs import Entry, MergedView, follow_symlinks, merged_view, read_upto
from ocibuild.layers import Compression, TarEntry, build_layer
from ocibuild.spec import ContainerConfig, Descriptor, Digest, ImageConfig, MediaType, Platform
from ocibuild.store import ContentStore

Member = tuple[str, str, str]  # (kind, path, data or link target)


def f(path: str, data: str = "x") -> Member:
    return ("file", path, data)


def d(path: str) -> Member:
    return ("dir", path, "")


def ln(path: str, target: str) -> Member:
    return ("symlink", path, target)


def hl(path: str, target: str) -> Member:
    return ("hardlink", path, target)


def wh(path: str) -> Member:
    """A whiteout of ``path``: ``dir/.wh.name``."""
    parent, _, name = path.rpartition("/")
    return f(f"{parent}/.wh.{name}" if parent else f".wh.{name}", "")


def opq(directory: str) -> Member:
    return f(f"{directory}/.wh..wh..opq", "")


def tar_bytes(members: list[Member]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, data in members:
            info = tarfile.TarInfo(path)
            if kind == "file":
                raw = data.encode()
                info.size, info.mode = len(raw), 0o644
                tar.addfile(info, io.BytesIO(raw))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            info.mode, info.linkname = 0o755, data
            tar.addfile(info)
    return buf.getvalue()


def put_layer(store: ContentStore, raw: bytes) -> Layer:
    blob = gzip.compress(raw, mtime=0) if raw else raw
    digest = store.put_bytes(blob)
    desc = Descriptor(media_type=MediaType.OCI_LAYER_GZIP, digest=digest, size=len(blob))
    return store_layer(store, desc, Digest.of(raw))


def image_of(layers: list[Layer]) -> MemoryImage:
    config = ImageConfig(platform=Platform.parse("linux/amd64"), config=ContainerConfig(),
                         diff_ids=tuple(layer.diff_id for layer in layers))
    return MemoryImage.assemble(config, layers)


def make_image(store: ContentStore, layers: list[list[Member]]) -> MemoryImage:
    return image_of([put_layer(store, tar_bytes(members)) for members in layers])


def summary(view: MergedView) -> dict[str, str]:
    """path -> "file:<data>" / "dir" / "symlink:<target>" / "hardlink:<target>", for short assertions."""
    out: dict[str, str] = {}
    for path, entry in sorted(view.items()):
        if entry.kind == "file":
            out[path] = f"file:{entry.data.decode() if entry.data is not None else '?'}"
        elif entry.kind in ("symlink", "hardlink"):
            out[path] = f"{entry.kind}:{entry.linkname}"
        else:
            out[path] = entry.kind
    return out


def want_all(_path: str) -> bool:
    return True


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


# --------------------------------------------------------------------------------------------------
# layering rules
# --------------------------------------------------------------------------------------------------

MERGE_CASES: list[tuple[str, list[list[Member]], dict[str, str]]] = [
    ("whiteout-of-a-file",
     [[d("a"), f("a/x"), f("a/y")], [wh("a/x")]],
     {"/a": "dir", "/a/y": "file:x"}),
    ("whiteout-of-a-directory-removes-its-tree",
     [[d("a"), d("a/b"), f("a/b/c"), f("a/d"), f("keep")], [wh("a")]],
     {"/keep": "file:x"}),
    ("whiteout-of-something-absent-is-harmless",
     [[f("a/x")], [wh("a/nothing"), wh("zzz")]],
     {"/a/x": "file:x"}),
    ("whiteout-applies-to-lower-layers-only",
     [[f("a/x", "old")], [f("a/x", "new"), wh("a/x")]],
     {"/a/x": "file:new"}),
    ("opaque-directory-hides-lower-entries",
     [[d("a"), f("a/x"), d("a/sub"), f("a/sub/y"), f("b")], [d("a"), opq("a"), f("a/z")]],
     {"/a": "dir", "/a/z": "file:x", "/b": "file:x"}),
    ("opaque-marker-after-its-layer's-own-entries",
     [[f("a/x")], [f("a/new"), opq("a"), f("a/later")]],
     {"/a/new": "file:x", "/a/later": "file:x"}),
    ("opaque-root",
     [[f("a/x"), f("b")], [opq(""), f("c")]],
     {"/c": "file:x"}),
    ("opaque-directory-with-nothing-new",
     [[f("a/x"), f("ab/y")], [opq("a")]],
     {"/ab/y": "file:x"}),
    ("re-adding-after-whiteout",
     [[f("a/x", "1")], [wh("a/x")], [f("a/x", "3")]],
     {"/a/x": "file:3"}),
    ("re-adding-a-directory-after-whiteout-starts-empty",
     [[d("a"), f("a/x")], [wh("a")], [d("a"), f("a/y")]],
     {"/a": "dir", "/a/y": "file:x"}),
    ("upper-file-replaces-lower-file",
     [[f("x", "1")], [f("x", "2")]],
     {"/x": "file:2"}),
    ("file-over-a-directory-hides-its-tree",
     [[d("a"), d("a/b"), f("a/b/c")], [f("a/b", "now a file")]],
     {"/a": "dir", "/a/b": "file:now a file"}),
    ("symlink-over-a-directory-hides-its-tree",
     [[f("opt/py/bin/python3")], [ln("opt/py", "/usr")]],
     {"/opt/py": "symlink:/usr"}),
    ("directory-over-a-directory-merges",
     [[d("a"), f("a/x")], [d("a"), f("a/y")]],
     {"/a": "dir", "/a/x": "file:x", "/a/y": "file:x"}),
    ("directory-over-a-symlink-replaces-it",
     [[ln("bin", "usr/bin")], [d("bin"), f("bin/sh")]],
     {"/bin": "dir", "/bin/sh": "file:x"}),
    ("aufs-metadata-is-not-content",
     [[f("a/x")], [d(".wh..wh.plnk"), f(".wh..wh.plnk/123.456"), f("a/.wh..wh.aufs")]],
     {"/a/x": "file:x"}),
    ("names-are-normalised",
     [[f("./a//b/./c"), f("/abs"), d("./")]],
     {"/a/b/c": "file:x", "/abs": "file:x"}),
    ("symlinks-and-hard-links-are-entries",
     [[f("usr/bin/python3.11", "elf"), ln("usr/bin/python3", "python3.11"),
       hl("usr/bin/python3-copy", "./usr/bin/python3.11")]],
     {"/usr/bin/python3": "symlink:python3.11", "/usr/bin/python3-copy": "hardlink:/usr/bin/python3.11",
      "/usr/bin/python3.11": "file:elf"}),
]


@pytest.mark.parametrize(("layers", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_merge_rules(store: ContentStore, layers: list[list[Member]], expected: dict[str, str]) -> None:
    view = merged_view(make_image(store, layers), want=want_all)
    assert summary(view) == expected


@pytest.mark.parametrize(("layers", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_keeping_only_some_entries_gives_the_same_answer_for_them(
        store: ContentStore, layers: list[list[Member]], expected: dict[str, str]) -> None:
    """Entries that are not kept still delete what is below them; the kept ones come out as in the full view."""
    view = merged_view(make_image(store, layers), keep=lambda e: e.kind != "dir", want=lambda p: False)
    assert {p: e.kind for p, e in view.items()} == {p: s.split(":")[0] for p, s in expected.items() if s != "dir"}


def test_entry_metadata_and_layer_index(store: ContentStore) -> None:
    lower = build_layer([TarEntry.file("usr/bin/tool", b"#!/bin/sh\n", executable=True),
                         TarEntry.symlink("usr/bin/t", "tool")], store, compression=Compression.parse("zstd"))
    upper = build_layer([TarEntry.file("etc/conf", b"k=v\n")], store)
    image = image_of([store_layer(store, b.descriptor, b.diff_id) for b in (lower, upper)])
    view = merged_view(image, want=lambda p: p == "/etc/conf")
    assert view["/usr/bin/tool"] == Entry(path="/usr/bin/tool", kind="file", mode=0o755, size=10, layer=0)
    assert view["/usr/bin/t"].linkname == "tool" and view["/usr/bin/t"].layer == 0
    assert view["/etc/conf"].data == b"k=v\n" and view["/etc/conf"].layer == 1
    assert view["/usr"].kind == "dir" and "/" not in view
    assert len(view) == len(list(view)) == 6  # /etc /etc/conf /usr /usr/bin /usr/bin/t /usr/bin/tool


# --------------------------------------------------------------------------------------------------
# symlinks
# --------------------------------------------------------------------------------------------------

LINKS = [d("usr"), d("usr/bin"), ln("bin", "usr/bin"), f("usr/bin/dash", "elf"), ln("usr/bin/sh", "dash"),
         ln("etc/alternatives/sh", "/usr/bin/sh"), ln("usr/local/bin/sh", "/etc/alternatives/sh"),
         ln("usr/lib/rel", "../bin/./dash"), ln("up", "../../../usr"), ln("loop1", "loop2"), ln("loop2", "loop1"),
         ln("dangling", "nowhere"), ln("usr/lib/dirlink", "../bin")]

FOLLOW_CASES = [
    ("/bin/sh", "/usr/bin/dash", "file"),                     # directory link, then a relative link
    ("/usr/local/bin/sh", "/usr/bin/dash", "file"),           # absolute chain through alternatives
    ("/usr/lib/rel", "/usr/bin/dash", "file"),                # relative target with .. and .
    ("/up/bin/dash", "/usr/bin/dash", "file"),                # .. above the root stays at the root
    ("/usr/lib/dirlink/sh", "/usr/bin/dash", "file"),         # a link in the middle of the path
    ("/bin", "/usr/bin", "dir"),
    ("/usr/bin/../bin/sh", "/usr/bin/dash", "file"),
    ("/dangling", "/nowhere", None),
    ("/loop1", None, None),
    ("/bin/missing", "/usr/bin/missing", None),
]


@pytest.mark.parametrize(("path", "real", "kind"), FOLLOW_CASES, ids=[c[0] for c in FOLLOW_CASES])
def test_symlink_chains(store: ContentStore, path: str, real: str | None, kind: str | None) -> None:
    view = merged_view(make_image(store, [LINKS]))
    assert view.follow(path) == real
    entry = view.resolve(path)
    assert (entry.kind if entry is not None else None) == kind
    if entry is not None:
        assert entry.path == real


def test_follow_symlinks_works_on_any_mapping() -> None:
    links = {"/bin": "usr/bin", "/usr/bin/python3": "python3.11"}
    assert follow_symlinks("/bin/python3", links.get) == "/usr/bin/python3.11"
    assert follow_symlinks("/a/../../b/./c", links.get) == "/b/c"
    assert follow_symlinks("/x", {"/x": "/x"}.get) is None


def test_readlink_and_symlinks(store: ContentStore) -> None:
    view = merged_view(make_image(store, [LINKS]))
    assert view.readlink("/bin") == "usr/bin" and view.readlink("/usr/bin/dash") is None
    assert view.readlink("/absent") is None
    assert view.symlinks["/etc/alternatives/sh"] == "/usr/bin/sh" and "/usr/bin/dash" not in view.symlinks


# --------------------------------------------------------------------------------------------------
# what is read
# --------------------------------------------------------------------------------------------------


@dataclass
class Recorder:
    """A reader that notes every file it was given."""

    seen: list[str]

    def __call__(self, entry: Entry, stream: IO[bytes]) -> bytes | None:
        self.seen.append(entry.path)
        return stream.read().upper()


def test_only_wanted_files_are_read(store: ContentStore) -> None:
    layers = [[f("etc/os-release", "id=debian"), f("etc/passwd", "root"), f("usr/lib/os-release", "id=x"),
               ln("etc/alias", "os-release")], [f("etc/motd", "hi")]]
    reader = Recorder([])
    view = merged_view(make_image(store, layers), want=lambda p: p.endswith("os-release"), reader=reader)
    assert sorted(reader.seen) == ["/etc/os-release", "/usr/lib/os-release"]
    assert view["/etc/os-release"].data == b"ID=DEBIAN" and view["/usr/lib/os-release"].data == b"ID=X"
    assert view["/etc/passwd"].data is None and view["/etc/motd"].data is None
    resolved = view.resolve("/etc/alias")
    assert resolved is not None and resolved.data == b"ID=DEBIAN"


def test_wanted_files_are_kept_even_if_keep_says_no(store: ContentStore) -> None:
    layers = [[f("etc/os-release", "id=debian"), f("etc/passwd", "root"), ln("bin", "usr/bin")]]
    view = merged_view(make_image(store, layers), keep=lambda e: e.kind == "symlink",
                       want=lambda p: p == "/etc/os-release")
    assert summary(view) == {"/bin": "symlink:usr/bin", "/etc/os-release": "file:id=debian"}


def test_default_reader_is_bounded(store: ContentStore) -> None:
    layers = [[f("small", "1234"), f("big", "12345")]]
    view = merged_view(make_image(store, layers), want=want_all, reader=read_upto(4))
    assert view["/small"].data == b"1234" and view["/big"].data is None and view["/big"].size == 5


def test_wanted_hard_link_gets_the_data_of_its_file(store: ContentStore) -> None:
    lower = [f("var/lib/dpkg/status", "Package: libc6")]
    upper = [f("etc/motd", "hi"), hl("etc/issue", "etc/motd"), hl("var/lib/dpkg/status-old", "var/lib/dpkg/status"),
             hl("etc/unread", "etc/motd")]
    view = merged_view(make_image(store, [lower, upper]), want=lambda p: p != "/etc/unread")
    assert view["/etc/issue"].data == b"hi" and view["/etc/issue"].linkname == "/etc/motd"
    assert view["/var/lib/dpkg/status-old"].data == b"Package: libc6"  # the file is in a lower layer
    assert view["/etc/unread"].data is None


class CountingLayer:
    """Wraps a layer and counts how often its tar is opened."""

    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.opened = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.layer, name)

    def uncompressed(self) -> BinaryIO:
        self.opened += 1
        return self.layer.uncompressed()


def test_each_layer_is_read_once(store: ContentStore) -> None:
    counted = [CountingLayer(put_layer(store, tar_bytes(m))) for m in ([f("a", "1")], [f("b", "2")], [wh("a")])]
    image = replace(image_of([c.layer for c in counted]), layers=tuple(counted))
    assert summary(merged_view(image, want=want_all)) == {"/b": "file:2"}
    assert [c.opened for c in counted] == [1, 1, 1]


# --------------------------------------------------------------------------------------------------
# bad layers
# --------------------------------------------------------------------------------------------------


def test_empty_layer_blob_is_an_empty_layer(store: ContentStore) -> None:
    image = image_of([put_layer(store, tar_bytes([f("a")])), put_layer(store, b"")])
    assert summary(merged_view(image, want=want_all)) == {"/a": "file:x"}


@pytest.mark.parametrize(("blob", "message"), [
    (b"\x1f\x8b\x08\x00garbage-gzip", "cannot be read"),
    (b"\x28\xb5\x2f\xfdgarbage-zstd", "cannot be read"),
    (b"not a tar at all" * 64, "is not a readable tar"),
    (gzip.compress(tar_bytes([f("a", "y" * 4096)]))[:60], "cannot be read"),
    (tar_bytes([f("a", "y" * 4096)])[:2048], "is not a readable tar"),  # ends inside a member's data
], ids=["gzip", "zstd", "plain", "truncated-gzip", "truncated-tar"])
def test_corrupt_layer_is_a_source_error(store: ContentStore, blob: bytes, message: str) -> None:
    good = put_layer(store, tar_bytes([f("a")]))
    digest = store.put_bytes(blob)
    bad = store_layer(store, Descriptor(media_type=MediaType.OCI_LAYER_GZIP, digest=digest, size=len(blob)), digest)
    image = image_of([good, bad])
    with pytest.raises(SourceError, match=rf"base layer 2 \({digest}\) {message}.*the base image is corrupt, "
                                          "fetch it again"):
        merged_view(image, want=want_all)


# --------------------------------------------------------------------------------------------------
# imports
# --------------------------------------------------------------------------------------------------


def test_imagefs_imports_only_the_core() -> None:
    """imagefs is generic: it may use the standard library and a few core ocibuild modules only."""
    import ocibuild.imagefs

    allowed = {"ocibuild.spec", "ocibuild.errors", "ocibuild.image", "ocibuild.layers.compress"}
    tree = ast.parse(Path(ocibuild.imagefs.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [f"ocibuild.{node.module}" if node.level else str(node.module)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            assert name in allowed or (top != "ocibuild" and top in sys.stdlib_module_names), name


# --------------------------------------------------------------------------------------------------
# a walk noted per layer and replayed (what the SBOM does on every build)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "expected"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_a_replayed_walk_gives_the_same_view(store: ContentStore, layers: list[list[Member]],
                                             expected: dict[str, str]) -> None:
    image = make_image(store, layers)
    noted = merged_view(image, want=want_all, cache=store, cache_key="test-1")
    replayed = merged_view(image, want=want_all, cache=store, cache_key="test-1")
    assert summary(noted) == summary(replayed) == expected
    assert dict(noted.items()) == dict(replayed.items())  # every field, the layer index and data included


def test_a_replayed_layer_is_not_read_and_a_new_one_is(store: ContentStore) -> None:
    opened: list[Digest] = []

    def counted(layer: Layer) -> Layer:
        class Counted:
            digest, diff_id, size, media_type = layer.digest, layer.diff_id, layer.size, layer.media_type

            def descriptor(self) -> Descriptor:
                return layer.descriptor()

            def compressed(self) -> BinaryIO:
                return layer.compressed()

            def uncompressed(self) -> BinaryIO:
                opened.append(layer.digest)
                return layer.uncompressed()

        return Counted()  # type: ignore[return-value]

    base = [counted(put_layer(store, tar_bytes([d("etc"), f("etc/os-release", "ID=debian")]))),
            counted(put_layer(store, tar_bytes([f("app/main.py", "v1")])))]
    first = merged_view(image_of(base), want=want_all, cache=store, cache_key="count-1")
    assert len(opened) == 2
    edited = [base[0], counted(put_layer(store, tar_bytes([f("app/main.py", "v2")])))]
    second = merged_view(image_of(edited), want=want_all, cache=store, cache_key="count-1")
    assert opened[2:] == [edited[1].digest]  # the unchanged layer came from its note
    assert summary(first)["/app/main.py"] == "file:v1" and summary(second)["/app/main.py"] == "file:v2"
    merged_view(image_of(edited), want=want_all, cache=store, cache_key="other-purpose-1")
    assert len(opened) == 5  # another purpose notes its own walk

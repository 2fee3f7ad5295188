"""The conformance checker: one set of rules for every image a test writes.

:func:`validate_output` takes an OCI image layout (a folder with ``oci-layout``), an OCI archive (a tarred
layout) or a docker archive (``docker save`` format) and checks, collecting every problem before it raises:

- ``oci-layout``, ``index.json`` and every nested index, manifest and config against the OCI image-spec
  v1.1.1 JSON schemas (Draft 4, ``tests/data/oci-schemas``);
- every blob's digest and size against its descriptor, and the descriptor media types against the bodies;
- diff_ids count == layers count, and each layer, decompressed, hashes to its ``rootfs.diff_ids`` entry;
- each layer's compression matches its media type (gzip magic ``1f8b`` for ``+gzip``, zstd magic
  ``28b52ffd`` for ``+zstd``, neither for a plain ``.tar``);
- no path appears twice inside one layer tar (``./a``, ``a`` and ``a/`` are the same path).

Layers are streamed (never held in memory) and read once: the blob digest, the decompression, the
diff_id and the tar walk share one pass. What a layer blob contains depends only on its digest, so the
facts about it are cached by digest for the whole session; a cached blob is still re-hashed in every
output to prove it is the same blob. :func:`find_outputs` finds the outputs under a folder.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import jsonschema
import zstandard
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .layout import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LIST,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_MANIFEST,
)
from .proc import run

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "data" / "oci-schemas"
CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# layer media types -> the compression their blobs must have
_LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}
_HEX_NAME = re.compile(r"^(?:blobs/sha256/)?(?P<hex>[0-9a-f]{64})(?:\.json)?$")

# ---------------------------------------------------------------------------------------------------
# JSON schemas
# ---------------------------------------------------------------------------------------------------

_SCHEMA_FILES = {"index": "image-index-schema.json", "manifest": "image-manifest-schema.json",
                 "config": "config-schema.json", "layout": "image-layout-schema.json"}
_validators: dict[str, jsonschema.Draft4Validator] = {}


def _validator(kind: str) -> jsonschema.Draft4Validator:
    if not _validators:
        if not (SCHEMA_DIR / "image-manifest-schema.json").is_file():
            raise AssertionError(f"OCI schemas missing in {SCHEMA_DIR}")
        resources: list[tuple[str, Resource[Any]]] = []
        for f in SCHEMA_DIR.glob("*.json"):
            r = DRAFT4.create_resource(json.loads(f.read_text()))
            # relative $refs resolve against .../schema/ or .../schema/image/ depending on the file's id
            resources += [(f"https://opencontainers.org/schema/{f.name}", r),
                          (f"https://opencontainers.org/schema/image/{f.name}", r)]
        registry: Registry[Any] = Registry().with_resources(resources)
        for k, fn in _SCHEMA_FILES.items():
            schema = json.loads((SCHEMA_DIR / fn).read_text())
            _validators[k] = jsonschema.Draft4Validator(schema, registry=registry,
                                                        format_checker=jsonschema.FormatChecker())
    return _validators[kind]


# ---------------------------------------------------------------------------------------------------
# where the files are: a folder or a tar archive
# ---------------------------------------------------------------------------------------------------

class _Files(Protocol):
    def exists(self, name: str) -> bool: ...

    def open(self, name: str) -> IO[bytes]: ...


class _Folder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def exists(self, name: str) -> bool:
        return (self.root / name).is_file()

    def open(self, name: str) -> IO[bytes]:
        return (self.root / name).open("rb")


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


class _Archive:
    """Read-only view of a tar archive's files (names without ``./``), read in place (no extraction)."""

    def __init__(self, path: Path) -> None:
        self.tar = tarfile.open(path, "r:")
        self.members: dict[str, tarfile.TarInfo] = {}
        self.duplicates: list[str] = []
        for m in self.tar.getmembers():
            name = _member_name(m.name)
            if name in self.members:
                self.duplicates.append(name)
            if m.isfile() or m.islnk() or m.issym():
                self.members[name] = m

    def exists(self, name: str) -> bool:
        return name in self.members

    def open(self, name: str) -> IO[bytes]:
        f = self.tar.extractfile(self.members[name])
        if f is None:
            raise OSError(f"{name} is not a regular file")
        return f

    def close(self) -> None:
        self.tar.close()


# ---------------------------------------------------------------------------------------------------
# layers: one streamed pass for digest, compression, diff_id and tar entries
# ---------------------------------------------------------------------------------------------------

class _Hashing(io.RawIOBase):
    """Raw reader that hashes and counts what passes through it."""

    def __init__(self, f: IO[bytes], alg: str = "sha256") -> None:
        self.f = f
        self.hash = hashlib.new(alg)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.f.read(len(b))
        n = len(data)
        b[:n] = data
        self.hash.update(data)
        self.count += n
        return n


def _drain(f: Any) -> None:
    while f.read(CHUNK):
        pass


def _compression_of(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return "none"


@dataclass(frozen=True, slots=True)
class LayerFacts:
    """What one layer blob is: its digest and size, its compression (by magic), the sha256 of its
    uncompressed bytes (None if it does not decompress) and what is wrong inside it."""

    digest: str
    size: int
    compression: str
    diff_id: str | None
    problems: tuple[str, ...]


_LAYER_CACHE: dict[str, LayerFacts] = {}


def _tar_problems(stream: IO[bytes]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    dups: list[str] = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                name = _member_name(m.name) or "."
                if name in seen:
                    dups.append(name)
                seen.add(name)
    except tarfile.TarError as e:
        problems.append(f"not a valid tar: {e}")
    if dups:
        shown = ", ".join(repr(d) for d in dups[:10]) + (f" (+{len(dups) - 10} more)" if len(dups) > 10 else "")
        problems.append(f"duplicate paths in layer tar: {shown}")
    return problems


def _scan_layer(f: IO[bytes], alg: str) -> LayerFacts:
    raw = _Hashing(f, alg)
    compressed = io.BufferedReader(raw, CHUNK)
    compression = _compression_of(compressed.peek(4)[:4])
    problems: list[str] = []
    dec: Any
    if compression == "gzip":
        dec = gzip.GzipFile(fileobj=compressed, mode="rb")
    elif compression == "zstd":
        dec = zstandard.ZstdDecompressor().stream_reader(compressed, read_across_frames=True)
    else:
        dec = compressed
    plain = _Hashing(dec)
    # hashing happens below the buffers, so whatever a buffer holds has been hashed already
    tar_in = io.BufferedReader(plain, CHUNK)
    diff_id: str | None = None
    try:
        problems += _tar_problems(tar_in)
        _drain(tar_in)  # the tar's end-of-archive padding
        diff_id = f"sha256:{plain.hash.hexdigest()}"
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:
        problems.append(f"does not decompress as {compression}: {e!r}")
    with contextlib.suppress(OSError, ValueError):
        _drain(compressed)  # bytes after the compressed stream still count for the blob digest
    return LayerFacts(digest=f"{alg}:{raw.hash.hexdigest()}", size=raw.count, compression=compression,
                      diff_id=diff_id, problems=tuple(problems))


def _hash_stream(f: IO[bytes], alg: str) -> tuple[str, int]:
    h = hashlib.new(alg)
    n = 0
    while chunk := f.read(CHUNK):
        h.update(chunk)
        n += len(chunk)
    return f"{alg}:{h.hexdigest()}", n


def layer_facts(files: _Files, name: str, expected_digest: str | None, alg: str = "sha256") -> LayerFacts:
    """Facts about the layer file ``name``; a blob whose digest was scanned before is only re-hashed."""
    cached = _LAYER_CACHE.get(expected_digest) if expected_digest else None
    if cached is not None:
        with files.open(name) as f:
            digest, _ = _hash_stream(f, alg)
        if digest == cached.digest:
            return cached
    with files.open(name) as f:
        facts = _scan_layer(f, alg)
    _LAYER_CACHE[facts.digest] = facts
    return facts


# ---------------------------------------------------------------------------------------------------
# OCI layouts (a folder, or a tarred one)
# ---------------------------------------------------------------------------------------------------

class _LayoutChecker:
    def __init__(self, files: _Files) -> None:
        self.files = files
        self.errors: list[str] = []
        self.seen: set[str] = set()
        self.layers: dict[str, LayerFacts] = {}  # blob name -> facts, for blobs shared by manifests

    def schema(self, kind: str, doc: Any, where: str) -> None:
        for e in _validator(kind).iter_errors(doc):
            self.errors.append(f"{where}: {kind} schema: {e.message} at /{'/'.join(map(str, e.path))}")

    def load_json(self, name: str, where: str) -> Any:
        if not self.files.exists(name):
            self.errors.append(f"{where}: cannot read JSON {name}: missing")
            return None
        try:
            with self.files.open(name) as f:
                return json.loads(f.read())
        except (OSError, ValueError) as e:
            self.errors.append(f"{where}: cannot read JSON {name}: {e}")
            return None

    def _blob_name(self, desc: Any, where: str) -> tuple[str, str] | None:
        """(file name, algorithm) of a descriptor's blob, or None (and an error) if it has none."""
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            self.errors.append(f"{where}: bad descriptor {desc!r}")
            return None
        alg, _, hexd = str(desc["digest"]).partition(":")
        name = f"blobs/{alg}/{hexd}"
        if not hexd or not self.files.exists(name):
            self.errors.append(f"{where}: missing blob {desc['digest']}")
            return None
        try:
            hashlib.new(alg)
        except ValueError:
            self.errors.append(f"{where}: unsupported digest algorithm {alg}")
            return None
        return name, alg

    def _check_digest_size(self, desc: dict[str, Any], digest: str, size: int, where: str) -> None:
        if digest != desc["digest"]:
            self.errors.append(f"{where}: digest mismatch: descriptor {desc['digest']}, blob {digest}")
        if desc.get("size") != size:
            self.errors.append(f"{where}: size {desc.get('size')} in descriptor, blob has {size}")

    def blob(self, desc: Any, where: str) -> bytes | None:
        """A small (JSON) blob's bytes after the digest and size checks."""
        found = self._blob_name(desc, where)
        if found is None:
            return None
        name, alg = found
        with self.files.open(name) as f:
            data: bytes = f.read()
        self._check_digest_size(desc, f"{alg}:{hashlib.new(alg, data).hexdigest()}", len(data), where)
        return data

    def big_blob(self, desc: Any, where: str) -> None:
        """Digest and size of a blob of unknown size, streamed."""
        found = self._blob_name(desc, where)
        if found is not None:
            with self.files.open(found[0]) as f:
                digest, size = _hash_stream(f, found[1])
            self._check_digest_size(desc, digest, size, where)

    def layer(self, desc: Any, diff_id: Any, where: str) -> None:
        """Digest/size, compression vs media type, diff_id and tar entries of one layer blob."""
        found = self._blob_name(desc, where)
        if found is None:
            return
        name, alg = found
        facts = self.layers.get(name) or layer_facts(self.files, name, desc["digest"], alg)
        self.layers[name] = facts
        self._check_digest_size(desc, facts.digest, facts.size, where)
        mt = desc.get("mediaType")
        want = _LAYER_COMPRESSION.get(mt) if isinstance(mt, str) else None
        if want is None:
            self.errors.append(f"{where}: not a known layer mediaType: {mt!r}")
        elif want != facts.compression:
            self.errors.append(f"{where}: mediaType {mt} means {want}, but the blob is {facts.compression} "
                               f"(magic {_magic_hint(facts.compression)})")
        self.errors += [f"{where}: layer {p}" for p in facts.problems]
        if diff_id is not None and facts.diff_id is not None and diff_id != facts.diff_id:
            self.errors.append(f"{where}: diff_id mismatch: config says {diff_id}, "
                               f"the layer decompresses to {facts.diff_id}")

    def parse(self, data: bytes, where: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as e:
            self.errors.append(f"{where}: invalid JSON: {e}")
            return None

    def walk(self, desc: Any, where: str) -> None:
        data = self.blob(desc, where)
        if data is None:
            return
        mt = desc.get("mediaType")
        key = f"{mt} {desc.get('digest')}"
        if key in self.seen:
            return
        self.seen.add(key)
        if mt in (MT_OCI_INDEX, MT_DOCKER_LIST):
            idx = self.parse(data, where)
            if not isinstance(idx, dict):
                self.errors.append(f"{where}: index is not a JSON object")
                return
            if mt == MT_OCI_INDEX:
                self.schema("index", idx, where)
            if idx.get("mediaType") not in (None, mt):
                self.errors.append(f"{where}: mediaType in body {idx.get('mediaType')} != descriptor {mt}")
            for i, m in enumerate(idx.get("manifests") or []):
                self.walk(m, f"{where}>manifests[{i}]")
        elif mt in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST):
            self.manifest(data, mt, where)
        else:
            self.errors.append(f"{where}: unexpected mediaType {mt!r}")

    def manifest(self, data: bytes, mt: str, where: str) -> None:
        m = self.parse(data, where)
        if not isinstance(m, dict):
            self.errors.append(f"{where}: manifest is not a JSON object")
            return
        if mt == MT_OCI_MANIFEST:
            self.schema("manifest", m, where)
        if m.get("mediaType") not in ((None, mt) if mt == MT_OCI_MANIFEST else (mt,)):
            self.errors.append(f"{where}: mediaType in body {m.get('mediaType')} != descriptor {mt}")
        layers = m.get("layers")
        if not isinstance(layers, list):
            self.errors.append(f"{where}: manifest has no layers list")
            layers = []
        cdesc = m.get("config")
        c = self.blob(cdesc, f"{where}>config")
        image_config = isinstance(cdesc, dict) and cdesc.get("mediaType") in (MT_OCI_CONFIG, MT_DOCKER_CONFIG)
        diff_ids: list[Any] | None = None
        if c is not None and image_config:
            assert isinstance(cdesc, dict)
            cfg = self.parse(c, f"{where}>config")
            if isinstance(cfg, dict):
                if cdesc.get("mediaType") == MT_OCI_CONFIG:
                    self.schema("config", cfg, f"{where}>config")
                got = (cfg.get("rootfs") or {}).get("diff_ids") or []
                diff_ids = got if isinstance(got, list) else []
                if len(diff_ids) != len(layers):
                    self.errors.append(f"{where}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        for i, layer in enumerate(layers):
            if image_config:
                self.layer(layer, diff_ids[i] if diff_ids is not None and i < len(diff_ids) else None,
                           f"{where}>layers[{i}]")
            else:  # an artifact: its "layers" need not be tars
                self.big_blob(layer, f"{where}>layers[{i}]")

    def run(self) -> list[str]:
        lay = self.load_json("oci-layout", "oci-layout")
        if lay is not None:
            self.schema("layout", lay, "oci-layout")
        idx = self.load_json("index.json", "index.json")
        if isinstance(idx, dict):
            self.schema("index", idx, "index.json")
            for i, d in enumerate(idx.get("manifests") or []):
                self.walk(d, f"index.json>manifests[{i}]")
        elif idx is not None:
            self.errors.append("index.json: not a JSON object")
        return self.errors


def _magic_hint(compression: str) -> str:
    return {"gzip": GZIP_MAGIC.hex(), "zstd": ZSTD_MAGIC.hex()}.get(compression, "neither gzip nor zstd")


# ---------------------------------------------------------------------------------------------------
# docker archives
# ---------------------------------------------------------------------------------------------------

def _docker_archive_errors(arc: _Archive) -> list[str]:
    errors: list[str] = []
    checker = _LayoutChecker(arc)  # for its schema and JSON helpers
    try:
        with arc.open("manifest.json") as f:
            manifest = json.loads(f.read())
    except (OSError, ValueError) as e:
        return [f"manifest.json: cannot read JSON: {e}"]
    if not isinstance(manifest, list) or not manifest:
        return ["manifest.json: not a non-empty JSON list"]
    for i, entry in enumerate(manifest):
        where = f"manifest.json[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            errors.append(f"{where}: needs Config (string) and Layers (list): {entry!r}")
            continue
        tags = entry.get("RepoTags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            errors.append(f"{where}: RepoTags must be null or a list of strings: {tags!r}")
        cname = _member_name(entry["Config"])
        if not arc.exists(cname):
            errors.append(f"{where}: missing config {cname}")
            continue
        with arc.open(cname) as f:
            data = f.read()
        m = _HEX_NAME.match(cname)
        if m and hashlib.sha256(data).hexdigest() != m["hex"]:
            errors.append(f"{where}: config {cname}: digest mismatch: blob sha256:{hashlib.sha256(data).hexdigest()}")
        cfg = checker.parse(data, f"{where}>config")
        diff_ids: list[Any] = []
        if isinstance(cfg, dict):
            checker.schema("config", cfg, f"{where}>config")
            got = (cfg.get("rootfs") or {}).get("diff_ids") or []
            diff_ids = got if isinstance(got, list) else []
        layers = entry["Layers"]
        if len(diff_ids) != len(layers):
            errors.append(f"{where}: {len(layers)} layers but {len(diff_ids)} diff_ids")
        for j, lname in enumerate(layers):
            lwhere = f"{where}>Layers[{j}]"
            name = _member_name(str(lname))
            if not arc.exists(name):
                errors.append(f"{lwhere}: missing layer {name}")
                continue
            diff_id = diff_ids[j] if j < len(diff_ids) else None
            # an uncompressed layer's digest is its diff_id: a layer seen before is then only re-hashed
            facts = layer_facts(arc, name, diff_id if isinstance(diff_id, str) else None)
            errors += [f"{lwhere}: layer {p}" for p in facts.problems]
            if diff_id is not None and facts.diff_id is not None and diff_id != facts.diff_id:
                errors.append(f"{lwhere}: diff_id mismatch: config says {diff_id}, "
                              f"the layer decompresses to {facts.diff_id}")
    return checker.errors + errors


# ---------------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------------

def _fail(kind: str, path: Path, errors: list[str]) -> None:
    if errors:
        raise AssertionError(f"invalid {kind} {path}:\n  " + "\n  ".join(errors))


def validate_layout(layout: Path) -> None:
    """Validate an OCI image layout folder (see the module docstring for the rules). Docker v2 manifests
    / lists are accepted (digest, size, diff_ids and layer checks; no schema). Raises AssertionError
    listing all problems."""
    _fail("OCI layout", Path(layout), _LayoutChecker(_Folder(Path(layout))).run())


def archive_kinds(path: Path) -> set[str]:
    """``{"oci-archive", "docker-archive"}``, a subset, or empty: what the tar file at ``path`` holds
    (an OCI layout at its root, a docker ``manifest.json``; docker 25+ writes both). Not a tar: empty."""
    try:
        with tarfile.open(path, "r:") as tf:
            names = {_member_name(n) for n in tf.getnames()}
    except (OSError, tarfile.TarError, EOFError):
        return set()
    kinds = set()
    if "oci-layout" in names:
        kinds.add("oci-archive")
    if "manifest.json" in names:
        kinds.add("docker-archive")
    return kinds


def validate_archive(path: Path) -> None:
    """Validate an OCI archive and/or docker archive (a ``.tar``); AssertionError listing all problems."""
    kinds = archive_kinds(Path(path))
    if not kinds:
        raise AssertionError(f"{path}: neither an OCI archive (oci-layout) nor a docker archive (manifest.json)")
    arc = _Archive(Path(path))
    try:
        errors = [f"archive member {d} appears more than once" for d in arc.duplicates]
        if "oci-archive" in kinds:
            errors += _LayoutChecker(arc).run()
        if "docker-archive" in kinds:
            errors += _docker_archive_errors(arc)
    finally:
        arc.close()
    _fail(" and ".join(sorted(kinds)), Path(path), errors)


def validate_output(path: Path) -> None:
    """Validate one output: an OCI layout folder, or an OCI / docker archive file."""
    p = Path(path)
    if p.is_dir():
        validate_layout(p)
    else:
        validate_archive(p)


def is_content_store(folder: Path) -> bool:
    """An ocibuild cache (blob store + ``selectors/``): holds blobs, not images."""
    return (folder / "selectors").is_dir()


def find_outputs(root: Path) -> list[Path]:
    """Every OCI layout folder (with an ``oci-layout`` file) and every ``.tar`` OCI or docker archive
    under ``root``, sorted; content stores (folders with ``selectors/``) and layouts' insides are skipped."""
    found: list[Path] = []
    for d, dirs, files in _walk(Path(root)):
        if "oci-layout" in files:
            found.append(d)
            dirs.clear()
            continue
        found += [d / f for f in files if f.endswith(".tar") and archive_kinds(d / f)]
    return sorted(found)


def _walk(root: Path) -> Iterator[tuple[Path, list[str], list[str]]]:
    for d, dirs, files in os.walk(root):
        here = Path(d)
        if is_content_store(here):
            dirs.clear()
            continue
        dirs.sort()
        yield here, dirs, files


# ---------------------------------------------------------------------------------------------------
# a validator nobody on the team wrote
# ---------------------------------------------------------------------------------------------------

def oci_image_tool_validate(layout: Path, tag: str) -> None:
    """``oci-image-tool validate --type image --ref name=TAG LAYOUT``. The tool filters ``index.json`` by
    removing entries from the list it walks, skipping the entry after each one it removes (so other
    manifests, e.g. untagged SBOM artifacts, can be left behind: "not unique"): the criterion is given
    once per entry. (Its config check predates OCI 1.1 artifacts, so each image is named by its tag.)"""
    entries = len(json.loads((layout / "index.json").read_bytes())["manifests"])
    refs = [arg for _ in range(entries) for arg in ("--ref", f"name={tag}")]
    run(["oci-image-tool", "validate", "--type", "image", *refs, layout], what="oci-image-tool validate")

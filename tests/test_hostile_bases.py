"""Hostile base images: generated OCI layouts, OCI archives, docker archives (and one registry base)
that break the image spec, each used as the base of a tiny project built with the CLI.

Every case must end with exit code 1, exactly one ``ocibuild: error:`` line naming the problem, no
traceback, no output written and nothing left in the store's ``tmp/``. The status.d bomb must also
stay in bounded memory (the child's own peak RSS, from ``wait4``).

The hostile bases live under ``tmp_path`` and are broken on purpose, so these tests opt out of the
teardown conformance check; the well-formed controls keep it.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness.hostile import run_measured
from harness.layout import (
    MT_DOCKER_CONFIG,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    json_bytes,
    set_tag,
    write_blob,
)
from harness.proc import skopeo_copy
from harness.registry import Registry

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
BROKEN = pytest.mark.no_conformance(reason="its base image is broken on purpose")

Doc = dict[str, Any]


# ---------------------------------------------------------------------------------------------------
# running the CLI
# ---------------------------------------------------------------------------------------------------

@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float


def build(project: Path, base: str, out: Path, cache: Path) -> Run:
    """``ocibuild build PROJECT --base BASE --output oci:OUT:v1``, with its own peak RSS."""
    env = {**os.environ, "OCIBUILD_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "ocibuild", "build", str(project), "--base", base, "--output", f"oci:{out}:v1"]
    measured = run_measured(cmd, env=env, timeout=600, address_space=None)
    return Run(measured.returncode, measured.stdout, measured.stderr, measured.max_rss / (1 << 20))


def assert_clean_failure(run: Run, out: Path, cache: Path, *fragments: str) -> str:
    """Exit 1, one error line holding every fragment, no traceback, no output, an empty store tmp/."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("ocibuild: error:")]
    assert len(lines) == 1, run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert run.stdout == ""
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert not (cache / "tmp").exists() or list((cache / "tmp").iterdir()) == []
    return lines[0]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    shutil.copytree(HELLO, p)
    return p


# ---------------------------------------------------------------------------------------------------
# generating bases
# ---------------------------------------------------------------------------------------------------

def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


ROOTFS = tar_of({"etc/os-release": b"ID=hostile\n", "bin/tool": b"#!/bin/sh\n"})


@dataclass
class Spec:
    """A single-platform image, as plain JSON that each case may break before it is written."""

    layers: list[tuple[bytes, str]] = field(default_factory=lambda: [(gz(ROOTFS), MT_OCI_LAYER_GZIP)])
    diff_ids: list[str] | None = None  # default: the real ones
    config_extra: Doc = field(default_factory=dict)

    def config(self) -> Doc:
        diff_ids = self.diff_ids if self.diff_ids is not None else [
            sha(gzip.decompress(blob) if media.endswith("gzip") else blob) for blob, media in self.layers]
        return {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created_by": "hand"} for _ in self.layers], **self.config_extra}


Patch = Callable[[Doc], Any]


def write_layout(root: Path, spec: Spec, *, config: Patch | None = None, manifest: Patch | None = None,
                 entry: Patch | None = None, config_raw: bytes | None = None, manifest_raw: bytes | None = None,
                 index_raw: bytes | None = None) -> Path:
    """An OCI layout at ``root`` tagged ``t``; each patch may change its JSON in place (or return a
    replacement), each ``*_raw`` replaces the document's bytes."""
    layer_descs = [{"mediaType": media, **write_blob(root, blob)} for blob, media in spec.layers]
    cfg = spec.config()
    cfg = (config(cfg) or cfg) if config else cfg
    cfg_bytes = config_raw if config_raw is not None else json_bytes(cfg)
    man: Doc = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST,
                "config": {"mediaType": MT_OCI_CONFIG, **write_blob(root, cfg_bytes)}, "layers": layer_descs}
    man = (manifest(man) or man) if manifest else man
    man_bytes = manifest_raw if manifest_raw is not None else json_bytes(man)
    desc: Doc = {"mediaType": MT_OCI_MANIFEST, **write_blob(root, man_bytes)}
    desc = (entry(desc) or desc) if entry else desc
    set_tag(root, desc, "t")
    if index_raw is not None:
        (root / "index.json").write_bytes(index_raw)
    return root


def oci_archive(layout: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for name in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / name, arcname=name)
    return dest


def docker_archive(dest: Path, spec: Spec, *, config: Patch | None = None, manifest_json: Any = None) -> Path:
    """A ``docker save`` archive: manifest.json, the config, one member per layer (as given, so a
    gzip layer stays gzip, as podman and newer docker write them)."""
    cfg = spec.config()
    cfg = (config(cfg) or cfg) if config else cfg
    cfg_bytes = json_bytes(cfg)
    cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
    names = [f"{hashlib.sha256(blob).hexdigest()}/layer.tar" for blob, _ in spec.layers]
    entries = manifest_json if manifest_json is not None else [
        {"Config": cfg_name, "RepoTags": ["hostile:1"], "Layers": names}]
    members = {"manifest.json": json.dumps(entries).encode(), cfg_name: cfg_bytes,
               **{n: blob for n, (blob, _) in zip(names, spec.layers, strict=True)}}
    dest.write_bytes(tar_of(members))
    return dest


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


DEEP = b"[" * 100_000 + b"]" * 100_000
PLAIN = MT_OCI_LAYER
WRONG = sha(b"not the layer")


def _set(path: str, value: Any) -> Patch:
    """A patch setting ``a.b.c`` (list indexes as numbers) to ``value``."""

    def patch(doc: Doc) -> None:
        keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
        target: Any = doc
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = copy.deepcopy(value)

    return patch


# ---------------------------------------------------------------------------------------------------
# the table: (id, how to make the base, fragments the one error line must hold)
# ---------------------------------------------------------------------------------------------------

Maker = Callable[[Path], str]

CASES: list[tuple[str, Maker, tuple[str, ...]]] = [
    # diff_ids that are not the layers'
    ("layout-gzip-wrong-diff-id",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(diff_ids=[WRONG]))) + ":t",
     ("decompresses to", WRONG, "rootfs.diff_ids", "malformed")),
    ("layout-plain-wrong-diff-id",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(layers=[(ROOTFS, PLAIN)], diff_ids=[WRONG]))) + ":t",
     ("its digest is", WRONG)),
    ("layout-diff-ids-count",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(diff_ids=[WRONG, WRONG]))) + ":t",
     ("1 layers but its config lists 2 diff_ids",)),
    ("oci-archive-wrong-diff-id",
     lambda d: "oci-archive:" + str(oci_archive(write_layout(d / "b", Spec(diff_ids=[WRONG])), d / "b.tar")) + ":t",
     ("oci-archive:", "decompresses to", WRONG)),
    ("docker-archive-gzip-wrong-diff-id",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(diff_ids=[WRONG]))),
     ("docker-archive:", "decompresses to", WRONG)),
    ("docker-archive-plain-wrong-diff-id",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(layers=[(ROOTFS, PLAIN)], diff_ids=[WRONG]))),
     ("its digest is", WRONG)),
    # wrong types
    ("env-as-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("config.Env", "PATH=/bin"))) + ":t",
     ("config sha256:", "'config.Env' is not a list (got a string)", "malformed")),
    ("docker-archive-env-as-a-string",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(), config=_set("config.Env", "A=1"))),
     ("'config.Env' is not a list",)),
    ("cmd-item-not-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("config.Cmd", ["sh", 1]))) + ":t",
     ("'config.Cmd[1]' is not a string (got a number)",)),
    ("label-not-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("config.Labels", {"a": ["b"]}))) + ":t",
     ("config.Labels", "is not a string (got a list)")),
    ("diff-id-not-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("rootfs.diff_ids", [7]))) + ":t",
     ("'rootfs.diff_ids[0]' is not a string",)),
    ("history-not-a-list",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("history", {"created_by": "x"}))) + ":t",
     ("'history' is not a list (got an object)",)),
    ("config-os-a-number",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("os", 7))) + ":t",
     ("'os' is not a string (got a number)",)),
    ("config-not-an-object",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config_raw=b'["linux"]')) + ":t",
     ("image config is not a JSON object (got a list)",)),
    ("layers-not-a-list",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("layers", "x"))) + ":t",
     ("manifest sha256:", "'layers' is not a list", "the image is malformed")),
    ("layer-size-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("layers.0.size", "12"))) + ":t",
     ("'layers[0].size' is not an integer (got a string)",)),
    ("annotation-not-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("annotations", {"a": 1}))) + ":t",
     ("annotations", "is not a string (got a number)")),
    ("schema-version-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("schemaVersion", "2"))) + ":t",
     ("schemaVersion",)),
    # a non-object where a descriptor belongs
    ("layer-descriptor-a-string",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("layers", ["sha256:abc"]))) + ":t",
     ("'layers[0]' is not an object (got a string)",)),
    ("config-descriptor-a-list",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("config", []))) + ":t",
     ("'config' is not an object (got a list)",)),
    ("index-entry-a-number",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), index_raw=b'{"schemaVersion":2,"manifests":[1]}')),
     ("index.json", "'manifests[0]' is not an object (got a number)", "the layout is malformed")),
    ("index-json-a-list",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), index_raw=b"[]")),
     ("index.json", "not a JSON object")),
    ("oci-layout-not-json", lambda d: _with_file(write_layout(d / "b", Spec()), "oci-layout", b"{"),
     ("oci-layout", "not valid JSON", "the layout is malformed")),
    ("oci-layout-without-version", lambda d: _with_file(write_layout(d / "b", Spec()), "oci-layout", b"{}"),
     ("oci-layout", "'imageLayoutVersion' is missing")),
    # docker archive manifest.json
    ("docker-manifest-without-config",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(), manifest_json=[{"Layers": []}])),
     ("manifest.json", "missing '[0].Config'", "the archive is malformed")),
    ("docker-manifest-an-object",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(), manifest_json={"Config": "c"})),
     ("manifest.json is not a JSON list (got an object)",)),
    ("docker-manifest-entry-a-string",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(), manifest_json=["x"])),
     ("'[0]' is not an object (got a string)",)),
    ("docker-manifest-layers-a-string",
     lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(), manifest_json=[
         {"Config": "c.json", "Layers": "l.tar"}])),
     ("'[0].Layers' is not a list",)),
    # deep nesting (RecursionError before)
    ("config-nested-100000-deep",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config_raw=b'{"x":' + DEEP + b"}")) + ":t",
     ("config sha256:", "nested more than 100 levels deep")),
    ("config-nested-150-deep",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), config=_set("x", nested(150)))) + ":t",
     ("nested more than 100 levels deep",)),
    ("manifest-nested-100000-deep",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest_raw=DEEP)) + ":t",
     ("manifest sha256:", "nested more than 100 levels deep")),
    ("index-json-nested-100000-deep",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), index_raw=DEEP)),
     ("index.json", "nested more than 100 levels deep")),
    # media types that do not match the content
    ("descriptor-says-index-document-is-manifest",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), entry=_set("mediaType", MT_OCI_INDEX))) + ":t",
     ("index sha256:", f"its descriptor says {MT_OCI_INDEX} but the document's mediaType is '{MT_OCI_MANIFEST}'")),
    ("descriptor-says-index-untyped-manifest",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), entry=_set("mediaType", MT_OCI_INDEX),
                                         manifest=lambda m: {k: v for k, v in m.items() if k != "mediaType"})) + ":t",
     ("index sha256:", "the document is an image manifest (it has 'config' and 'layers')")),
    ("manifest-declares-index-type",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("mediaType", MT_OCI_INDEX))) + ":t",
     ("its descriptor says", "but the document's mediaType is")),
    ("descriptor-says-layer",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), entry=_set("mediaType", MT_OCI_LAYER))) + ":t",
     ("is not an image manifest or index",)),
    ("gzip-type-plain-bytes",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(layers=[(ROOTFS, MT_OCI_LAYER_GZIP)],
                                                       diff_ids=[sha(ROOTFS)]))) + ":t",
     ("its data is an uncompressed tar but its media type", "says gzip-compressed")),
    ("plain-type-gzip-bytes",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(layers=[(gz(ROOTFS), PLAIN)], diff_ids=[sha(ROOTFS)]))) + ":t",
     ("its data is gzip-compressed but its media type",)),
    ("artifact-not-an-image",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set(
         "config.mediaType", "application/vnd.cncf.helm.config.v1+json"))) + ":t",
     ("not an image config", "artifact")),
    ("layer-media-type-unknown",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("layers.0.mediaType", "text/plain"))) + ":t",
     ("'layers[0].mediaType' is 'text/plain', not a layer media type",)),
    ("media-type-not-a-media-type",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(), manifest=_set("layers.0.mediaType", "gzip"))) + ":t",
     ("'layers[0].mediaType' is 'gzip', not a media type",)),
    # blobs that are not files
    ("config-blob-is-dev-zero",
     lambda d: _dev_zero_config(d / "b"),
     ("is not a regular file",)),
    ("corrupt-gzip-layer",
     lambda d: "oci:" + str(write_layout(d / "b", Spec(layers=[(gz(ROOTFS)[:-12] + b"\0" * 12, MT_OCI_LAYER_GZIP)],
                                                       diff_ids=[sha(ROOTFS)]))) + ":t",
     ("cannot be decompressed", "corrupt")),
]


def _with_file(layout: Path, name: str, data: bytes) -> str:
    (layout / name).write_bytes(data)
    return f"oci:{layout}:t"


def _dev_zero_config(root: Path) -> str:
    """A layout whose config blob is a symlink to /dev/zero (a read would never end)."""
    layout = write_layout(root, Spec())
    manifest = json.loads((layout / "blobs/sha256" / json.loads((layout / "index.json").read_text())
                           ["manifests"][0]["digest"][7:]).read_text())
    blob = layout / "blobs/sha256" / manifest["config"]["digest"][7:]
    blob.unlink()
    blob.symlink_to("/dev/zero")
    return f"oci:{layout}:t"


@BROKEN
@pytest.mark.parametrize(("maker", "fragments"), [pytest.param(m, f, id=i) for i, m, f in CASES])
def test_hostile_base_is_refused_with_one_line(tmp_path: Path, project: Path, maker: Maker,
                                               fragments: tuple[str, ...]) -> None:
    (tmp_path / "b").mkdir()
    base = maker(tmp_path)
    out, cache = tmp_path / "out", tmp_path / "cache"
    line = assert_clean_failure(build(project, base, out, cache), out, cache, *fragments)
    assert f"base {base.split(':')[0]}:{tmp_path}" in line, line  # names the base
    assert len(line) < 600, line


def test_docker_manifest_nested_deep_is_refused(tmp_path: Path, project: Path) -> None:
    """manifest.json that nests 100000 levels (the archive otherwise fine)."""
    archive = docker_archive(tmp_path / "b.tar", Spec())
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    members["manifest.json"] = DEEP
    archive.write_bytes(tar_of(members))
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert_clean_failure(build(project, f"docker-archive:{archive}", out, cache), out, cache,
                         "manifest.json is nested more than 100 levels deep", "the archive is malformed")
    archive.unlink()  # broken on purpose: not an output to validate


# ---------------------------------------------------------------------------------------------------
# the well-formed controls: the same generators give bases that build, and the diff_id check is
# done once per layer, then read from the store's records
# ---------------------------------------------------------------------------------------------------

CONTROLS: list[tuple[str, Maker]] = [
    ("layout-gzip", lambda d: "oci:" + str(write_layout(d / "b", Spec())) + ":t"),
    ("layout-plain", lambda d: "oci:" + str(write_layout(d / "b", Spec(layers=[(ROOTFS, PLAIN)]))) + ":t"),
    ("layout-docker-config-env-null", lambda d: "oci:" + str(write_layout(
        d / "b", Spec(), config=_set("config", {"Env": None, "Cmd": None, "Labels": None, "Volumes": None}),
        manifest=_set("config.mediaType", MT_DOCKER_CONFIG))) + ":t"),
    ("oci-archive", lambda d: "oci-archive:" + str(oci_archive(write_layout(d / "b", Spec()), d / "b.tar")) + ":t"),
    ("docker-archive-gzip", lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec()))),
    ("docker-archive-plain", lambda d: "docker-archive:" + str(docker_archive(d / "b.tar", Spec(layers=[(ROOTFS,
                                                                                                        PLAIN)])))),
]


@pytest.mark.parametrize("maker", [pytest.param(m, id=i) for i, m in CONTROLS])
def test_well_formed_base_builds(tmp_path: Path, project: Path, maker: Maker) -> None:
    (tmp_path / "b").mkdir()
    out, cache = tmp_path / "out", tmp_path / "cache"
    run = build(project, maker(tmp_path), out, cache)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("sha256:")


def _record(cache: Path, layer: bytes) -> Path:
    return cache / "selectors" / f"diffid-sha256-{hashlib.sha256(layer).hexdigest()}-sha256.json"


def test_diff_id_is_computed_once_then_read_from_the_store(tmp_path: Path, project: Path) -> None:
    """The first build records the layer's diff_id in the store; the next one trusts the record (a
    record that says otherwise makes it fail, so it is read, not recomputed)."""
    layer = gz(ROOTFS)
    base = "oci:" + str(write_layout(tmp_path / "b", Spec(layers=[(layer, MT_OCI_LAYER_GZIP)]))) + ":t"
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert build(project, base, out, cache).returncode == 0
    record = _record(cache, layer)
    assert json.loads(record.read_text()) == {"compression": "gzip", "diff_id": sha(ROOTFS)}
    record.write_text(json.dumps({"compression": "gzip", "diff_id": WRONG}))
    assert_clean_failure(build(project, base, tmp_path / "out2", cache), tmp_path / "out2", cache,
                         "decompresses to " + WRONG)


# ---------------------------------------------------------------------------------------------------
# a registry base: its layer's diff_id is checked when the layer is downloaded
# ---------------------------------------------------------------------------------------------------

@BROKEN
def test_registry_base_with_wrong_diff_id_fails_when_its_layer_is_fetched(tmp_path: Path, project: Path,
                                                                          plain_registry: Registry) -> None:
    layout = write_layout(tmp_path / "b", Spec(diff_ids=[WRONG]))
    ref = f"{plain_registry.host}/hostile/diffid:1"
    skopeo_copy(f"oci:{layout}:t", f"docker://{ref}", *plain_registry.skopeo_args("dest"), "--preserve-digests")
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert_clean_failure(build(project, f"docker://{ref}", out, cache), out, cache,
                         f"base docker://{ref}", "decompresses to", WRONG)


# ---------------------------------------------------------------------------------------------------
# a status.d bomb: 100,000 small dpkg status files (or 1 GB of them) in a few MB of gzip, scanned for a
# Python project
# ---------------------------------------------------------------------------------------------------

def _status_d_bomb(files: int, size: int) -> tuple[bytes, str]:
    """The gzip layer and its diff_id (hashed as it is written: the tar is never in memory whole)."""
    stanza = b"Package: p\nStatus: install ok installed\nVersion: 1\n"
    body = (stanza + b"Description: " + b"x" * size)[:size]
    buf = io.BytesIO()
    diff_id = hashlib.sha256()

    class Tee(io.RawIOBase):
        def __init__(self, z: gzip.GzipFile) -> None:
            self.z = z

        def writable(self) -> bool:
            return True

        def write(self, data: Any) -> int:
            diff_id.update(data)
            return self.z.write(data)

    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=6) as z, \
            tarfile.open(fileobj=Tee(z), mode="w|", format=tarfile.GNU_FORMAT) as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"var/lib/dpkg/status.d/p{i}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue(), "sha256:" + diff_id.hexdigest()


@BROKEN
@pytest.mark.parametrize(("files", "size", "bound"), [
    pytest.param(100_000, 2_000, "more than 10000 files read", id="many-small-files"),
    pytest.param(20_000, 50_000, "more than 67108864 bytes of file content read", id="1-GB-of-content"),
])
def test_status_d_bomb_is_refused_in_bounded_memory(tmp_path: Path, project: Path, files: int, size: int,
                                                    bound: str) -> None:
    bomb, diff_id = _status_d_bomb(files, size)
    assert len(bomb) < 8 << 20  # a few MB compressed, 200 MB to 1 GB of file content
    layout = write_layout(tmp_path / "b", Spec(layers=[(bomb, MT_OCI_LAYER_GZIP)], diff_ids=[diff_id]))
    (project / "requirements.txt").write_text("")
    (project / "ocibuild.toml").write_text('[python]\nrequirements = "requirements.txt"\n')
    out, cache = tmp_path / "out", tmp_path / "cache"
    run = build(project, f"oci:{layout}:t", out, cache)
    assert_clean_failure(run, out, cache, "base layer 1", "/var/lib/dpkg/status.d/p", bound, "python.libc_version")
    assert run.max_rss_mb < 200, run.max_rss_mb

"""Self-checks of the independent test harness (tests/harness: bases, validate, runtime; tests/conftest.py).

If these fail, every other test's verdict is meaningless: the base images, the validators (which must
be able to FAIL) and the runtimes are checked here against known answers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import zstandard
from harness.bases import layout_from_rootfs_tar, make_busybox_layout, reproducible_tar
from harness.layout import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_LAYER,
    MT_DOCKER_MANIFEST,
    MT_OCI_CONFIG,
    MT_OCI_INDEX,
    MT_OCI_LAYER,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    REF_NAME,
    image_config,
    json_bytes,
    set_tag,
    write_blob,
)
from harness.proc import skopeo_copy, skopeo_inspect, skopeo_inspect_raw
from harness.runtime import podman as run_podman
from harness.runtime import run_image, umoci_unpack
from harness.validate import archive_kinds, find_outputs, oci_image_tool_validate, validate_archive, validate_layout


def _blob_path(layout: Path, digest: str) -> Path:
    alg, _, hexd = digest.partition(":")
    return layout / "blobs" / alg / hexd


def _index(layout: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((layout / "index.json").read_text())
    return result


def _only_manifest(layout: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    (desc,) = _index(layout)["manifests"]
    return desc, json.loads(_blob_path(layout, desc["digest"]).read_bytes())


def _put_blob(layout: Path, data: bytes) -> dict[str, Any]:
    hexd = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / hexd).write_bytes(data)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def _replace_manifest(layout: Path, manifest: dict[str, Any], media_type: str | None = None) -> None:
    """Store a new manifest blob (digest/size correct) and point the only index entry at it."""
    index = _index(layout)
    desc = index["manifests"][0]
    desc.update(_put_blob(layout, json.dumps(manifest).encode()))
    if media_type:
        desc["mediaType"] = media_type
    (layout / "index.json").write_text(json.dumps(index))


# the validator-can-fail tests corrupt their layout: the teardown conformance check would (rightly) fail them
BROKEN_ON_PURPOSE = pytest.mark.no_conformance(reason="corrupts its layout to prove the validator fails")


@pytest.fixture
def bb_copy(busybox_layout: Path, tmp_path: Path) -> Path:
    """A private, mutable copy of the busybox layout."""
    return Path(shutil.copytree(busybox_layout, tmp_path / "bb"))


# --------------------------------------------------------------------------- positive checks


def test_busybox_layout_is_valid(busybox_layout: Path) -> None:
    validate_layout(busybox_layout)
    oci_image_tool_validate(busybox_layout, "busybox")
    info = skopeo_inspect(f"oci:{busybox_layout}:busybox")
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Env"] == ["PATH=/bin"]
    assert len(info["Layers"]) == 1
    desc, _ = _only_manifest(busybox_layout)
    assert desc["annotations"][REF_NAME] == "busybox"
    raw = skopeo_inspect_raw(f"oci:{busybox_layout}:busybox")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == desc["digest"] == info["Digest"]
    cfg = image_config(busybox_layout, "busybox")
    assert cfg["config"]["Cmd"] == ["/bin/sh"]


def test_busybox_layout_is_reproducible(busybox_layout: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh build (empty cache) gives the very same manifest digest as the cached one."""
    monkeypatch.setenv("OCIBUILD_TEST_CACHE", str(tmp_path / "cache"))
    fresh = make_busybox_layout(tmp_path / "fresh", "busybox")
    assert _index(fresh)["manifests"][0]["digest"] == _index(busybox_layout)["manifests"][0]["digest"]
    assert (tmp_path / "cache").is_dir()


def test_umoci_unpack_rootfs(busybox_layout: Path, tmp_path: Path) -> None:
    umoci_unpack(busybox_layout, "busybox", tmp_path / "bundle")
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "bin" / "busybox").is_file()
    assert (rootfs / "bin" / "sh").is_symlink()
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    for d in ("etc", "proc", "sys", "dev"):
        assert (rootfs / d).is_dir()


def test_layout_from_rootfs_tar_tags(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hello").write_text("hello\n")
    tar = reproducible_tar(root, tmp_path / "r.tar")
    lay = tmp_path / "lay"
    layout_from_rootfs_tar(tar, lay, "a")
    layout_from_rootfs_tar(tar, lay, "b", arch="arm64", env=["X=1"], cmd=["/x"])
    first_a = _index(lay)["manifests"][0]["digest"]
    layout_from_rootfs_tar(tar, lay, "a")  # replace: same content -> same digest, no duplicate entry
    tags = {m["annotations"][REF_NAME]: m["digest"] for m in _index(lay)["manifests"]}
    assert set(tags) == {"a", "b"} and len(_index(lay)["manifests"]) == 2
    assert tags["a"] == first_a != tags["b"]
    assert image_config(lay, "b")["architecture"] == "arm64"
    assert image_config(lay, "b")["config"] == {"Env": ["X=1"], "Cmd": ["/x"]}
    validate_layout(lay)
    oci_image_tool_validate(lay, "a")
    oci_image_tool_validate(lay, "b")


@pytest.mark.slow
def test_busybox_runs(busybox_layout: Path) -> None:
    p = run_image(busybox_layout, "busybox", ["echo", "hi"])
    assert (p.returncode, p.stdout) == (0, "hi\n"), p.stderr
    p = run_image(busybox_layout, "busybox", ["sh", "-c", 'echo "$FOO:$PATH"; exit 3'], env=["FOO=bar"])
    assert (p.returncode, p.stdout) == (3, "bar:/bin\n"), p.stderr
    p = run_image(busybox_layout, "busybox", ["uname", "-m"])
    assert p.stdout == "x86_64\n", p.stderr


@pytest.mark.slow
def test_debian_python_runs(debian_python_layout: Path) -> None:
    validate_layout(debian_python_layout)
    oci_image_tool_validate(debian_python_layout, "bookworm-py")
    cfg = image_config(debian_python_layout, "bookworm-py")
    assert cfg["config"]["Cmd"] == ["python3"]
    p = run_image(debian_python_layout, "bookworm-py", ["python3", "-c", "import ssl, json; print(6*7)"])
    assert (p.returncode, p.stdout) == (0, "42\n"), p.stderr
    p = run_image(debian_python_layout, "bookworm-py", ["ls", "/etc/ssl/certs/ca-certificates.crt"])
    assert p.returncode == 0, p.stderr


@pytest.mark.slow
def test_arm64_busybox_runs_under_qemu(busybox_arm64_layout: Path) -> None:
    validate_layout(busybox_arm64_layout)
    assert image_config(busybox_arm64_layout, "busybox")["architecture"] == "arm64"
    p = run_image(busybox_arm64_layout, "busybox", ["uname", "-m"])
    assert (p.returncode, p.stdout) == (0, "aarch64\n"), p.stderr


@pytest.mark.slow
def test_run_image_flattens_index(busybox_layout: Path, busybox_arm64_layout: Path, tmp_path: Path) -> None:
    """A tag pointing at an image index (amd64 + arm64) is validated recursively and run per arch."""
    multi = Path(shutil.copytree(busybox_layout, tmp_path / "multi"))
    for b in (busybox_arm64_layout / "blobs" / "sha256").iterdir():
        shutil.copy2(b, multi / "blobs" / "sha256" / b.name)
    descs = []
    for lay, arch in ((busybox_layout, "amd64"), (busybox_arm64_layout, "arm64")):
        d, _ = _only_manifest(lay)
        descs.append({"mediaType": d["mediaType"], "digest": d["digest"], "size": d["size"],
                      "platform": {"architecture": arch, "os": "linux"}})
    idx = _put_blob(multi, json.dumps({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                                       "manifests": descs}).encode())
    (multi / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": MT_OCI_INDEX, **idx, "annotations": {REF_NAME: "multi"}}]}))
    validate_layout(multi)
    oci_image_tool_validate(multi, "multi")
    for arch, machine in (("arm64", "aarch64"), ("amd64", "x86_64")):
        p = run_image(multi, "multi", ["uname", "-m"], arch=arch)
        assert (p.returncode, p.stdout) == (0, f"{machine}\n"), p.stderr


@pytest.mark.slow
def test_podman_load_and_run(busybox_layout: Path, podman: dict[str, str], tmp_path: Path) -> None:
    """docker-archive made by skopeo from the busybox layout: podman load + podman run (runc, vfs)."""
    archive = tmp_path / "bb.tar"
    name = "localhost/ocibuild-selfcheck/busybox:latest"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{busybox_layout}:busybox",
                    f"docker-archive:{archive}:{name}"], check=True, capture_output=True)
    out = run_podman(podman, "load", "-i", str(archive)).stdout
    assert name in out, out
    p = run_podman(podman, "run", "--rm", name, "sh", "-c", "echo hello from podman; id -u; uname -m")
    assert p.stdout == "hello from podman\n0\nx86_64\n", p.stderr
    p = run_podman(podman, "run", "--rm", name, "env")
    assert "PATH=/bin" in p.stdout.splitlines()


# --------------------------------------------------------------------------- the validator can fail


@BROKEN_ON_PURPOSE
def test_validate_fails_on_corrupted_layer(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    blob = _blob_path(bb_copy, manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    blob.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="digest mismatch"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_size_mismatch(bb_copy: Path) -> None:
    index = _index(bb_copy)
    index["manifests"][0]["size"] += 1
    (bb_copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(AssertionError, match="size"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_missing_blob(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    _blob_path(bb_copy, manifest["config"]["digest"]).unlink()
    with pytest.raises(AssertionError, match="missing blob"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_manifest_schema_violation(bb_copy: Path) -> None:
    """Manifest blob with correct digest/size but violating the schema (layer without mediaType,
    schemaVersion 3): only the JSON schema check can catch it."""
    _, manifest = _only_manifest(bb_copy)
    manifest["schemaVersion"] = 3
    del manifest["layers"][0]["mediaType"]
    _replace_manifest(bb_copy, manifest)
    with pytest.raises(AssertionError, match="manifest schema") as exc:
        validate_layout(bb_copy)
    msg = str(exc.value)
    assert "schemaVersion" in msg and "mediaType" in msg, msg


@BROKEN_ON_PURPOSE
def test_validate_fails_on_config_schema_violation(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    cfg = json.loads(_blob_path(bb_copy, manifest["config"]["digest"]).read_bytes())
    cfg["rootfs"]["type"] = "not-layers"
    cfg["created"] = "yesterday"
    manifest["config"].update(_put_blob(bb_copy, json.dumps(cfg).encode()))
    _replace_manifest(bb_copy, manifest)
    with pytest.raises(AssertionError, match="config schema") as exc:
        validate_layout(bb_copy)
    assert "date-time" in str(exc.value)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_diff_ids_count(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    manifest["layers"].append(manifest["layers"][0])
    _replace_manifest(bb_copy, manifest)
    with pytest.raises(AssertionError, match="2 layers but 1 diff_ids"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_bad_index_json(bb_copy: Path) -> None:
    index = _index(bb_copy)
    index["schemaVersion"] = "2"
    (bb_copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(AssertionError, match=r"index\.json: index schema"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_bad_oci_layout(bb_copy: Path) -> None:
    (bb_copy / "oci-layout").write_text('{"imageLayoutVersion": 1}')
    with pytest.raises(AssertionError, match="oci-layout: layout schema"):
        validate_layout(bb_copy)


@BROKEN_ON_PURPOSE
def test_validate_accepts_docker_v2_manifest(bb_copy: Path) -> None:
    """Docker schema 2 media types are not schema-checked, but digests/sizes still are."""
    _, manifest = _only_manifest(bb_copy)
    manifest["mediaType"] = MT_DOCKER_MANIFEST
    manifest["config"]["mediaType"] = MT_DOCKER_CONFIG
    manifest["layers"][0]["mediaType"] = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    _replace_manifest(bb_copy, manifest, MT_DOCKER_MANIFEST)
    validate_layout(bb_copy)
    _blob_path(bb_copy, manifest["config"]["digest"]).write_text("{}")
    with pytest.raises(AssertionError, match="digest mismatch"):
        validate_layout(bb_copy)


# --------------------------------------------------------------------------- layer contents, archives, outputs


def _tar_bytes(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for n in names:
            info = tarfile.TarInfo(n)
            if n.endswith("/"):
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = 2
                tf.addfile(info, io.BytesIO(b"x\n"))
    return buf.getvalue()


def _one_layer_layout(layout: Path, layer: bytes, media_type: str, diff_id: str | None = None) -> Path:
    """A single-layer image whose layer blob is ``layer`` as given, labelled ``media_type``; the config's
    diff_id is the sha256 of ``layer`` decompressed unless ``diff_id`` says otherwise."""
    if diff_id is None:
        plain = layer
        if layer[:2] == b"\x1f\x8b":
            plain = gzip.decompress(layer)
        elif layer[:4] == b"\x28\xb5\x2f\xfd":
            plain = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(layer)).read()
        diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cdesc = {"mediaType": MT_OCI_CONFIG, **write_blob(layout, json_bytes(config))}
    manifest = {"schemaVersion": 2, "mediaType": MT_OCI_MANIFEST, "config": cdesc,
                "layers": [{"mediaType": media_type, **write_blob(layout, layer)}]}
    set_tag(layout, {"mediaType": MT_OCI_MANIFEST, **write_blob(layout, json_bytes(manifest))}, "t")
    return layout


GOOD_TAR = _tar_bytes(["./", "./etc/", "./etc/hello", "usr/", "usr/bin"])


@pytest.mark.parametrize(("media_type", "compress"), [
    (MT_OCI_LAYER_GZIP, lambda b: gzip.compress(b, mtime=0)),
    (MT_OCI_LAYER_ZSTD, lambda b: zstandard.ZstdCompressor().compress(b)),
    (MT_OCI_LAYER, lambda b: b),
    (MT_DOCKER_LAYER, lambda b: gzip.compress(b, mtime=0)),
])
def test_validate_accepts_every_layer_compression(tmp_path: Path, media_type: str, compress: Any) -> None:
    validate_layout(_one_layer_layout(tmp_path / "lay", compress(GOOD_TAR), media_type))


@BROKEN_ON_PURPOSE
@pytest.mark.parametrize(("media_type", "compress", "message"), [
    (MT_OCI_LAYER_ZSTD, lambda b: gzip.compress(b, mtime=0), "means zstd, but the blob is gzip"),
    (MT_OCI_LAYER_GZIP, lambda b: zstandard.ZstdCompressor().compress(b), "means gzip, but the blob is zstd"),
    (MT_OCI_LAYER_GZIP, lambda b: b, "means gzip, but the blob is none"),
    (MT_OCI_LAYER, lambda b: gzip.compress(b, mtime=0), "means none, but the blob is gzip"),
    ("application/vnd.example.layer", lambda b: b, "not a known layer mediaType"),
])
def test_validate_fails_on_compression_mismatch(tmp_path: Path, media_type: str, compress: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        validate_layout(_one_layer_layout(tmp_path / "lay", compress(GOOD_TAR), media_type))


@BROKEN_ON_PURPOSE
def test_validate_fails_on_diff_id_mismatch(tmp_path: Path) -> None:
    wrong = "sha256:" + hashlib.sha256(b"something else").hexdigest()
    lay = _one_layer_layout(tmp_path / "lay", gzip.compress(GOOD_TAR, mtime=0), MT_OCI_LAYER_GZIP, wrong)
    with pytest.raises(AssertionError, match=f"diff_id mismatch: config says {wrong}"):
        validate_layout(lay)


@BROKEN_ON_PURPOSE
@pytest.mark.parametrize("names", [["a", "a"], ["./etc/", "etc/", "etc/x"], ["/abs", "abs"]])
def test_validate_fails_on_duplicate_paths(tmp_path: Path, names: list[str]) -> None:
    lay = _one_layer_layout(tmp_path / "lay", gzip.compress(_tar_bytes(names), mtime=0), MT_OCI_LAYER_GZIP)
    with pytest.raises(AssertionError, match="duplicate paths in layer tar"):
        validate_layout(lay)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_layer_that_is_no_tar(tmp_path: Path) -> None:
    lay = _one_layer_layout(tmp_path / "lay", gzip.compress(b"not a tar" * 100, mtime=0), MT_OCI_LAYER_GZIP)
    with pytest.raises(AssertionError, match="layer not a valid tar"):
        validate_layout(lay)


@BROKEN_ON_PURPOSE
def test_validate_fails_on_truncated_gzip(tmp_path: Path) -> None:
    lay = _one_layer_layout(tmp_path / "lay", gzip.compress(GOOD_TAR, mtime=0)[:-12], MT_OCI_LAYER_GZIP,
                            "sha256:" + hashlib.sha256(GOOD_TAR).hexdigest())
    with pytest.raises(AssertionError, match="does not decompress as gzip"):
        validate_layout(lay)


def test_validate_layer_cache_still_checks_every_copy(bb_copy: Path, tmp_path: Path) -> None:
    """A layer seen before (cached by digest) is re-hashed in each output: a corrupted copy still fails."""
    validate_layout(bb_copy)
    other = Path(shutil.copytree(bb_copy, tmp_path / "other"))
    _, manifest = _only_manifest(other)
    blob = _blob_path(other, manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="digest mismatch"):
        validate_layout(other)
    shutil.rmtree(other)  # leave only good outputs for the teardown check


def test_oci_and_docker_archives(busybox_layout: Path, tmp_path: Path) -> None:
    """Archives made by skopeo pass; archive_kinds tells them apart; a tampered docker archive fails."""
    skopeo_copy(f"oci:{busybox_layout}:busybox", f"oci-archive:{tmp_path / 'oci.tar'}:busybox")
    skopeo_copy(f"oci:{busybox_layout}:busybox", f"docker-archive:{tmp_path / 'docker.tar'}:bb/x:1")
    assert archive_kinds(tmp_path / "oci.tar") == {"oci-archive"}
    assert archive_kinds(tmp_path / "docker.tar") == {"docker-archive"}
    validate_archive(tmp_path / "oci.tar")
    validate_archive(tmp_path / "docker.tar")
    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(tmp_path / "docker.tar") as tf:
        members = tf.getmembers()
        with tarfile.open(bad / "docker.tar", "w") as out:
            for m in members:
                f = tf.extractfile(m) if m.isfile() else None
                data = f.read() if f is not None else b""
                if m.name.endswith(".tar") and data:  # the layer: one byte of the first file's content
                    data = bytearray(data)
                    data[600] ^= 0xFF
                    data = bytes(data)
                out.addfile(m, io.BytesIO(data) if m.isfile() else None)
    with pytest.raises(AssertionError, match="diff_id mismatch"):
        validate_archive(bad / "docker.tar")
    shutil.rmtree(bad)


def test_find_outputs(busybox_layout: Path, tmp_path: Path) -> None:
    lay = Path(shutil.copytree(busybox_layout, tmp_path / "out" / "lay"))
    skopeo_copy(f"oci:{busybox_layout}:busybox", f"oci-archive:{tmp_path / 'out' / 'a.tar'}:busybox")
    (tmp_path / "out" / "rootfs.tar").write_bytes(GOOD_TAR)  # a tar, but no image
    (tmp_path / "out" / "junk.tar").write_bytes(b"not a tar")
    store = tmp_path / "cache"
    shutil.copytree(busybox_layout, store / "inside")  # an image inside a content store is not an output
    (store / "selectors").mkdir()
    assert find_outputs(tmp_path) == [tmp_path / "out" / "a.tar", lay]


def test_conformance_fixture_fails_a_test_that_writes_a_broken_image(tmp_path: Path) -> None:
    """The autouse teardown check, run in an inner pytest: a broken layout under tmp_path errors the test,
    ``no_conformance`` lets it pass, a test without tmp_path is not looked at."""
    tests = Path(__file__).resolve().parent
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(
        f"import sys\nsys.path.insert(0, {str(tests)!r})\n"
        f"exec(compile(open({str(tests / 'conftest.py')!r}).read(), 'tests/conftest.py', 'exec'))\n")
    (inner / "test_inner.py").write_text(f'''
import gzip, sys
import pytest
sys.path.insert(0, {str(tests)!r})
from test_harness_selfcheck import GOOD_TAR, _one_layer_layout
from harness.layout import MT_OCI_LAYER_ZSTD

def test_broken(tmp_path):
    _one_layer_layout(tmp_path / "lay", gzip.compress(GOOD_TAR), MT_OCI_LAYER_ZSTD)

@pytest.mark.no_conformance(reason="on purpose")
def test_broken_on_purpose(tmp_path):
    _one_layer_layout(tmp_path / "lay", gzip.compress(GOOD_TAR), MT_OCI_LAYER_ZSTD)

def test_good(tmp_path):
    _one_layer_layout(tmp_path / "lay", gzip.compress(GOOD_TAR), "application/vnd.oci.image.layer.v1.tar+gzip")
''')
    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(inner),
                        "-c", str(inner / "conftest.py"), "--basetemp", str(tmp_path / "base"),
                        "-W", "ignore::pytest.PytestUnknownMarkWarning", str(inner)],
                       capture_output=True, text=True, timeout=300, check=False)
    out = p.stdout + p.stderr
    assert "3 passed, 1 error" in out, out
    assert "ERROR at teardown of test_broken " in out, out
    assert "non-conformant output written by this test" in out and "means zstd, but the blob is gzip" in out, out
    shutil.rmtree(tmp_path / "base")  # the inner tests' broken layouts are not this test's outputs

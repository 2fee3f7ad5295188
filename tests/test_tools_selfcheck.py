"""Self-checks of the independent test infrastructure (tests/tools.py, tests/conftest.py).

If these fail, every other test's verdict is meaningless: the base images, the validators (which must
be able to FAIL) and the runtimes are checked here against known answers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tools import (
    MT_DOCKER_CONFIG,
    MT_DOCKER_MANIFEST,
    MT_OCI_INDEX,
    REF_NAME,
    image_config,
    layout_from_rootfs_tar,
    make_busybox_layout,
    oci_image_tool_validate,
    reproducible_tar,
    run_image,
    skopeo_inspect,
    skopeo_inspect_raw,
    umoci_unpack,
    validate_layout,
)
from tools import podman as run_podman


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


def test_validate_fails_on_corrupted_layer(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    blob = _blob_path(bb_copy, manifest["layers"][0]["digest"])
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, different content
    blob.write_bytes(bytes(data))
    with pytest.raises(AssertionError, match="digest mismatch"):
        validate_layout(bb_copy)


def test_validate_fails_on_size_mismatch(bb_copy: Path) -> None:
    index = _index(bb_copy)
    index["manifests"][0]["size"] += 1
    (bb_copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(AssertionError, match="size"):
        validate_layout(bb_copy)


def test_validate_fails_on_missing_blob(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    _blob_path(bb_copy, manifest["config"]["digest"]).unlink()
    with pytest.raises(AssertionError, match="missing blob"):
        validate_layout(bb_copy)


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


def test_validate_fails_on_diff_ids_count(bb_copy: Path) -> None:
    _, manifest = _only_manifest(bb_copy)
    manifest["layers"].append(manifest["layers"][0])
    _replace_manifest(bb_copy, manifest)
    with pytest.raises(AssertionError, match="2 layers but 1 diff_ids"):
        validate_layout(bb_copy)


def test_validate_fails_on_bad_index_json(bb_copy: Path) -> None:
    index = _index(bb_copy)
    index["schemaVersion"] = "2"
    (bb_copy / "index.json").write_text(json.dumps(index))
    with pytest.raises(AssertionError, match=r"index\.json: index schema"):
        validate_layout(bb_copy)


def test_validate_fails_on_bad_oci_layout(bb_copy: Path) -> None:
    (bb_copy / "oci-layout").write_text('{"imageLayoutVersion": 1}')
    with pytest.raises(AssertionError, match="oci-layout: layout schema"):
        validate_layout(bb_copy)


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

"""ocibuild.spec: parsers (table-driven), round trips, canonical bytes, and purity."""

from __future__ import annotations

import ast
import hashlib
import json
import sys
from pathlib import Path

import pytest

from ocibuild.spec import (
    ContainerConfig,
    Descriptor,
    Digest,
    History,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    canonical_json,
    to_oci,
)

HEX = "a" * 64


@pytest.mark.parametrize("text", [f"sha256:{HEX}", f"sha512:{'b' * 128}"])
def test_digest_parse_roundtrip(text: str) -> None:
    assert str(Digest.parse(text)) == text


@pytest.mark.parametrize("text", [
    "", "sha256", f"sha256:{HEX[:-1]}", f"sha256:{HEX.upper()}", f"md5:{HEX[:32]}", f"sha256:{HEX}0",
    f"sha512:{HEX}", f" sha256:{HEX}", "sha256:" + "g" * 64,
])
def test_digest_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="digest"):
        Digest.parse(text)


def test_digest_of_and_verify() -> None:
    d = Digest.of(b"hello")
    assert d.hex == hashlib.sha256(b"hello").hexdigest()
    assert d.verify(b"hello") and not d.verify(b"hellO")
    assert Digest.of(b"x", "sha512").hex == hashlib.sha512(b"x").hexdigest()


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/aarch64", "linux/arm64/v8"),
    ("linux/arm64", "linux/arm64/v8"),
    ("linux/arm64/v8", "linux/arm64/v8"),
    ("linux/arm64/8", "linux/arm64/v8"),
    ("linux/arm", "linux/arm/v7"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/armhf", "linux/arm/v7"),
    ("linux/i386", "linux/386"),
    ("linux/ppc64le", "linux/ppc64le"),
    ("linux/s390x", "linux/s390x"),
    ("linux/riscv64", "linux/riscv64"),
    ("aarch64", "linux/arm64/v8"),
    ("LINUX/AMD64", "linux/amd64"),
])
def test_platform_parse(text: str, expected: str) -> None:
    assert str(Platform.parse(text)) == expected


@pytest.mark.parametrize("text", ["", "linux", "linux/", "linux/amd64/v1/x", "linux/sparc9", "beos/amd64", "/amd64"])
def test_platform_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="platform"):
        Platform.parse(text)


def test_platform_matching_and_dict() -> None:
    a = Platform.parse("linux/arm64")
    assert a.matches(Platform.from_dict({"os": "linux", "architecture": "arm64"}))
    assert a.matches(Platform.from_dict({"os": "linux", "architecture": "arm64", "variant": "v8"}))
    assert not a.matches(Platform.parse("linux/amd64"))
    assert a.to_dict() == {"os": "linux", "architecture": "arm64", "variant": "v8"}


def _desc(data: bytes, media: MediaType = MediaType.OCI_LAYER_GZIP) -> Descriptor:
    return Descriptor(media_type=media, digest=Digest.of(data), size=len(data))


def test_manifest_roundtrip_and_canonical_bytes() -> None:
    m = ImageManifest(config=_desc(b"{}", MediaType.OCI_CONFIG), layers=(_desc(b"l1"), _desc(b"l2")),
                      annotations={"b": "2", "a": "1"})
    raw = m.to_json()
    assert ImageManifest.from_json(raw) == m
    assert raw == canonical_json(json.loads(raw))
    assert b" " not in raw and raw.index(b'"a"') < raw.index(b'"b"')


def test_index_roundtrip_with_platforms() -> None:
    entry = Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.of(b"m"), size=1,
                       platform=Platform.parse("linux/arm64"))
    idx = ImageIndex(manifests=(entry,))
    assert ImageIndex.from_json(idx.to_json()) == idx
    assert json.loads(idx.to_json())["manifests"][0]["platform"] == {"architecture": "arm64", "os": "linux",
                                                                     "variant": "v8"}


@pytest.mark.parametrize(("raw", "message"), [
    (b"not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (b'{"schemaVersion": 1}', "schemaVersion"),
    (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}',
     "not an image manifest"),
    (b'{"schemaVersion": 2, "layers": []}', "missing 'config'"),
])
def test_manifest_rejects(raw: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImageManifest.from_json(raw)


def test_descriptor_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="size"):
        Descriptor.from_dict({"mediaType": "x", "digest": f"sha256:{HEX}", "size": "12"})


def test_config_roundtrip_keeps_unknown_fields() -> None:
    data = {
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "Healthcheck": {"Test": ["NONE"]},
                   "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{HEX}"]},
        "history": [{"created_by": "x"}, {"empty_layer": True, "created_by": "y"}],
        "docker_version": "20.10",
    }
    cfg = ImageConfig.from_dict(data)
    assert cfg.config.extra == {"Healthcheck": {"Test": ["NONE"]}}
    assert cfg.to_dict() == data
    more = cfg.with_layer(Digest.of(b"z"), History(created_by="ocibuild"))
    assert len(more.diff_ids) == 2 and more.history[-1].created_by == "ocibuild"
    assert ContainerConfig.from_dict(data["config"]).env_dict() == {"PATH": "/bin"}


def test_docker_types_map_to_oci() -> None:
    assert to_oci(MediaType.DOCKER_LAYER_GZIP) == MediaType.OCI_LAYER_GZIP
    assert to_oci("application/vnd.docker.image.rootfs.diff.tar.gzip") == MediaType.OCI_LAYER_GZIP
    assert to_oci("application/x-custom") == "application/x-custom"


def test_spec_imports_only_the_standard_library() -> None:
    """ocibuild.spec must stay pure: no third-party imports, no ocibuild imports outside spec."""
    spec_dir = Path(__file__).resolve().parents[1] / "ocibuild" / "spec"
    stdlib = set(sys.stdlib_module_names)
    for path in spec_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: must stay inside spec
                    assert node.level == 1, f"{path.name} imports outside ocibuild.spec"
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top == "__future__", f"{path.name} imports {name}"
    banned = {"open", "urlopen"}
    for path in spec_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
        assert not calls & banned, f"{path.name} does I/O"

"""OCI media types and small helpers to read and write OCI image layouts by hand (hashlib + json)."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def json_bytes(obj: Any) -> bytes:
    """Compact, key-sorted JSON."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    """Store bytes as a sha256 blob; return {'digest', 'size'}."""
    hexd = hashlib.sha256(data).hexdigest()
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    p = d / hexd
    if not p.exists():
        tmp = d / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        tmp.replace(p)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def set_tag(layout: Path, desc: dict[str, Any], tag: str) -> None:
    """Point ``tag`` at descriptor ``desc`` in layout/index.json (create it if missing), keep other tags."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ip = layout / "index.json"
    if ip.is_file():
        index = json.loads(ip.read_text())
    else:
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
    manifests = [m for m in index.get("manifests", [])
                 if (m.get("annotations") or {}).get(REF_NAME) != tag]
    new = dict(desc)
    new["annotations"] = {**(desc.get("annotations") or {}), REF_NAME: tag}
    manifests.append(new)
    index["manifests"] = manifests
    tmp = layout / f".index.json.tmp-{uuid.uuid4().hex}"
    tmp.write_bytes(json_bytes(index))
    tmp.replace(ip)


def tag_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    """The index.json entry of ``tag``; AssertionError if there is none."""
    index = json.loads((layout / "index.json").read_text())
    for m in index.get("manifests", []):
        if (m.get("annotations") or {}).get(REF_NAME) == tag:
            return dict(m)
    raise AssertionError(f"tag {tag!r} not found in {layout}/index.json")


def read_blob(layout: Path, digest: str) -> bytes:
    alg, _, hexd = digest.partition(":")
    return (layout / "blobs" / alg / hexd).read_bytes()


def copy_blobs(src: Path, dest: Path) -> None:
    """Copy every blob of layout ``src`` that layout ``dest`` does not have yet."""
    for f in (src / "blobs").rglob("*"):
        if f.is_file():
            tgt = dest / f.relative_to(src)
            if not tgt.exists():
                tgt.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, tgt)


def image_config(layout: Path, tag: str) -> dict[str, Any]:
    """Config JSON of a single-manifest tag (not an index)."""
    desc = tag_descriptor(layout, tag)
    if desc.get("mediaType") not in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST):
        raise AssertionError(f"{layout}:{tag} is a {desc.get('mediaType')}, not a single manifest")
    manifest = json.loads(read_blob(layout, desc["digest"]))
    cfg: dict[str, Any] = json.loads(read_blob(layout, manifest["config"]["digest"]))
    return cfg


def layout_index_of(dest: Path, tag: str, images: Sequence[tuple[Path, str]]) -> Path:
    """Join single-platform images (layout, tag) into one OCI image index tagged ``tag`` in ``dest``,
    with each entry's platform read from its config. Blobs are copied. Returns ``dest``."""
    entries = []
    for layout, image_tag in images:
        desc = tag_descriptor(layout, image_tag)
        manifest = json.loads(read_blob(layout, desc["digest"]))
        config = json.loads(read_blob(layout, manifest["config"]["digest"]))
        copy_blobs(layout, dest)
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        entries.append({"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
                        "platform": platform})
    index = write_blob(dest, json_bytes({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": entries}))
    set_tag(dest, {"mediaType": MT_OCI_INDEX, **index}, tag)
    return dest


def image_layers(layout: Path, tag: str, *, arch: str | None = None) -> list[tuple[str, Path]]:
    """``(history line, blob path)`` of each layer of the image under ``tag`` (for an index: the entry
    of ``arch``), bottom first. A history line is ``created_by`` (+ `` | comment``)."""
    desc = tag_descriptor(layout, tag)
    manifest = json.loads(read_blob(layout, desc["digest"]))
    if "manifests" in manifest:
        entries = [m for m in manifest["manifests"]
                   if arch is None or m.get("platform", {}).get("architecture") == arch]
        if len(entries) != 1:
            raise AssertionError(f"{layout}:{tag}: {len(entries)} index entries for architecture {arch!r}")
        manifest = json.loads(read_blob(layout, entries[0]["digest"]))
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    history = [h for h in config.get("history", []) if not h.get("empty_layer")]
    out = []
    for i, layer in enumerate(manifest["layers"]):
        h = history[i] if i < len(history) else {}
        title = h.get("created_by", f"layer {i}") + (f" | {h['comment']}" if h.get("comment") else "")
        alg, _, hexd = layer["digest"].partition(":")
        out.append((f"{i}: {title}", layout / "blobs" / alg / hexd))
    return out


def images_of_index(index: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a layout's ``index.json`` that are images or indexes, not the artifacts (SBOMs,
    provenance) attached to them, which are listed untagged with an ``artifactType``."""
    return [m for m in index["manifests"] if "artifactType" not in m]

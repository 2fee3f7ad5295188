"""What an image in an OCI layout holds, read straight from its layer tars (independently of ocibuild)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from .layout import MT_DOCKER_LIST, MT_OCI_INDEX, read_blob, tag_descriptor


def _blob_path(layout: Path, digest: str) -> Path:
    alg, _, hexd = digest.partition(":")
    return layout / "blobs" / alg / hexd


def _manifest_paths(layout: Path, digest: str, skip_layers: int) -> set[str]:
    manifest = json.loads(read_blob(layout, digest))
    names: set[str] = set()
    for layer in manifest["layers"][skip_layers:]:
        with _blob_path(layout, layer["digest"]).open("rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            names.update(m.name.removeprefix("./").rstrip("/") for m in tar)
    return names


def image_paths(layout: Path, tag: str, *, skip_layers: int = 0) -> dict[str, set[str]]:
    """Architecture (``amd64``, ``arm64``...) -> every path any layer of that image holds (whiteouts
    and overwrites not applied), for a single image or each image of an index. ``skip_layers``
    leaves out the first layers (the base's)."""
    desc = tag_descriptor(layout, tag)
    if desc.get("mediaType") not in (MT_OCI_INDEX, MT_DOCKER_LIST):
        config = json.loads(read_blob(layout, json.loads(read_blob(layout, desc["digest"]))["config"]["digest"]))
        return {config["architecture"]: _manifest_paths(layout, desc["digest"], skip_layers)}
    index = json.loads(read_blob(layout, desc["digest"]))
    return {m["platform"]["architecture"]: _manifest_paths(layout, m["digest"], skip_layers)
            for m in index["manifests"]}


def dist_infos(paths: set[str]) -> set[str]:
    """The ``NAME-VERSION.dist-info`` folders installed in any ``site-packages`` among ``paths``."""
    return {p.split("/site-packages/", 1)[1].split("/", 1)[0] for p in paths
            if "/site-packages/" in p and p.split("/site-packages/", 1)[1].split("/", 1)[0].endswith(".dist-info")}

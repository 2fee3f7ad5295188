"""Rebuilding a published image from its plan: reproduced, or the first layer that differs and its files."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from harness.layout import read_blob, tag_descriptor, write_blob

import ocibuild
from ocibuild.rebuild import offline_plan, rebuild
from ocibuild.sources import resolve_base
from ocibuild.transports import OciLayout

ENV = {"SOURCE_DATE_EPOCH": "1700000000"}


def project(root: Path) -> Path:
    app = root / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "main.py").write_text("print('hello')\n")
    (app / "pkg" / "data.txt").write_text("data\n")
    (app / "run.sh").write_text("#!/bin/sh\n")
    (app / "ocibuild.toml").write_text('base = "scratch"\nentrypoint = ["/app/run.sh"]\n'
                                       '[[layers]]\nname = "code"\nsrc = "pkg"\ndest = "/app/pkg"\n'
                                       '[[layers]]\nname = "run"\nsrc = "run.sh"\ndest = "/app/run.sh"\n')
    return app


def tamper(layout: Path, tag: str, layer_index: int, path: str, content: bytes) -> None:
    """Rewrite ``path`` in one layer, and the config and manifest to match (a consistent, other image)."""
    manifest = json.loads(read_blob(layout, tag_descriptor(layout, tag)["digest"]))
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    old = gzip.decompress(read_blob(layout, manifest["layers"][layer_index]["digest"]))
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(old)) as src, tarfile.open(fileobj=out, mode="w",
                                                                      format=tarfile.PAX_FORMAT) as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == path:
                data = content
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    tar = out.getvalue()
    layer = write_blob(layout, gzip.compress(tar, mtime=0))
    layer["mediaType"] = manifest["layers"][layer_index]["mediaType"]
    manifest["layers"][layer_index] = layer
    import hashlib

    config["rootfs"]["diff_ids"][layer_index] = "sha256:" + hashlib.sha256(tar).hexdigest()
    cfg = write_blob(layout, json.dumps(config).encode())
    manifest["config"] = {**cfg, "mediaType": manifest["config"]["mediaType"]}
    desc = write_blob(layout, json.dumps(manifest).encode())
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            m.update(digest=desc["digest"], size=desc["size"])
    (layout / "index.json").write_text(json.dumps(index))


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ocibuild.BuildPlan, Path]:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", ENV["SOURCE_DATE_EPOCH"])
    app = project(tmp_path)
    plan = ocibuild.load_plan(app)
    layout = tmp_path / "out"
    ocibuild.publish(ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store")), [f"oci:{layout}:v1"])
    return plan, layout


def test_a_faithful_rebuild_is_reproduced(tmp_path: Path, published: tuple[ocibuild.BuildPlan, Path]) -> None:
    plan, layout = published
    image = resolve_base(OciLayout(path=layout, tag="v1"), ocibuild.ContentStore(tmp_path / "read"))
    # in a fresh store, from another working folder (the project moved)
    moved = tmp_path / "elsewhere" / "app"
    shutil.copytree(plan.project_dir, moved)
    report = rebuild(offline_plan(ocibuild.BuildPlan.from_dict(plan.to_dict()), None, moved), image)
    assert report.reproduced and report.summary() == f"reproduced {image.digest}"


def test_a_changed_file_names_its_layer_and_the_file(tmp_path: Path,
                                                      published: tuple[ocibuild.BuildPlan, Path]) -> None:
    plan, layout = published
    tamper(layout, "v1", 0, "app/pkg/data.txt", b"other data\n")
    image = resolve_base(OciLayout(path=layout, tag="v1"), ocibuild.ContentStore(tmp_path / "read"))
    report = rebuild(plan, image)
    assert not report.reproduced
    first = report.differences[0]
    assert (first.index, first.files) == (0, ("/app/pkg/data.txt",))
    assert first.created_by.startswith("ocibuild: COPY pkg /app/pkg")
    summary = report.summary()
    assert "layer 1 (ocibuild: COPY pkg /app/pkg) differs" in summary and "/app/pkg/data.txt" in summary

"""Whole builds through the library: golden digests, config inheritance, annotations, history."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from ocibuild import BuildPlan, ContentStore, ImageSettings, LayerSpec, build, load_plan, parse_location, publish
from ocibuild.spec import ImageConfig, ImageManifest

GOLDEN = Path(__file__).parent / "data" / "golden"
# Pinned: changes only if the layer recipe, the config/manifest shape or the compressor changes.
# If you change one of those on purpose, update this value and say why in the commit message.
GOLDEN_MANIFEST_DIGEST = "sha256:83d11efd8c6138505ab6145724432be2246bdecbdea1e706c394e79b13d44cee"


def _copy_golden(dest: Path, *, mtime: int, umask: int) -> Path:
    old = os.umask(umask)
    try:
        shutil.copytree(GOLDEN, dest, copy_function=shutil.copyfile)  # new files get this umask's modes
    finally:
        os.umask(old)
    (dest / "bin" / "run").chmod(0o777 & ~umask | 0o100)
    for root, dirs, files in os.walk(dest):
        for name in dirs + files:
            os.utime(Path(root) / name, (mtime, mtime))
    return dest


def _golden_build(project: Path, store: ContentStore, out: Path) -> dict[str, str]:
    plan = load_plan(project, environ={"SOURCE_DATE_EPOCH": "1700000000"}).with_outputs(f"oci:{out}:golden")
    result = publish(build(plan, store=store))
    return {"manifest": str(result.image.digest), "config": str(result.image.manifest.config.digest),
            **{r.label: str(r.descriptor.digest) for r in result.layers}}


def test_golden_digests_are_reproducible(tmp_path: Path) -> None:
    a = _golden_build(_copy_golden(tmp_path / "one" / "proj", mtime=1_000_000, umask=0o022),
                      ContentStore(tmp_path / "store-a"), tmp_path / "out-a")
    b = _golden_build(_copy_golden(tmp_path / "two" / "deeper" / "p", mtime=1_600_000_000, umask=0o077),
                      ContentStore(tmp_path / "store-b"), tmp_path / "out-b")
    assert a == b
    assert (tmp_path / "out-a" / "index.json").read_bytes() == (tmp_path / "out-b" / "index.json").read_bytes()
    assert a["manifest"] == GOLDEN_MANIFEST_DIGEST


def test_golden_config_and_manifest_content(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    plan = load_plan(GOLDEN, environ={"SOURCE_DATE_EPOCH": "1700000000"})
    result = build(plan, store=store)
    manifest = ImageManifest.from_json(result.image.manifest_bytes)
    config = ImageConfig.from_json(result.image.config_bytes)
    assert manifest.config.digest.verify(result.image.config_bytes)
    c = config.config
    assert c.entrypoint == ("/srv/bin/run",) and c.cmd == ("--verbose",)
    assert c.working_dir == "/srv" and c.user == "65532:65532"
    assert c.env_dict() == {"APP_MODE": "production", "PYTHONUNBUFFERED": "1"}
    assert c.exposed_ports == ("8080/tcp", "9090/udp")
    assert c.labels == {"org.opencontainers.image.title": "golden"}
    assert config.created == "2023-11-14T22:13:20Z"
    assert [h.created_by for h in config.history] == [
        "ocibuild: COPY app /srv/app", "ocibuild: COPY app/model.bin /srv/models/", "ocibuild: COPY bin /srv/bin"]
    assert manifest.annotations == {"org.opencontainers.image.created": "2023-11-14T22:13:20Z",
                                    "org.opencontainers.image.version": "1.0"}
    assert len(manifest.layers) == 3 == len(config.diff_ids)


def _busybox_like_base(tmp_path: Path, store: ContentStore) -> Path:
    """A base layout with env/cmd/entrypoint/labels set, made by ocibuild from scratch."""
    src = tmp_path / "basesrc"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "tool").write_text("x")
    plan = BuildPlan(
        project_dir=src, layers=(LayerSpec(src=Path("."), dest="/"),),
        settings=ImageSettings(entrypoint=("/bin/tool",), cmd=("--help",), env={"PATH": "/bin", "A": "1"},
                               labels={"base": "yes"}, workdir="/base", user="1000", ports=("22/tcp",)),
        outputs=(parse_location(f"oci:{tmp_path / 'base'}:v1"),),
    )
    publish(build(plan, store=store))
    return tmp_path / "base"


def test_base_config_is_inherited_then_overridden(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    base = _busybox_like_base(tmp_path, store)
    app = tmp_path / "app"
    app.mkdir()
    (app / "x.txt").write_text("x")
    plan = BuildPlan(project_dir=app, base=parse_location(f"oci:{base}:v1"),
                     layers=(LayerSpec(src=Path("."), dest="/app"),),
                     settings=ImageSettings(env={"A": "2", "B": "3"}, labels={"app": "1"}))
    result = build(plan, store=store)
    c = result.image.config.config
    assert c.entrypoint == ("/bin/tool",) and c.cmd == ("--help",)  # inherited
    assert c.env == ("PATH=/bin", "A=2", "B=3")
    assert c.labels == {"base": "yes", "app": "1"} and c.working_dir == "/base" and c.user == "1000"
    assert c.exposed_ports == ("22/tcp",)
    base_manifest_digest = json.loads((base / "index.json").read_text())["manifests"][0]["digest"]
    assert result.image.manifest.annotations["org.opencontainers.image.base.digest"] == base_manifest_digest
    assert "org.opencontainers.image.base.name" not in result.image.manifest.annotations
    assert result.image.manifest.layers[0] == result.base.manifest.layers[0]  # base layer kept byte for byte
    assert len(result.image.config.history) == 2

    # an entrypoint without a cmd clears the base's cmd (as Docker does); a cmd alone keeps the entrypoint
    only_ep = build(replace(plan, settings=ImageSettings(entrypoint=("/app/run",))), store=store)
    assert only_ep.image.config.config.cmd is None
    only_cmd = build(replace(plan, settings=ImageSettings(cmd=("x",))), store=store)
    assert only_cmd.image.config.config.entrypoint == ("/bin/tool",) and only_cmd.image.config.config.cmd == ("x",)


def test_unchanged_inputs_hit_the_layer_cache(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "store")
    project = _copy_golden(tmp_path / "p", mtime=1, umask=0o022)
    plan = load_plan(project)
    first = build(plan, store=store)
    assert [r.cached for r in first.layers] == [False, False, False]
    (project / "bin" / "run").write_text("#!/bin/sh\necho changed\n")
    second = build(plan, store=store)
    assert [r.cached for r in second.layers] == [True, True, False]
    assert second.layers[0].descriptor == first.layers[0].descriptor


@pytest.mark.parametrize("compression", ["zstd", "none"])
def test_compression_choice_sets_layer_media_type(tmp_path: Path, compression: str) -> None:
    store = ContentStore(tmp_path / "store")
    plan = load_plan(GOLDEN)
    plan = replace(plan, compression=type(plan.compression).parse(compression))
    result = build(plan, store=store)
    assert {str(d.media_type) for d in result.image.manifest.layers} == {
        f"application/vnd.oci.image.layer.v1.tar+{compression}" if compression != "none"
        else "application/vnd.oci.image.layer.v1.tar"}

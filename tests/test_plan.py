"""The build plan as a contract: lossless to_dict/from_dict, a committed JSON Schema that every
plan validates against, --print-plan / --plan on the command line, explicit layer entries."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ocibuild import (
    BuildPlan,
    ConfigError,
    ContentStore,
    FileEntry,
    ImageSettings,
    LayerError,
    LayerSpec,
    ModelSpec,
    Platform,
    PythonSpec,
    build,
    load_plan,
    parse_location,
    plan_schema,
)
from ocibuild.layers import Compression
from ocibuild.transports import DebianBase

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"


def _debian() -> DebianBase:
    from ocibuild.debian.spec import DebianSpec

    return DebianBase(spec=DebianSpec(suite="bookworm", packages=("python3", "tini"), mirror="file:///srv/debian",
                                      deb_dir=Path("/srv/debs"), components=("main", "contrib"), allow_unsigned=True,
                                      keyring=Path("/k.gpg"), exclude=("debconf",), merged_usr=False, slim=False,
                                      user="0", security=True, security_mirror="http://127.0.0.1/sec", bytecode=False),
                      lock=Path("debian.lock"), architectures=("amd64", "arm64", "armhf"))


FULL = BuildPlan(
    project_dir=Path("/work/proj"),
    base=_debian(),
    bases={"linux/amd64": parse_location("docker://127.0.0.1:5000/base/py:1"),
           "linux/arm64/v8": parse_location("oci:/bases/arm:py"),
           "linux/arm/v7": parse_location("oci-archive:/bases/armv7.tar:py"),
           "linux/s390x": parse_location("docker-archive:/bases/s390x.tar:base:1")},
    platforms=(Platform.parse("linux/amd64"), Platform.parse("linux/arm64/v8"),
               Platform(os="windows", architecture="amd64", os_version="10.0.17763", os_features=("win32k",))),
    layers=(LayerSpec(src=Path("app"), dest="/app", exclude=("*.log", "tmp/"), name="code"),
            LayerSpec(dest="/opt/extra", name="sandboxed",
                      files=(FileEntry(src=Path("/bazel-out/bin/tool"), dest="/opt/extra/tool", mode=0o755),
                             FileEntry(src=Path("/bazel-out/data"), dest="/opt/extra/data")))),
    settings=ImageSettings(entrypoint=("python3", "-m", "app"), cmd=("--port", "8080"), workdir="/app", user="65532",
                           env={"A": "1", "B": "two"}, labels={"l": "v"}, annotations={"org.example": "x"},
                           ports=("8080/tcp", "53/udp"), volumes=("/data",), stop_signal="SIGINT"),
    compression=Compression.parse("zstd:9"),
    outputs=(parse_location("oci:out/app:v1"), parse_location("docker://127.0.0.1:5000/app:v1"),
             parse_location("oci-archive:out/app.tar:v1"), parse_location("docker-archive:out/d.tar:app:v1")),
    python=PythonSpec(requirements=Path("requirements.txt"), lock=Path("uv.lock"), project=True, venv="/venv",
                      interpreter="/usr/bin/python3",
                      python_version="3.13", libc="glibc", libc_version="2.41", index_url="http://127.0.0.1/simple",
                      extra_index_urls=("http://127.0.0.1/extra",), find_links=("/wheels",), no_index=True,
                      max_layers=7, big_wheel_mb=2.5, bytecode=False, package="api"),
    models=(ModelSpec(name="weights", src=Path("weights"), include=("*.safetensors",), exclude=("*.md",)),
            ModelSpec(name="tok.v2", src=Path("/models/tokenizer.json"), include=("x",), exclude=("y",))),
    embed_models=True,
    weights_lock=Path("/work/proj/weights.lock"),
    source_date_epoch=1700000000,
    cache_repo="registry.example.com/team/cache",
    uid=1000,
    gid=1001,
)


def _non_default_everywhere(value: Any, where: str = "plan") -> None:
    """Every field of every dataclass in FULL differs from its default, so the round trip covers it."""
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        if f.default is not dataclasses.MISSING:
            assert v != f.default, f"{where}.{f.name} keeps its default; the test would not cover it"
        if dataclasses.is_dataclass(v):
            _non_default_everywhere(v, f"{where}.{f.name}")


def test_round_trip_is_lossless_over_every_field() -> None:
    _non_default_everywhere(FULL)
    _non_default_everywhere(FULL.python)
    _non_default_everywhere(FULL.layers[1].files[0])
    data = FULL.to_dict()
    assert BuildPlan.from_dict(data) == FULL
    assert BuildPlan.from_dict(json.loads(json.dumps(data))) == FULL  # through real JSON text
    assert set(data) == {"version", *(f.name for f in dataclasses.fields(BuildPlan))}
    again = BuildPlan(project_dir=Path("p"), platforms="all")
    assert BuildPlan.from_dict(again.to_dict()) == again


@pytest.mark.parametrize("plan", [FULL, BuildPlan(project_dir=Path(".")), BuildPlan(project_dir=Path("x"),
                                                                                     platforms="all")])
def test_plans_match_the_committed_schema(plan: BuildPlan) -> None:
    jsonschema.Draft202012Validator.check_schema(plan_schema())
    jsonschema.validate(plan.to_dict(), plan_schema())


def test_build_file_plans_round_trip() -> None:
    for project in (GOLDEN, REPO / "examples" / "iris-server", REPO / "examples" / "hello"):
        plan = load_plan(project)
        jsonschema.validate(plan.to_dict(), plan_schema())
        assert BuildPlan.from_dict(json.loads(plan.to_json())) == plan


@pytest.mark.parametrize(("data", "fragment"), [
    ({"project_dir": "x", "platfroms": []}, "unknown key 'platfroms'"),
    ({"project_dir": "x", "uid": "0"}, "plan.uid must be a whole number"),
    ({"project_dir": "x", "settings": {"env": {"A": 1}}}, "plan.settings.env.A must be a string"),
    ({"project_dir": "x", "platforms": "some"}, "plan.platforms"),
    ({"project_dir": "x", "base": "oci:"}, "plan.base"),
    ({"project_dir": "x", "compression": "lzma"}, "unknown compression 'lzma'"),
    ({"project_dir": "x", "version": 99}, "plan version 99 is not supported"),
    ({"base": "scratch"}, "'project_dir' is required"),
    ({"project_dir": "x", "layers": [{"files": [{"src": "/a"}]}]}, "dest"),
])
def test_bad_plans_name_the_key(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        BuildPlan.from_dict(data)
    assert fragment in str(info.value)


def test_explicit_entries_may_come_from_outside_the_project(tmp_path: Path) -> None:
    outside = tmp_path / "sandbox" / "bin"
    outside.mkdir(parents=True)
    (outside / "tool").write_text("#!/bin/sh\necho hi\n")
    (outside / "notes.txt").write_text("n")
    project = tmp_path / "proj"
    project.mkdir()
    plan = BuildPlan(project_dir=project, layers=(LayerSpec(name="tools", files=(
        FileEntry(src=outside / "tool", dest="/opt/tool", mode=0o755),
        FileEntry(src=outside / "notes.txt", dest="/opt/notes.txt"))),))
    result = build(plan, store=ContentStore(tmp_path / "c"))
    import tarfile

    with result.image.layers[0].uncompressed() as f, tarfile.open(fileobj=f, mode="r|") as tar:
        members = {m.name: m.mode for m in tar}
    assert members == {"opt": 0o755, "opt/tool": 0o755, "opt/notes.txt": 0o644}
    # the build file keeps its rule: a layer source outside the project is an error
    (project / "ocibuild.toml").write_text(f'base = "scratch"\n[[layers]]\nsrc = "{outside}"\ndest = "/x"\n')
    with pytest.raises(LayerError, match="outside the project folder"):
        load_plan(project)


def _cli(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000"}
    return subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_print_plan_then_build_from_it_gives_the_same_digest(tmp_path: Path) -> None:
    printed = _cli("build", GOLDEN, "--output", f"oci:{tmp_path / 'never'}:t", "--print-plan", cache=tmp_path / "c")
    assert printed.returncode == 0, printed.stderr
    plan = json.loads(printed.stdout)  # one JSON document on stdout
    jsonschema.validate(plan, plan_schema())
    assert not (tmp_path / "never").exists() and not (tmp_path / "c" / "selectors").exists()  # built nothing
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(printed.stdout)
    from_file = _cli("build", "--plan", plan_file, "--output", f"oci:{tmp_path / 'a'}:t", cache=tmp_path / "c")
    direct = _cli("build", GOLDEN, "--output", f"oci:{tmp_path / 'b'}:t", cache=tmp_path / "c2")
    assert from_file.returncode == 0 and direct.returncode == 0, from_file.stderr + direct.stderr
    assert from_file.stdout.strip() == direct.stdout.strip()
    assert from_file.stdout.strip().startswith("sha256:")
    # the plan file is all the build reads: the build file is not consulted again
    (plan_file.parent / "broken").mkdir()
    moved = {**plan, "project_dir": str(GOLDEN)}
    plan_file.write_text(json.dumps(moved))
    again = _cli("build", "--plan", plan_file, "--config", tmp_path / "broken" / "missing.toml",
                 "--output", f"oci:{tmp_path / 'd'}:t", cache=tmp_path / "c")
    assert again.stdout.strip() == direct.stdout.strip(), again.stderr


def test_bad_plan_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{not json")
    proc = _cli("build", "--plan", bad, cache=tmp_path / "c")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--plan" in proc.stderr and "not valid JSON" in proc.stderr
    bad.write_text(json.dumps({"project_dir": "x", "layerz": []}))
    proc = _cli("build", "--plan", bad, cache=tmp_path / "c")
    assert proc.returncode == 1 and "unknown key 'layerz'" in proc.stderr

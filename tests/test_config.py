"""Build files and overrides -> BuildPlan (library level; CLI error lines are in test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ocibuild import ConfigError, OciArchive, OciLayout, Overrides, load_plan
from ocibuild.spec import Platform
from ocibuild.transports import DebianBase


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path.parent


def test_defaults_without_build_file(tmp_path: Path) -> None:
    plan = load_plan(tmp_path, environ={})
    assert isinstance(plan.base, DebianBase) and plan.platforms == () and plan.outputs == ()  # Debian's python3
    assert "python3" in plan.base.spec.packages and plan.base.lock is None
    assert [(str(x.src), x.dest) for x in plan.layers] == [(".", "/app")]
    assert plan.settings.workdir == "/app" and plan.source_date_epoch == 0
    assert str(plan.compression) == "gzip:1"


def test_pyproject_table_and_relative_paths(tmp_path: Path) -> None:
    project = write(tmp_path / "p" / "pyproject.toml", """
[project]
name = "demo"
[tool.ocibuild]
base = "oci:../bases/py:latest"
platform = "linux/arm64"
entrypoint = "python3 -m demo --port 8080"
outputs = ["oci-archive:dist/demo.tar:1"]
compression = "zstd:5"
[[tool.ocibuild.layers]]
src = "src"
dest = "/opt/demo"
exclude = "*.md"
""")
    plan = load_plan(project, environ={"SOURCE_DATE_EPOCH": "86400"})
    assert plan.base == OciLayout(path=project / "../bases/py", tag="latest")
    assert plan.platforms == (Platform.parse("linux/arm64/v8"),)
    assert plan.settings.entrypoint == ("python3", "-m", "demo", "--port", "8080")
    assert plan.outputs == (OciArchive(path=project / "dist/demo.tar", tag="1"),)
    assert plan.layers[0].exclude == ("*.md",) and plan.settings.workdir is None
    assert str(plan.compression) == "zstd:5" and plan.source_date_epoch == 86400


def test_ocibuild_toml_wins_and_cli_overrides(tmp_path: Path) -> None:
    project = write(tmp_path / "ocibuild.toml", 'cmd = ["a"]\nenv = { A = "1", N = 2 }\nlabels = { x = "y" }\n')
    write(tmp_path / "pyproject.toml", '[tool.ocibuild]\ncmd = ["ignored"]\n')
    plan = load_plan(project, overrides=Overrides(cmd='["b", "c"]', env=("B=2", "A=3"), base="oci-archive:x.tar",
                                                  outputs=("oci:o",), ports=("53/udp", "8080")), environ={})
    s = plan.settings
    assert s.cmd == ("b", "c") and s.env == {"A": "3", "N": "2", "B": "2"} and s.labels == {"x": "y"}
    assert plan.base == OciArchive(path=Path("x.tar"))  # CLI paths stay relative to the current folder
    assert plan.outputs == (OciLayout(path=Path("o")),) and s.ports == ("53/udp", "8080/tcp")


def test_explicit_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "conf" / "build.toml"
    write(cfg, 'user = "nobody"\n')
    assert load_plan(tmp_path, config_file=cfg, environ={}).settings.user == "nobody"
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(tmp_path, config_file=tmp_path / "missing.toml", environ={})


@pytest.mark.parametrize(("environ", "message"), [
    ({"SOURCE_DATE_EPOCH": "yesterday"}, "not a whole number"),
    ({"SOURCE_DATE_EPOCH": "-5"}, "must not be negative"),
])
def test_bad_source_date_epoch(tmp_path: Path, environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_plan(tmp_path, environ=environ)


def test_missing_project_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_plan(tmp_path / "nope", environ={})


def test_python_keys_come_from_the_spec_fields(tmp_path: Path) -> None:
    """Every PythonSpec field is a [python] key (big_wheel_mb included); a typo suggests the key."""
    from ocibuild import PythonSpec
    from ocibuild.config import PYTHON_KEYS

    assert set(PYTHON_KEYS) == {f for f in PythonSpec.__dataclass_fields__}
    (tmp_path / "ocibuild.toml").write_text('base = "scratch"\n[python]\nrequirements = "r.txt"\nbig_wheel_mb = 2\n')
    plan = load_plan(tmp_path, environ={})
    assert plan.python is not None and plan.python.big_wheel_mb == 2.0
    (tmp_path / "ocibuild.toml").write_text('base = "scratch"\n[python]\nbig_wheel_mbs = 2\n')
    with pytest.raises(ConfigError, match="unknown key 'big_wheel_mbs'; did you mean 'big_wheel_mb'"):
        load_plan(tmp_path, environ={})
    (tmp_path / "ocibuild.toml").write_text('base = "scratch"\n[python]\nbig_wheel_mb = -1\n')
    with pytest.raises(ConfigError, match="big_wheel_mb must be a positive number"):
        load_plan(tmp_path, environ={})


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"interpreter": "/usr/bin/python3", "python_version": "3.11", "libc": "bionic"}, "python.libc 'bionic'"),
    ({"interpreter": "/usr/bin/python3", "python_version": "3.11", "libc_version": "two"},
     "python.libc_version 'two'"),
    ({"interpreter": "python3"}, "python.interpreter 'python3'"),
    ({"python_version": "2.7"}, "python.python_version '2.7'"),
])
def test_library_errors_name_the_build_file_key(kwargs: dict[str, str], key: str) -> None:
    from ocibuild.image import MemoryImage
    from ocibuild.python.target import detect_target
    from ocibuild.spec import ImageConfig

    with pytest.raises(ConfigError) as info:
        detect_target(MemoryImage.assemble(ImageConfig(platform=Platform.parse("linux/amd64")), ()), **kwargs)
    assert key in str(info.value) and "--" not in str(info.value)


def test_cli_adds_the_flag_to_a_key_it_can_set(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "requirements.txt").write_text("six\n")
    proc = subprocess.run([sys.executable, "-m", "ocibuild", "build", str(tmp_path), "--base", "scratch",
                           "--requirements", str(tmp_path / "requirements.txt"), "--python", "python3",
                           "--output", f"oci:{tmp_path / 'o'}:t"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OCIBUILD_CACHE": str(tmp_path / "c")}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "python.interpreter (--python) 'python3' must be an absolute path" in proc.stderr, proc.stderr

"""Environment markers are evaluated for each target, not for the build machine: one requirements file
(or uv.lock, or pylock.toml) may pin a package differently per CPU or per Python version. Real uv,
real PyPI, a Debian trixie (Python 3.13) base assembled by ocibuild and a bookworm (3.11) base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.files import dist_infos, image_paths

from ocibuild.errors import ConfigError
from ocibuild.python.resolve import marker_environment, parse_requirements, pylock_pins
from ocibuild.python.targetpy import TargetPython
from ocibuild.spec import Platform

BY_MACHINE = 'six==1.16.0 ; platform_machine == "x86_64"\nsix==1.15.0 ; platform_machine == "aarch64"\n'
BY_PYTHON = 'six==1.16.0 ; python_version < "3.12"\nsix==1.17.0 ; python_version >= "3.12"\n'
TRIXIE = '[base.debian]\nsuite = "trixie"\n'


def target(arch: str = "amd64", version: str = "3.13") -> TargetPython:
    return TargetPython(interpreter=f"/usr/bin/python{version}", version=version, full_version="",
                        implementation="cp", platform=Platform.parse(f"linux/{arch}"), libc="glibc",
                        libc_version="2.41")


@pytest.mark.parametrize(("text", "arch", "version", "expected"), [
    (BY_MACHINE, "amd64", "3.13", "1.16.0"),
    (BY_MACHINE, "arm64", "3.13", "1.15.0"),
    (BY_PYTHON, "amd64", "3.11", "1.16.0"),
    (BY_PYTHON, "arm64", "3.13", "1.17.0"),
    # uv export / pip-compile style: marker, then the hashes on continuation lines
    ('six==1.16.0 ; sys_platform == "win32" \\\n    --hash=sha256:' + "a" * 64 + '\nsix==1.17.0 ; os_name == "posix" '
     '\\\n    --hash=sha256:' + "b" * 64 + "\n", "amd64", "3.13", "1.17.0"),
])
def test_requirement_lines_are_pinned_for_their_target(text: str, arch: str, version: str, expected: str) -> None:
    pins = parse_requirements(text, marker_environment(target(arch, version)))
    assert pins["six"].version == expected


def test_line_whose_marker_is_false_everywhere_gives_no_pin_and_bad_marker_is_named() -> None:
    assert parse_requirements('colorama==0.4.6 ; sys_platform == "win32"\n', marker_environment(target())) == {}
    with pytest.raises(ConfigError, match=r"requirements.txt: environment marker .python_version << .3.. cannot "
                                          r"be evaluated .*; fix it"):
        parse_requirements("six==1.17.0 ; python_version << '3'\n", marker_environment(target()),
                           source="requirements.txt")


def test_pylock_entries_are_taken_per_target(tmp_path: Path) -> None:
    lock = tmp_path / "pylock.toml"
    lock.write_text('lock-version = "1.0"\ncreated-by = "test"\n'
                    '[[packages]]\nname = "six"\nversion = "1.16.0"\nmarker = "platform_machine == \'x86_64\'"\n'
                    '[[packages]]\nname = "six"\nversion = "1.15.0"\nmarker = "platform_machine == \'aarch64\'"\n')
    assert pylock_pins(lock, target("amd64"))["six"].version == "1.16.0"
    assert pylock_pins(lock, target("arm64"))["six"].version == "1.15.0"


# ---------------------------------------------------------------------------------------------------
# real builds: check the installed distributions in the image layers
# ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One content store for this module: the trixie base is assembled once, six downloaded once."""
    return tmp_path_factory.mktemp("markers-store")


def ocibuild(project: Path, *args: str, store: Path) -> dict[str, object]:
    env = {**os.environ, "OCIBUILD_CACHE": str(store), "SOURCE_DATE_EPOCH": "1700000000"}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", "build", str(project), "--json", *args],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def installed(layout: Path) -> dict[str, set[str]]:
    """Architecture -> the six and iniconfig dist-info folders in that image's layers."""
    return {arch: {d for d in dist_infos(paths) if d.startswith(("six-", "iniconfig-"))}
            for arch, paths in image_paths(layout, "t").items()}


# six pinned per CPU, iniconfig per Python version: 1.16.0 / 1.15.0 and 2.0.0 (< 3.12) / 2.1.0
PINS = (BY_MACHINE + 'iniconfig==2.0.0 ; python_version < "3.12"\n'
        'iniconfig==2.1.0 ; python_version >= "3.12"\n')
ON_313 = {"amd64": {"six-1.16.0.dist-info", "iniconfig-2.1.0.dist-info"},
          "arm64": {"six-1.15.0.dist-info", "iniconfig-2.1.0.dist-info"}}
TWO_PLATFORMS = 'platforms = ["linux/amd64", "linux/arm64"]\n'


def app(folder: Path, build_file: str) -> Path:
    folder.mkdir()
    (folder / "requirements.txt").write_text(PINS)
    (folder / "app.py").write_text("import six, iniconfig\n")
    (folder / "ocibuild.toml").write_text(build_file)
    return folder


@pytest.mark.slow
def test_pins_per_cpu_and_python_in_a_two_platform_index(tmp_path: Path, store: Path) -> None:
    project = app(tmp_path / "app", TWO_PLATFORMS + '[python]\nrequirements = "requirements.txt"\n' + TRIXIE)
    ocibuild(project, "--output", f"oci:{tmp_path / 'req'}:t", store=store)
    assert installed(tmp_path / "req") == ON_313

    # the same pins as a uv project: uv lock forks on the markers, uv export keeps them
    deps = "".join(f"  {json.dumps(line)},\n" for line in PINS.splitlines())
    (project / "pyproject.toml").write_text('[project]\nname = "app"\nversion = "1"\nrequires-python = ">=3.11"\n'
                                            f"dependencies = [\n{deps}]\n")
    from ocibuild.python.resolve import uv_binary

    subprocess.run([uv_binary(), "lock", "--quiet"], cwd=project, check=True, timeout=300)
    (project / "requirements.txt").unlink()
    (project / "ocibuild.toml").write_text(TWO_PLATFORMS + '[python]\nlock = "uv.lock"\n' + TRIXIE)
    ocibuild(project, "--output", f"oci:{tmp_path / 'lock'}:t", store=store)
    assert installed(tmp_path / "lock") == ON_313


@pytest.mark.slow
def test_pins_per_python_version_on_a_311_base(tmp_path: Path, store: Path, debian_python_layout: Path) -> None:
    project = app(tmp_path / "app", '[python]\nrequirements = "requirements.txt"\n')
    result = ocibuild(project, "--base", f"oci:{debian_python_layout}:bookworm-py",
                      "--output", f"oci:{tmp_path / 'bookworm'}:t", store=store)
    assert result["python"]["target"]["interpreter"] == "/usr/bin/python3.11"  # type: ignore[index]
    assert installed(tmp_path / "bookworm") == {"amd64": {"six-1.16.0.dist-info", "iniconfig-2.0.0.dist-info"}}

"""Projects as they sit on a developer's disk: virtual environments and build leftovers stay out of the
default layer; a uv project (hatchling, src/ layout, uv.lock) and a member of a uv workspace are
installed as wheels and their console scripts are the entrypoint. Real uv, PyPI, runc."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.files import dist_infos, image_paths
from harness.runtime import run_image

from ocibuild.python.resolve import uv_binary

HATCHLING = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'


def ocibuild(*args: str | Path, store: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(store), "SOURCE_DATE_EPOCH": "1700000000"}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("projects-store")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_virtual_environments_and_build_leftovers_stay_out(tmp_path: Path, busybox_layout: Path,
                                                           store: Path) -> None:
    project = tmp_path / "proj"
    write(project / "main.py", "print('hi')\n")
    write(project / "pkg" / "build" / "keep.py", "")  # only the top-level build/ is a build folder
    subprocess.run([sys.executable, "-m", "venv", "venv"], cwd=project, check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "tools/env"], cwd=project, check=True,
                   timeout=300)
    for leftover in ("node_modules/left-pad/index.js", "web/node_modules/x.js", ".tox/py311/x", "dist/p-1.whl",
                     "build/lib/p.py", "src/p.egg-info/PKG-INFO", "p.egg-info/PKG-INFO"):
        write(project / leftover, "")
    out = tmp_path / "img"
    ocibuild("build", project, "--base", f"oci:{busybox_layout}:busybox", "--output", f"oci:{out}:t", store=store)
    [paths] = image_paths(out, "t", skip_layers=1).values()
    assert paths == {"app", "app/main.py", "app/pkg", "app/pkg/build", "app/pkg/build/keep.py", "app/tools",
                     "app/web", "app/src"}


def hatchling_project(folder: Path, name: str, *, dependencies: str = "", script: str = "",
                      body: str = "", sources: str = "") -> Path:
    """A ``src/`` layout project with a hatchling build backend and a console script ``{name}-cli``."""
    module = name.replace("-", "_")
    write(folder / "src" / module / "__init__.py", body)
    write(folder / "pyproject.toml", f'[project]\nname = "{name}"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
                                     f"dependencies = [{dependencies}]\n"
                                     + (f'[project.scripts]\n{name}-cli = "{module}:{script}"\n' if script else "")
                                     + sources + HATCHLING)
    return folder


@pytest.mark.slow
def test_hatchling_src_layout_uv_project_runs_its_console_script(tmp_path: Path, debian_python_layout: Path,
                                                                 store: Path) -> None:
    project = hatchling_project(tmp_path / "hello", "hello", dependencies='"six==1.17.0"', script="main",
                                body="import six\n\n\ndef main():\n    print('hello from a wheel', six.__version__)\n")
    with (project / "pyproject.toml").open("a") as f:
        f.write('[tool.ocibuild]\nentrypoint = ["hello-cli"]\n[tool.ocibuild.python]\nlock = "uv.lock"\n')
    subprocess.run([uv_binary(), "lock", "--quiet"], cwd=project, check=True, timeout=300)
    out = tmp_path / "img"
    result = json.loads(ocibuild("build", project, "--base", f"oci:{debian_python_layout}:bookworm-py", "--json",
                                 "--output", f"oci:{out}:t", store=store).stdout)
    labels = [x["label"] for x in result["layers"]]
    assert labels[-1] == "py:project" and "app" not in labels  # installed as a wheel, not copied
    assert result["python"]["pins"] == ["six==1.17.0"]
    run = run_image(out, "t")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hello from a wheel 1.17.0"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A uv workspace (virtual root) with members ``web`` (depends on ``common`` and six), ``common`` and
    ``worker`` (depends on iniconfig), locked with uv."""
    root = tmp_path / "ws"
    write(root / "pyproject.toml", '[tool.uv.workspace]\nmembers = ["packages/*"]\n')
    hatchling_project(root / "packages" / "web", "web", dependencies='"common", "six==1.17.0"', script="main",
                      body="import common, six\n\n\ndef main():\n    print('web', common.NAME, six.__version__)\n",
                      sources="[tool.uv.sources]\ncommon = { workspace = true }\n")
    hatchling_project(root / "packages" / "common", "common", body="NAME = 'common'\n")
    hatchling_project(root / "packages" / "worker", "worker", dependencies='"iniconfig==2.1.0"', script="main",
                      body="def main():\n    print('worker')\n")
    write(root / "ocibuild.toml", 'entrypoint = ["web-cli"]\n')
    subprocess.run([uv_binary(), "lock", "--quiet"], cwd=root, check=True, timeout=300)
    return root


@pytest.mark.slow
def test_workspace_member_built_by_name_runs(tmp_path: Path, workspace: Path, debian_python_layout: Path,
                                             store: Path) -> None:
    out = tmp_path / "img"
    result = json.loads(ocibuild("build", workspace, "--package", "web", "--json", "--output", f"oci:{out}:t",
                                 "--base", f"oci:{debian_python_layout}:bookworm-py", store=store).stdout)
    assert result["python"]["pins"] == ["six==1.17.0"]  # web's locked dependencies only: no iniconfig
    run = run_image(out, "t")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "web common 1.17.0"
    [paths] = image_paths(out, "t").values()
    assert {d.split("-")[0] for d in dist_infos(paths)} == {"web", "common", "six"}
    assert "opt/venv/bin/web-cli" in paths and "opt/venv/bin/worker-cli" not in paths


def test_workspace_package_key_and_unknown_member(tmp_path: Path, workspace: Path, store: Path) -> None:
    (workspace / "ocibuild.toml").write_text('[python]\npackage = "worker"\n')
    plan = json.loads(ocibuild("build", workspace, "--print-plan", store=store).stdout)
    assert plan["python"]["package"] == "worker" and plan["python"]["project"] is True
    assert plan["python"]["lock"] == str(workspace / "uv.lock") and plan["layers"] == []

    bad = ocibuild("build", workspace, "--package", "nope", "--print-plan", store=store, check=False)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == (f"ocibuild: error: python.package (--package) 'nope' is not a member of the uv "
                                  f"workspace at {workspace} (members: common, web, worker); name one of them")

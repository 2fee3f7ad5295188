"""``ocibuild init``: the build file it writes for three project shapes (FastAPI with uv.lock, Flask with
requirements.txt and a model folder, a ``[project.scripts]`` CLI) builds, and the images answer under runc
(HTTP for the web apps, ``--help`` for the CLI); a second run without --force changes nothing and says so.
The rest (detection, ``--pyproject``, ``--models images``, errors) runs in process without building."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.cli import ocibuild as run_cli
from harness.layout import image_config
from harness.net import free_port, wait_http
from harness.runtime import run_image

import ocibuild
from ocibuild.cli import main
from ocibuild.init import init_project

KEPT = "exists; left unchanged (use --force to overwrite)"


def _write(root: Path, files: dict[str, str | bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


FASTAPI_MAIN = '''from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def root() -> dict[str, str]:
    return {"hello": "fastapi"}
'''
FLASK_APP = '''import os

from flask import Flask

app = Flask(__name__)


@app.route("/")
def root() -> dict[str, object]:
    return {"hello": "flask", "model": os.path.getsize("model/weights.safetensors"), "env": os.path.exists(".env")}
'''
CLI_PYPROJECT = '''[project]
name = "hello-cli"
version = "0.1.0"
requires-python = ">=3.9"

[project.scripts]
hello-cli = "hello_cli:main"

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"
'''
CLI_CODE = '''import argparse


def main() -> None:
    parser = argparse.ArgumentParser(prog="hello-cli", description="Say hello from the image.")
    parser.add_argument("--name", default="world")
    print(f"hello {parser.parse_args().name}")
'''


def _init(*args: str | Path) -> tuple[int, str, str]:
    """``ocibuild init ARGS`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["init", *map(str, args)])
    return code, out.getvalue(), err.getvalue()


def _again_is_a_no_op(project: Path, *extra: str) -> None:
    """A second ``init`` without --force leaves every file as it was and says so (exit 0)."""
    before = {p: p.read_bytes() for p in project.iterdir() if p.is_file()}
    code, out, err = _init(project, *extra)
    assert code == 0 and out == ""
    assert KEPT in err or "has a [tool.ocibuild] table; left unchanged (use --force to overwrite)" in err, err
    assert {p: p.read_bytes() for p in project.iterdir() if p.is_file()} == before


@contextlib.contextmanager
def _serving(layout: Path, tag: str, port: int) -> Iterator[list[str]]:
    """Run the image's own command (its port 8000 replaced by ``port``) with runc on the host's network;
    stop it with SIGTERM on leaving. Yields the command run."""
    config = image_config(layout, tag)["config"]
    command = [arg.replace("8000", str(port)) for arg in [*config["Entrypoint"], *(config.get("Cmd") or [])]]
    done: dict[str, subprocess.CompletedProcess[str]] = {}
    thread = threading.Thread(target=lambda: done.update(proc=run_image(layout, tag, command, host_network=True,
                                                                        timeout=120)))
    thread.start()
    try:
        yield command
    finally:
        prefix = f"ocibuild-test-{os.getpid()}-"  # run_image's container names (this process's only)
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            listed = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True, check=False).stdout
            for cid in (c for c in listed.split() if c.startswith(prefix)):
                subprocess.run(["runc", "kill", cid, "TERM"], capture_output=True, check=False)
            thread.join(1)
        thread.join(30)
    assert not thread.is_alive()


def _build(project: Path, layout: Path, cache: Path, *base: str) -> None:
    run_cli("build", project, *base, "--output", f"oci:{layout}:v1", cache=cache, timeout=600)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("init-cache")


@pytest.mark.slow
def test_fastapi_with_uv_lock_builds_and_answers(tmp_path: Path, debian_python_layout: Path, cache: Path) -> None:
    project = _write(tmp_path / "fa", {
        "pyproject.toml": '[project]\nname = "fa"\nversion = "0.1.0"\nrequires-python = ">=3.11"\n'
                          'dependencies = ["fastapi", "uvicorn"]\n',
        "main.py": FASTAPI_MAIN})
    subprocess.run([sys.executable, "-m", "uv", "lock", "--quiet"], cwd=project, check=True, timeout=300)
    code, out, err = _init(project)
    assert code == 0, err
    assert out.splitlines() == [str(project / "ocibuild.toml"), str(project / ".ociignore")]
    assert 'lock = "uv.lock"' in err
    assert "uvicorn main:app --host 0.0.0.0 --port 8000  (FastAPI app 'app' in main.py)" in err
    assert "warning" not in err
    data = tomllib.loads((project / "ocibuild.toml").read_text())
    assert data["entrypoint"] == ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
    assert data["python"] == {"lock": "uv.lock"} and data["ports"] == [8000] and "base" not in data
    assert ".env" in (project / ".ociignore").read_text().splitlines()
    plan = ocibuild.load_plan(project)
    assert plan.python is not None and plan.python.lock == (project / "uv.lock").absolute()

    layout = tmp_path / "out"
    _build(project, layout, cache, "--base", f"oci:{debian_python_layout}:bookworm-py")
    port = free_port()
    with _serving(layout, "v1", port):
        assert json.loads(wait_http(f"http://127.0.0.1:{port}/")) == {"hello": "fastapi"}
    _again_is_a_no_op(project)


@pytest.mark.slow
def test_flask_with_requirements_and_a_model_folder(tmp_path: Path, debian_python_layout: Path,
                                                    cache: Path) -> None:
    weights = bytes(range(256)) * 40
    project = _write(tmp_path / "fl", {"requirements.txt": "flask\ngunicorn\n", "app.py": FLASK_APP,
                                       "model/weights.safetensors": weights, ".env": "SECRET=1\n"})
    code, _, err = _init(project)
    assert code == 0, err
    assert 'requirements = "requirements.txt"' in err
    assert "gunicorn --bind 0.0.0.0:8000 app:app  (Flask app 'app' in app.py)" in err
    assert "model/ (1 weight file, 10.2 kB): a layer of its own at /app/model" in err
    data = tomllib.loads((project / "ocibuild.toml").read_text())
    assert data["layers"] == [{"name": "model", "src": "model", "dest": "/app/model"},
                              {"name": "app", "src": ".", "dest": "/app", "exclude": ["model/"]}]
    assert data["workdir"] == "/app"
    plan = ocibuild.load_plan(project)
    assert [(str(spec.src), spec.dest) for spec in plan.layers] == [("model", "/app/model"), (".", "/app")]

    layout = tmp_path / "out"
    _build(project, layout, cache, "--base", f"oci:{debian_python_layout}:bookworm-py")
    port = free_port()
    with _serving(layout, "v1", port) as command:
        assert command == ["gunicorn", "--bind", f"0.0.0.0:{port}", "app:app"]
        # the weights at /app/model (the working folder), the secrets kept out by .ociignore
        answer = json.loads(wait_http(f"http://127.0.0.1:{port}/"))
        assert answer == {"hello": "flask", "model": len(weights), "env": False}
    _again_is_a_no_op(project)


@pytest.mark.slow
def test_console_script_with_base_runs_help(tmp_path: Path, debian_python_layout: Path, cache: Path) -> None:
    project = _write(tmp_path / "cli", {"pyproject.toml": CLI_PYPROJECT, "src/hello_cli/__init__.py": CLI_CODE})
    base = os.path.relpath(debian_python_layout, Path.cwd())  # relative to here, written relative to the project
    code, out, err = _init(project, "--base", f"oci:{base}:bookworm-py")
    assert code == 0, err
    assert out.splitlines() == [str(project / "ocibuild.toml")]  # installed as a wheel: no folder, no .ociignore
    assert "hello-cli  (console script from [project.scripts]" in err
    data = tomllib.loads((project / "ocibuild.toml").read_text())
    assert data["entrypoint"] == ["hello-cli"] and data["python"] == {}
    assert (project / data["base"].removeprefix("oci:").rsplit(":", 1)[0]).resolve() == debian_python_layout.resolve()

    layout = tmp_path / "out"
    _build(project, layout, cache)  # the base from the build file
    helped = run_image(layout, "v1", [*image_config(layout, "v1")["config"]["Entrypoint"], "--help"])
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: hello-cli [-h] [--name NAME]\n\nSay hello from the image.")
    _again_is_a_no_op(project, "--base", f"oci:{base}:bookworm-py")


# ---------------------------------------------------------------------------------------------------
# detection, without building
# ---------------------------------------------------------------------------------------------------

def test_django_without_gunicorn_says_what_to_add(tmp_path: Path) -> None:
    manage = ('import os\nimport sys\n\nif __name__ == "__main__":\n'
              '    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")\n')
    project = _write(tmp_path / "dj", {"manage.py": manage, "mysite/__init__.py": "", "mysite/settings.py": "",
                                       "mysite/wsgi.py": "from django.core.wsgi import get_wsgi_application\n"
                                                         "application = get_wsgi_application()\n",
                                       "requirements.txt": "django>=5\n"})
    code, _, err = _init(project)
    assert code == 0
    assert "gunicorn --bind 0.0.0.0:8000 mysite.wsgi  (Django project (manage.py and mysite/wsgi.py)" in err
    assert "add gunicorn to your dependencies (a line 'gunicorn' in requirements.txt)" in err
    assert tomllib.loads((project / "ocibuild.toml").read_text())["entrypoint"][-1] == "mysite.wsgi"


def test_src_layout_fastapi_without_uvicorn(tmp_path: Path) -> None:
    project = _write(tmp_path / "api", {
        "pyproject.toml": '[project]\nname = "api"\nversion = "1"\ndependencies = ["fastapi>=0.100"]\n',
        "src/api/__init__.py": "", "src/api/web.py": "import fastapi\n\napi = fastapi.FastAPI()\n",
        "tests/test_web.py": "from flask import Flask\napp = Flask(__name__)\n"})  # tests are not looked at
    result = init_project(project)
    assert result.table["entrypoint"] == ["uvicorn", "api.web:api", "--host", "0.0.0.0", "--port", "8000"]
    assert result.table["env"] == {"PYTHONPATH": "/app/src", "PYTHONUNBUFFERED": "1"}
    assert result.table["python"] == {}  # [project].dependencies
    texts = [d.text for d in result.decisions]
    assert any("add uvicorn to your dependencies ('uvicorn' in [project].dependencies)" in t for t in texts), texts
    assert ocibuild.load_plan(project).settings.env["PYTHONPATH"] == "/app/src"


@pytest.mark.parametrize(("files", "entrypoint"), [
    ({"web/__init__.py": "from flask import Flask\n\ndef create_app():\n    return Flask(__name__)\n",
      "requirements.txt": "flask\ngunicorn\n"},
     ["gunicorn", "--bind", "0.0.0.0:8000", "web:create_app()"]),
    ({"svc/__init__.py": "", "svc/__main__.py": "print('hi')\n"}, ["python3", "-m", "svc"]),
    ({"tool.py": "def go():\n    pass\n\nif __name__ == '__main__':\n    go()\n", "lib.py": "x = 1\n"},
     ["python3", "/app/tool.py"]),
    ({"svc/__init__.py": "", "svc/__main__.py": "", "asgi.py": "from starlette.applications import Starlette\n"
                                                               "app = Starlette()\n", "requirements.txt": "uvicorn\n"},
     ["uvicorn", "asgi:app", "--host", "0.0.0.0", "--port", "8000"]),  # a web app before a __main__.py
])
def test_entrypoints(tmp_path: Path, files: dict[str, str | bytes], entrypoint: list[str]) -> None:
    project = _write(tmp_path / "p", files)
    assert init_project(project).table["entrypoint"] == entrypoint
    ocibuild.load_plan(project)


def test_many_data_files_do_not_hide_the_code(tmp_path: Path) -> None:
    # more data files than the scan ever looked at, before (in name order) a src-layout Flask app
    project = _write(tmp_path / "p", {**{f"assets/img/{i:05}.png": b"x" for i in range(5001)},
                                      "requirements.txt": "flask\ngunicorn\n", "src/app/__init__.py": "",
                                      "src/app/main.py": "from flask import Flask\n\napp = Flask(__name__)\n",
                                      "node_modules/x/big.py": "from flask import Flask\napp = Flask(__name__)\n"})
    result = init_project(project)
    assert result.table["entrypoint"] == ["gunicorn", "--bind", "0.0.0.0:8000", "app.main:app"]
    assert result.table["env"]["PYTHONPATH"] == "/app/src"
    assert ocibuild.load_plan(project).settings.entrypoint[-1] == "app.main:app"


MYPKG_PROJECT = '[project]\nname = "mypkg"\nversion = "1"\ndependencies = ["fastapi", "uvicorn"]\n\n'
HATCHLING = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
HATCH_PYPROJECT = MYPKG_PROJECT + HATCHLING


def _entry_module_importable(project: Path) -> str:
    """Where the module the entrypoint names comes from in the image: "wheel" (a package the project's
    wheel holds, the project installed) or "copied" (a file in the project folder copied to the workdir)."""
    plan = ocibuild.load_plan(project)
    module = next(a for a in plan.settings.entrypoint or () if ":" in a).split(":")[0]
    top = module.split(".")[0]
    if plan.python is not None and plan.python.project and not plan.layers:
        assert (project / top / "__init__.py").is_file() or (project / "src" / top / "__init__.py").is_file()
        return "wheel"
    workdir = plan.settings.workdir
    assert workdir is not None
    copies = [spec for spec in plan.layers if spec.dest == workdir and spec.src == Path(".")]
    assert copies, plan.layers
    relative = Path(*module.split("."))
    assert (project / relative.with_suffix(".py")).is_file() or (project / relative / "__init__.py").is_file()
    return "copied"


def test_installed_package_with_an_app_outside_its_wheel(tmp_path: Path) -> None:
    app = "from fastapi import FastAPI\n\nimport mypkg\n\napp = FastAPI()\n"
    project = _write(tmp_path / "p", {"pyproject.toml": HATCH_PYPROJECT, "mypkg/__init__.py": "", "main.py": app})
    result = init_project(project)
    assert result.table["entrypoint"] == ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
    # main.py is not in mypkg's wheel: the folder is copied as well, the app imported from the workdir
    assert result.table["layers"] == [{"name": "app", "src": ".", "dest": "/app"}]
    assert result.table["workdir"] == "/app" and result.table["python"] == {}
    project_line = next(d.text for d in result.decisions if d.topic == "project")
    assert "main.py is not in the wheel (which holds mypkg)" in project_line, project_line
    assert "copied to /app as well" in project_line
    assert (project / ".ociignore").is_file()
    assert _entry_module_importable(project) == "copied"
    plan = ocibuild.load_plan(project)
    assert plan.python is not None and plan.python.project  # still installed (metadata, scripts)

    # an app inside the package is preferred: the wheel alone runs it
    _write(project, {"mypkg/web.py": app})
    (project / ".ociignore").unlink()
    result = init_project(project, force=True)
    assert result.table["entrypoint"][1] == "mypkg.web:app"
    assert "layers" not in result.table and "workdir" not in result.table
    assert not (project / ".ociignore").exists()
    assert any("its folder is not copied" in d.text for d in result.decisions)
    assert _entry_module_importable(project) == "wheel"


@pytest.mark.parametrize(("files", "tool", "entrypoint", "copied"), [
    ({"src/mypkg/__init__.py": "", "src/mypkg/api.py": "{app}"}, "", "mypkg.api:app", False),
    ({"src/other/__init__.py": "", "src/other/api.py": "{app}", "src/mypkg/__init__.py": ""}, "",
     "other.api:app", True),  # hatchling ships src/mypkg alone
    ({"lib/svc/__init__.py": "", "lib/svc/api.py": "{app}"},
     '[tool.hatch.build.targets.wheel]\npackages = ["lib/svc"]\n', "svc.api:app", False),
    ({"serve.py": "{app}", "mypkg/__init__.py": ""},
     '[tool.hatch.build.targets.wheel]\nonly-include = ["mypkg", "serve.py"]\n', "serve:app", False),
    ({"src/a/__init__.py": "", "src/a/api.py": "{app}"}, '[tool.setuptools.packages.find]\nwhere = ["src"]\n',
     "a.api:app", True),  # hatchling builds it: setuptools' settings are not read
    ({"src/a/__init__.py": "", "src/a/api.py": "{app}"}, '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
     '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n', "a.api:app", False),
])
def test_installed_package_app_in_or_out_of_the_wheel(tmp_path: Path, files: dict[str, str], tool: str,
                                                       entrypoint: str, copied: bool) -> None:
    app = "from fastapi import FastAPI\napp = FastAPI()\n"
    pyproject = MYPKG_PROJECT + ("" if "[build-system]" in tool else HATCHLING) + tool
    project = _write(tmp_path / "p", {"pyproject.toml": pyproject,
                                      **{k: v.format(app=app) for k, v in files.items()}})
    result = init_project(project)
    assert result.table["entrypoint"][1] == entrypoint
    assert ("layers" in result.table) == copied, result.table
    if copied:
        assert result.table["env"]["PYTHONPATH"] == "/app/src"
    else:
        assert "PYTHONPATH" not in result.table["env"]
    plan = ocibuild.load_plan(project)
    assert plan.python is not None and plan.python.project
    assert bool(plan.layers) == copied


def test_requirements_includes_and_extras_count(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", {"requirements.txt": "-r base.txt\n", "base.txt": "fastapi[standard]==0.115 \\\n"
                                      "    --hash=sha256:00\n", "requirements-dev.txt": "pytest\n",
                                      "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"})
    result = init_project(project)
    texts = [d.text for d in result.decisions]
    assert any("requirements.txt\": 2 requirements" in t and "not used: requirements-dev.txt" in t for t in texts)
    assert not any(d.topic == "warning" for d in result.decisions), texts  # fastapi[standard] brings uvicorn


def test_no_entrypoint_found_still_writes_a_file(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", {"lib.py": "x = 1\n"})
    code, out, err = _init(project)
    assert code == 0 and out.splitlines()[0] == str(project / "ocibuild.toml")
    assert "entrypoint  none found" in err and "python      no dependencies found" in err
    assert "entrypoint" not in tomllib.loads((project / "ocibuild.toml").read_text())


def test_pylock_and_models_as_images(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", {
        "pylock.toml": 'lock-version = "1.0"\ncreated-by = "test"\n[[packages]]\nname = "flask"\nversion = "3.1.0"\n',
        "serve.py": "from flask import Flask\napp = Flask(__name__)\n",
        "weights/Big Model/model.onnx": b"\0" * 10, "weights/config.json": "{}"})
    result = init_project(project, models="images")
    assert result.table["python"] == {"lock": "pylock.toml"}
    assert result.table["models"] == [{"name": "weights", "src": "weights"}]
    assert "layers" not in result.table and result.table["workdir"] == "/app"
    texts = [d.text for d in result.decisions]
    assert any("$OCIBUILD_MODEL_WEIGHTS" in t for t in texts), texts
    assert any("gunicorn" in t and "is not among the dependencies" in t for t in texts), texts
    plan = ocibuild.load_plan(project)
    assert [m.name for m in plan.models] == ["weights"]


def test_weights_beside_code_stay_in_the_code_layer(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", {"app/__init__.py": "", "app/__main__.py": "", "app/head.pt": b"1"})
    result = init_project(project)
    assert "layers" not in result.table
    assert any("a folder with Python code: left in the code layer" in d.text for d in result.decisions)
    _write(project, {"app/models/x.gguf": b"1", "assets/llm/a/1.gguf": b"2", "assets/llm/b/2.gguf": b"3"})
    layers = init_project(project, force=True).table["layers"]
    assert [(x["src"], x["dest"]) for x in layers] == [("app/models", "/app/app/models"), ("assets", "/app/assets"),
                                                       (".", "/app")]
    assert layers[-1]["exclude"] == ["app/models/", "assets/"]
    assert [str(spec.src) for spec in ocibuild.load_plan(project).layers] == ["app/models", "assets", "."]


def test_pyproject_table_appended_then_kept_then_replaced(tmp_path: Path) -> None:
    original = ('# my project\n[project]\nname = "cli"\nversion = "1"\n\n[tool.ocibuild]\nuser = "1000"\n'
                '\n[tool.ocibuild.python]\nrequirements = "x.txt"\n\n# about other\n[tool.other]\n'
                'keep = [1,  2]   # spacing kept\n')
    project = _write(tmp_path / "p", {"pyproject.toml": original, "main.py": "if __name__ == '__main__':\n  pass\n"})
    code, out, err = _init(project, "--pyproject")
    assert code == 0 and out == ""
    assert f"{project / 'pyproject.toml'} has a [tool.ocibuild] table; left unchanged (use --force" in err
    assert (project / "pyproject.toml").read_text() == original
    code, out, err = _init(project, "--pyproject", "--force")
    assert code == 0, err
    text = (project / "pyproject.toml").read_text()
    assert text.startswith('# my project\n[project]\nname = "cli"\nversion = "1"\n\n# about other\n[tool.other]\n'
                           'keep = [1,  2]   # spacing kept\n\n# Written by `ocibuild init`')
    assert text.count("[tool.ocibuild]") == 1 and 'requirements = "x.txt"' not in text
    data = tomllib.loads(text)["tool"]["ocibuild"]
    assert data["entrypoint"] == ["python3", "/app/main.py"] and "python" not in data
    assert not (project / "ocibuild.toml").exists()
    assert ocibuild.load_plan(project).settings.entrypoint == ("python3", "/app/main.py")
    _init(project, "--pyproject", "--force")
    assert (project / "pyproject.toml").read_text() == text  # replaced in place: the same text again
    _again_is_a_no_op(project, "--pyproject")
    code, _, err = _init(project)  # ocibuild.toml would shadow the table: kept without --force too
    assert code == 0 and "has a [tool.ocibuild] table; left unchanged" in err
    assert not (project / "ocibuild.toml").exists()


def test_pyproject_table_appended_to_untouched_text(tmp_path: Path) -> None:
    original = '[project]\nname = "x"\nversion = "1"\ndependencies = ["requests"]'  # no final newline
    project = _write(tmp_path / "p", {"pyproject.toml": original, "x.py": "if __name__ == '__main__':\n  pass\n"})
    code, out, _ = _init(project, "--pyproject")
    assert code == 0 and out.splitlines() == [str(project / "pyproject.toml"), str(project / ".ociignore")]
    text = (project / "pyproject.toml").read_text()
    assert text.startswith(original + "\n")
    assert tomllib.loads(text)["tool"]["ocibuild"]["python"] == {}


def test_dry_run_json_and_existing_ignore_files(tmp_path: Path) -> None:
    project = _write(tmp_path / "p", {"main.py": "if __name__ == '__main__':\n  pass\n", ".ociignore": "mine\n",
                                      ".dockerignore": "secrets/\n.env\n"})
    code, out, err = _init(project, "--dry-run")
    assert code == 0 and "nothing written (--dry-run)" in err
    assert tomllib.loads(out)["entrypoint"] == ["python3", "/app/main.py"]
    assert not (project / "ocibuild.toml").exists()
    code, out, err = _init(project, "--json")
    result = json.loads(out)
    assert result["written"] == [str(project / "ocibuild.toml")] and result["kept"] == [str(project / ".ociignore")]
    assert ".ociignore exists; left unchanged" in err and (project / ".ociignore").read_text() == "mine\n"
    code, out, err = _init(project, "--force")
    assert out.splitlines() == [str(project / "ocibuild.toml"), str(project / ".ociignore")]
    ignore = (project / ".ociignore").read_text().splitlines()
    assert "# from .dockerignore" in ignore and "secrets/" in ignore and ignore.count(".env") == 1


@pytest.mark.parametrize(("files", "target", "args", "fragment"), [
    ({}, "missing", [], "project folder {p} does not exist; give the folder"),
    ({"file.py": ""}, "file.py", [], "project folder {p} is not a folder"),
    ({"README.md": "hi", ".venv/lib/x.py": ""}, ".", [], "{p}: no Python code found"),
    ({"pyproject.toml": "[project\n", "a.py": ""}, ".", [], "pyproject.toml: invalid TOML"),
    ({"pyproject.toml": '[project]\nname = "a"\n', "uv.lock": "version = ", "a.py": ""}, ".", [],
     "uv.lock: invalid TOML"),
    ({"a.py": ""}, ".", ["--pyproject"], "pyproject.toml does not exist; run ocibuild init without --pyproject"),
])
def test_errors_are_one_clear_line(tmp_path: Path, files: dict[str, str | bytes], target: str, args: list[str],
                                   fragment: str) -> None:
    root = _write(tmp_path / "p", files) if files else tmp_path / "p"
    path = root / target if target != "." else root
    code, out, err = _init(path, *args)
    assert code == 1 and out == ""
    assert err.startswith("ocibuild: error: ") and err.count("\n") == 1, err
    assert fragment.format(p=path) in err, err
    assert not (root / "ocibuild.toml").exists()

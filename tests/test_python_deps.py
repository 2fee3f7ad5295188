"""Python dependencies installed per target platform into layers, run with runc (arm64 under qemu),
with real wheels from PyPI, real uv, and Debian bases made by the tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from harness.bases import make_debian_python_layout
from harness.runtime import run_image
from harness.validate import validate_layout

REPO = Path(__file__).resolve().parents[1]
APP = Path(__file__).parent / "data" / "sklearn-app"
PREDICTION = "prediction: 1 proba: 0.997"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def debian_arm64_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian bookworm + python3 for arm64 (mmdebstrap under qemu-user; cached like the amd64 one)."""
    return make_debian_python_layout(tmp_path_factory.mktemp("bookworm-arm64") / "layout", "bookworm-py", "arm64")


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One content store for the slow tests of this module, so wheels are downloaded once."""
    return tmp_path_factory.mktemp("deps-cache")


def ocibuild(*args: str | Path, cache: Path, check: bool = True, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def layers_of(result: dict[str, object]) -> dict[str, str]:
    layers = result["layers"]
    assert isinstance(layers, list)
    return {str(x["label"]): str(x["digest"]) for x in layers}


def copy_app(dest: Path) -> Path:
    shutil.copytree(APP, dest)
    return dest


def test_numpy_sklearn_app_amd64_runs(tmp_path: Path, debian_python_layout: Path, shared_cache: Path) -> None:
    app = copy_app(tmp_path / "app")
    out = tmp_path / "img"
    first = ocibuild("build", app, "--base", f"oci:{debian_python_layout}:bookworm-py", "--json",
                     "--output", f"oci:{out}:v1", cache=shared_cache)
    validate_layout(out)
    run = run_image(out, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == PREDICTION
    before = layers_of(json.loads(first.stdout))
    assert {"py:venv", "py:numpy", "py:scipy", "py:scikit-learn"} <= set(before)
    assert len([k for k in before if k.startswith("py:")]) <= 20

    # one line of app code changes: exactly one layer is rebuilt, no resolver, no download
    (app / "app.py").write_text((app / "app.py").read_text() + "# edited\n")
    second = ocibuild("build", app, "--base", f"oci:{debian_python_layout}:bookworm-py", "--json",
                      "--output", f"oci:{out}:v2", cache=shared_cache)
    after = layers_of(json.loads(second.stdout))
    changed = [k for k in after if after[k] != before.get(k)]
    assert changed == ["/app/app.py"]
    rebuilt = [x["label"] for x in json.loads(second.stdout)["layers"] if not x["cached"]]
    assert rebuilt == ["/app/app.py"]
    python = json.loads(second.stdout)["python"]
    assert python["resolved_from_cache"] is True and python["downloaded"] == 0
    assert "scikit-learn==1.6.1" in python["pins"] and python["target"]["interpreter"] == "/usr/bin/python3.11"


def test_same_wheel_same_layer_in_two_apps_and_reproducible(tmp_path: Path, debian_python_layout: Path,
                                                            shared_cache: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "requirements.txt").write_text("numpy==2.2.6\nsix==1.17.0\n")
    (other / "main.py").write_text("import numpy, six\nprint(numpy.arange(3).sum(), six.PY3)\n")
    (other / "ocibuild.toml").write_text('entrypoint = ["python", "/app/main.py"]\n[python]\n'
                                         'requirements = "requirements.txt"\n')
    base = f"oci:{debian_python_layout}:bookworm-py"
    one = layers_of(json.loads(ocibuild("build", other, "--base", base, "--json", "--output",
                                        f"oci:{tmp_path / 'o1'}:t", cache=shared_cache).stdout))
    app = layers_of(json.loads(ocibuild("build", APP, "--base", base, "--json", "--output",
                                        f"oci:{tmp_path / 'o2'}:t", cache=shared_cache).stdout))
    assert one["py:numpy"] == app["py:numpy"]  # numpy's layer is shared by every image that uses it
    assert run_image(tmp_path / "o1", "t").stdout.strip() == "3 True"

    # a cold build in another store ("another machine, another day") gives the same image digest
    cold = ocibuild("build", other, "--base", base, "--output", f"oci:{tmp_path / 'o3'}:t", cache=tmp_path / "c2")
    warm = ocibuild("build", other, "--base", base, "--output", f"oci:{tmp_path / 'o4'}:t", cache=shared_cache)
    assert cold.stdout.strip() == warm.stdout.strip()


def test_numpy_sklearn_app_arm64_runs_under_qemu(tmp_path: Path, debian_arm64_layout: Path,
                                                 shared_cache: Path) -> None:
    out = tmp_path / "img"
    proc = ocibuild("build", APP, "--base", f"oci:{debian_arm64_layout}:bookworm-py", "--output", f"oci:{out}:v1",
                    cache=shared_cache)
    assert "linux/arm64/v8" in proc.stderr and "aarch64" not in proc.stderr.split("python  ")[0]
    validate_layout(out)
    run = run_image(out, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == PREDICTION


def _project(tmp: Path) -> Path:
    p = tmp / "proj"
    (p / "src" / "greet").mkdir(parents=True)
    (p / "src" / "greet" / "__init__.py").write_text(
        "import six\n\n\ndef main() -> None:\n    print('greetings from', __name__, six.PY3)\n")
    (p / "pyproject.toml").write_text("""[project]
name = "greet"
version = "0.1.0"
dependencies = ["six==1.17.0"]
[project.scripts]
greet = "greet:main"
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
[tool.ocibuild]
entrypoint = ["greet"]
[tool.ocibuild.python]
""")
    return p


def test_project_dependencies_and_project_wheel(tmp_path: Path, debian_python_layout: Path,
                                                shared_cache: Path) -> None:
    project = _project(tmp_path)
    out = tmp_path / "img"
    proc = ocibuild("build", project, "--base", f"oci:{debian_python_layout}:bookworm-py", "--json",
                    "--output", f"oci:{out}:t", cache=shared_cache)
    labels = [x["label"] for x in json.loads(proc.stdout)["layers"]]
    assert labels[-1] == "py:project" and "/app" not in labels  # the project is installed, not copied
    run = run_image(out, "t")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "greetings from greet True"


def test_uv_lock_and_pylock_inputs(tmp_path: Path, debian_python_layout: Path, shared_cache: Path) -> None:
    from ocibuild.python.resolve import uv_binary

    project = _project(tmp_path)
    subprocess.run([uv_binary(), "lock", "--quiet"], cwd=project, check=True, timeout=300)
    pylock = subprocess.run([uv_binary(), "export", "--format", "pylock.toml", "--no-emit-project", "--quiet",
                             "--frozen"], cwd=project, check=True, capture_output=True, text=True).stdout
    (project / "pylock.toml").write_text(pylock)
    original = (project / "pyproject.toml").read_text()
    for lock in ("uv.lock", "pylock.toml"):
        (project / "pyproject.toml").write_text(
            original.replace("[tool.ocibuild.python]\n", f'[tool.ocibuild.python]\nlock = "{lock}"\n'))
        out = tmp_path / lock
        ocibuild("build", project, "--base", f"oci:{debian_python_layout}:bookworm-py", "--output", f"oci:{out}:t",
                 cache=shared_cache)
        assert run_image(out, "t").stdout.strip() == "greetings from greet True"


def _fake_wheel(directory: Path, name: str, version: str, tag: str) -> Path:
    """A minimal valid wheel with a RECORD (for a local wheelhouse)."""
    import base64
    import hashlib

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-{tag}.whl"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files = {f"{name}/__init__.py": b"X = 1\n",
             f"{name}-{version}.dist-info/METADATA": metadata,
             f"{name}-{version}.dist-info/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},"
                     f"{len(v)}\n" for k, v in files.items()) + f"{name}-{version}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in files.items():
            zf.writestr(k, v)
        zf.writestr(f"{name}-{version}.dist-info/RECORD", record)
    return path


def assert_clean_failure(proc: subprocess.CompletedProcess[str], cache: Path, out: Path, blobs_before: set[str],
                         *fragments: str) -> None:
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocibuild: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not out.exists()
    assert {p.name for p in (cache / "blobs" / "sha256").iterdir()} == blobs_before  # nothing new stored
    assert not list((cache / "tmp").iterdir())


@pytest.mark.parametrize("case", ["no-wheel-for-target", "hash-mismatch", "unknown-package", "conflict",
                                  "no-network", "no-python"])
def test_bad_python_input(tmp_path: Path, debian_python_layout: Path, busybox_layout: Path, case: str) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print(1)\n")
    base = f"oci:{debian_python_layout}:bookworm-py"
    extra: list[str] = []
    fragments: tuple[str, ...]
    if case == "no-wheel-for-target":
        wheels = tmp_path / "wheelhouse"
        _fake_wheel(wheels, "fastthing", "1.0", "cp311-cp311-manylinux_2_17_aarch64")
        (app / "requirements.txt").write_text("fastthing==1.0\n")
        extra = ["--find-links", str(wheels), "--no-index"]
        fragments = ("fastthing==1.0", "linux/amd64", "cp311-cp311-manylinux_2_17_aarch64")
    elif case == "hash-mismatch":
        (app / "requirements.txt").write_text("six==1.17.0 --hash=sha256:" + "0" * 64 + "\n")
        fragments = ("hash mismatch", "six-1.17.0", "requirements.txt has the wrong hash")
    elif case == "unknown-package":
        (app / "requirements.txt").write_text("ocibuild-no-such-package-xyz==1.0\n")
        fragments = ("ocibuild-no-such-package-xyz",)
    elif case == "conflict":
        (app / "requirements.txt").write_text("six==1.16.0\nsix==1.17.0\n")
        fragments = ("six",)
    elif case == "no-network":
        (app / "requirements.txt").write_text("six==1.17.0\n")
        extra = ["--index-url", "http://127.0.0.1:9/simple"]
        fragments = ("resolving requirements.txt", "--find-links")
    else:
        (app / "requirements.txt").write_text("six==1.17.0\n")
        base = f"oci:{busybox_layout}:busybox"
        fragments = ("no Python interpreter", "--python")
    cache = tmp_path / "cache"
    warm = ocibuild("build", app, "--base", base, "--output", f"oci:{tmp_path / 'warm'}:t", cache=cache)
    assert warm.returncode == 0  # no [python] yet: fills the store with the base only
    blobs = {p.name for p in (cache / "blobs" / "sha256").iterdir()}
    out = tmp_path / "out"
    proc = ocibuild("build", app, "--base", base, "--requirements", app / "requirements.txt", *extra,
                    "--output", f"oci:{out}:t", cache=cache, check=False)
    if case == "no-network":
        fragments = (*fragments, "127.0.0.1:9")
    assert_clean_failure(proc, cache, out, blobs, *fragments)


def test_bytecode_option_is_reproducible_and_used(tmp_path: Path, debian_python_layout: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("six==1.17.0\n")
    (app / "ocibuild.toml").write_text('entrypoint = ["python", "-c", "import six, sys; print(six.__cached__)"]\n'
                                       '[python]\nrequirements = "requirements.txt"\nbytecode = true\n')
    base = f"oci:{debian_python_layout}:bookworm-py"
    one = ocibuild("build", app, "--base", base, "--output", f"oci:{tmp_path / 'o1'}:t", cache=tmp_path / "c1")
    two = ocibuild("build", app, "--base", base, "--output", f"oci:{tmp_path / 'o2'}:t", cache=tmp_path / "c2")
    assert one.stdout == two.stdout  # same image digest from two cold builds
    run = run_image(tmp_path / "o1", "t")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "/opt/venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc"
    listing = subprocess.run(["tar", "-tzf", next((tmp_path / "o1" / "blobs" / "sha256").iterdir())], text=True,
                             capture_output=True).stdout
    assert listing is not None

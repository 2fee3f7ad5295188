"""Pins that only have an sdist: built into wheels on the build machine with real uv (PyPI's docopt 0.6.2,
and a tiny C-extension sdist made here), run with runc (arm64 under qemu), offline from a wheelhouse
made by ``ocibuild fetch``, and reproducible across fresh stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness.runtime import run_image
from test_python_deps import assert_clean_failure

pytestmark = pytest.mark.slow
UNREACHABLE = "http://127.0.0.1:9"


def ocibuild(*args: str | Path, cache: Path, check: bool = True, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def offline_env(tmp: Path) -> dict[str, str]:
    """No network at all (every proxy unreachable, no exception for any host) and an empty uv cache."""
    env = {k: UNREACHABLE for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")}
    return {**env, "NO_PROXY": "", "no_proxy": "", "UV_INDEX_URL": f"{UNREACHABLE}/",
            "XDG_CACHE_HOME": str(tmp / "xdg-offline")}


def built_wheels(cache: Path, name: str) -> dict[str, str]:
    """``{filename: sha256}`` of the wheels of ``name`` in a content store."""
    return {p.name: p.parent.name for p in (cache / "wheels").glob(f"*/{name}-*.whl")}


def py_layers(platform: dict[str, object]) -> dict[str, str]:
    layers = platform["layers"]
    assert isinstance(layers, list)
    return {str(x["label"]): str(x["digest"]) for x in layers if str(x["label"]).startswith("py:")}


def test_pure_sdist_on_two_platforms_offline_and_reproducible(tmp_path: Path, debian_python_layout: Path,
                                                              debian_arm64_layout: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("docopt==0.6.2\nsix==1.17.0\n")
    (app / "ocibuild.toml").write_text(
        'entrypoint = ["python", "-c", "import docopt, six; print(docopt.__version__, six.PY3)"]\n'
        f'[base]\n"linux/amd64" = "oci:{debian_python_layout}:bookworm-py"\n'
        f'"linux/arm64" = "oci:{debian_arm64_layout}:bookworm-py"\n[python]\nrequirements = "requirements.txt"\n')
    online = ocibuild("build", app, "--json", "--output", f"oci:{tmp_path / 'online'}:t", cache=tmp_path / "c1")
    result = json.loads(online.stdout)
    amd, arm = (py_layers(p) for p in result["platforms"])
    assert amd == arm and len(amd) >= 2  # the pure wheel built from the sdist serves both platforms
    for arch in ("amd64", "arm64"):
        run = run_image(tmp_path / "online", "t", arch=arch)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "0.6.2 True"

    # the wheelhouse holds the sdist and what building it needs, not the wheel built from it
    wheelhouse = tmp_path / "wheelhouse"
    ocibuild("fetch", app, "--dest", wheelhouse, cache=tmp_path / "c1")
    files = sorted(p.name for p in wheelhouse.iterdir())
    assert "docopt-0.6.2.tar.gz" in files and "six-1.17.0-py2.py3-none-any.whl" in files, files
    assert any(f.startswith("setuptools-") and f.endswith(".whl") for f in files), files
    assert not any(f.startswith("docopt-") and f.endswith(".whl") for f in files), files

    # offline, in a fresh store with an empty uv cache: resolution, the sdist build and its build
    # environment all come from the wheelhouse, and the image is the same
    offline = ocibuild("build", app, "--no-index", "--find-links", wheelhouse, "--output",
                       f"oci:{tmp_path / 'offline'}:t", cache=tmp_path / "c2", env=offline_env(tmp_path))
    assert offline.stdout.strip() == result["digest"]
    # two fresh stores built the same wheel bytes from the sdist
    assert built_wheels(tmp_path / "c1", "docopt") == built_wheels(tmp_path / "c2", "docopt")
    assert len(built_wheels(tmp_path / "c1", "docopt")) == 1


def _c_extension_sdist(tmp: Path) -> Path:
    """``cspeed-1.0.tar.gz``: one C extension module, made with ``uv build --sdist`` into a find-links folder."""
    from ocibuild.python.resolve import uv_binary

    src = tmp / "cspeed-src"
    src.mkdir()
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\n'
                                        'build-backend = "setuptools.build_meta"\n'
                                        '[project]\nname = "cspeed"\nversion = "1.0"\n')
    (src / "setup.py").write_text('from setuptools import Extension, setup\n'
                                  'setup(ext_modules=[Extension("cspeed", ["cspeed.c"])])\n')
    (src / "cspeed.c").write_text(
        "#include <Python.h>\n"
        "static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }\n"
        'static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};\n'
        'static struct PyModuleDef mod = {PyModuleDef_HEAD_INIT, "cspeed", NULL, -1, methods};\n'
        "PyMODINIT_FUNC PyInit_cspeed(void) { return PyModule_Create(&mod); }\n")
    links = tmp / "links"
    subprocess.run([uv_binary(), "build", "--sdist", "--out-dir", str(links), "--quiet", str(src)], check=True,
                   timeout=300)
    assert [p.name for p in links.glob("*.tar.gz")] == ["cspeed-1.0.tar.gz"]
    return links


def test_native_sdist_builds_for_the_build_machine_only(tmp_path: Path, debian_python_layout: Path,
                                                        debian_arm64_layout: Path) -> None:
    assert sys.version_info[:2] == (3, 11)  # the build machine matches the bookworm base (CPython 3.11)
    links = _c_extension_sdist(tmp_path)
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("cspeed==1.0\n")
    (app / "ocibuild.toml").write_text('entrypoint = ["python", "-c", "import cspeed; print(cspeed.answer())"]\n')
    arm_base = f"oci:{debian_arm64_layout}:bookworm-py"
    cache = tmp_path / "cache"
    ocibuild("build", app, "--base", arm_base, "--output", f"oci:{tmp_path / 'warm'}:t", cache=cache)
    blobs = {p.name for p in (cache / "blobs" / "sha256").iterdir()}
    out = tmp_path / "out"
    proc = ocibuild("build", app, "--base", arm_base, "--requirements", app / "requirements.txt", "--find-links",
                    links, "--output", f"oci:{out}:t", cache=cache, check=False)
    assert_clean_failure(proc, cache, out, blobs, "cspeed==1.0 has C extensions; only an sdist exists; cannot build "
                         "for linux/arm64", " on x86_64: build a wheel on a matching machine and put it in a "
                         "wheelhouse (--find-links DIR)")

    # for the build machine's own platform the compiled wheel is used, and built the same in a fresh store
    amd_base = f"oci:{debian_python_layout}:bookworm-py"
    digests = [ocibuild("build", app, "--base", amd_base, "--requirements", app / "requirements.txt",
                        "--find-links", links, "--output", f"oci:{tmp_path / name}:t", cache=tmp_path / f"cache-{name}"
                        ).stdout.strip() for name in ("amd1", "amd2")]
    assert digests[0] == digests[1]
    assert list(built_wheels(tmp_path / "cache-amd1", "cspeed")) == ["cspeed-1.0-cp311-cp311-linux_x86_64.whl"]
    run = run_image(tmp_path / "amd1", "t")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "42"


def test_sdist_hash_mismatch(tmp_path: Path, debian_python_layout: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("docopt==0.6.2 --hash=sha256:" + "0" * 64 + "\n")
    base = f"oci:{debian_python_layout}:bookworm-py"
    cache = tmp_path / "cache"
    ocibuild("build", app, "--base", base, "--output", f"oci:{tmp_path / 'warm'}:t", cache=cache)
    blobs = {p.name for p in (cache / "blobs" / "sha256").iterdir()}
    out = tmp_path / "out"
    proc = ocibuild("build", app, "--base", base, "--requirements", app / "requirements.txt", "--output",
                    f"oci:{out}:t", cache=cache, check=False)
    assert_clean_failure(proc, cache, out, blobs, "hash mismatch for docopt-0.6.2.tar.gz",
                         "got sha256:49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491",
                         "requirements.txt has the wrong hash")

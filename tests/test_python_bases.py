"""The Pythons of real bases: Debian trixie (3.13, the default base) and bookworm (3.11) each run a
numpy + pandas app for linux/amd64 and linux/arm64 (one 2-platform build each; arm64 under qemu-user),
and a base with its Python under /usr/local, as the official ``python`` images have it, gets a venv
that points there."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from harness.cli import ocibuild as run_cli
from harness.runtime import run_image

import ocibuild
from ocibuild.image import store_layer
from ocibuild.layers import TarEntry, build_layer

pytestmark = pytest.mark.slow

# numpy 2.2.6 and pandas 2.2.3 have cp311 and cp313 manylinux wheels for x86_64 and aarch64
REQUIREMENTS = "numpy==2.2.6\npandas==2.2.3\npython-dateutil==2.9.0.post0\npytz==2025.2\ntzdata==2025.2\nsix==1.17.0\n"
PANDAS_APP = """\
import platform, sys
import numpy as np
import pandas as pd
df = pd.DataFrame({"g": list("aabbcc"), "x": np.arange(6)})
codename = platform.freedesktop_os_release()["VERSION_CODENAME"]
print(f"python {sys.version_info[0]}.{sys.version_info[1]} on {platform.machine()} (debian {codename}): numpy "
      f"{np.__version__} pandas {pd.__version__} sums {df.groupby('g')['x'].sum().tolist()} from {np.__file__}")
"""


def ocibuild_cli(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cache=cache, timeout=1200)  # cold Debian bases for two CPUs take a while


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One content store for this module: .deb files and wheels are downloaded once."""
    return tmp_path_factory.mktemp("bases-cache")


def project(dest: Path, app: str, requirements: str, build_file: str) -> Path:
    dest.mkdir()
    (dest / "app.py").write_text(app)
    (dest / "requirements.txt").write_text(requirements)
    (dest / "ocibuild.toml").write_text('entrypoint = ["python", "/app/app.py"]\n' + build_file +
                                        '[python]\nrequirements = "requirements.txt"\n'
                                        '[[layers]]\nsrc = "app.py"\ndest = "/app/app.py"\n')
    return dest


@pytest.mark.parametrize(("suite", "python"), [("trixie", "3.13"), ("bookworm", "3.11")])
def test_numpy_pandas_app_on_debian_base(tmp_path: Path, cache: Path, suite: str, python: str) -> None:
    """trixie is the default base (no base named at all); bookworm is asked for in the build file."""
    base = "" if suite == "trixie" else f'[base.debian]\nsuite = "{suite}"\n'
    app = project(tmp_path / "app", PANDAS_APP, REQUIREMENTS,
                  'platforms = ["linux/amd64", "linux/arm64"]\n' + base)
    out = tmp_path / "img"
    proc = ocibuild_cli("build", app, "--json", "--output", f"oci:{out}:v1", cache=cache)
    result = json.loads(proc.stdout)
    assert [p["platform"] for p in result["platforms"]] == ["linux/amd64", "linux/arm64/v8"]
    target = result["python"]["target"]
    assert (target["interpreter"], target["version"]) == (f"/usr/bin/python{python}", python)
    assert target["full_version"].startswith(python + ".")
    for arch, machine in (("amd64", "x86_64"), ("arm64", "aarch64")):
        run = run_image(out, "v1", arch=arch, timeout=600)
        assert run.returncode == 0, run.stderr
        site = f"/opt/venv/lib/python{python}/site-packages"
        assert run.stdout.strip() == (f"python {python} on {machine} (debian {suite}): numpy 2.2.6 pandas 2.2.3 "
                                      f"sums [1, 5, 9] from {site}/numpy/__init__.py")


def usr_local_python(debian_base: ocibuild.Image, store: ocibuild.ContentStore) -> ocibuild.MemoryImage:
    """``debian_base`` with its "Python runtime" layer replaced by the same interpreter and standard
    library under /usr/local (``bin/python3.13``, ``bin/python3 -> python3.13``, ``lib/python3.13``):
    no /usr/bin/python3 and no dpkg record of any python package, like the official python images."""
    runtime = next(i for i, h in enumerate(debian_base.config.history) if h.created_by.endswith("Python runtime"))
    layers = list(debian_base.layers)
    entries: list[TarEntry] = [TarEntry.symlink("usr/local/bin/python3", "python3.13")]
    with layers[runtime].uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for m in tar:
            if m.name == "usr/bin/python3.13" or m.name.startswith(("usr/lib/python3.13/", "etc/python3.13/")):
                path = m.name if m.name.startswith("etc/") else "usr/local/" + m.name.removeprefix("usr/")
                if m.isdir():
                    entries.append(TarEntry.directory(path, m.mode))
                elif m.issym():
                    entries.append(TarEntry.symlink(path, m.linkname))
                elif m.isfile():
                    data = tar.extractfile(m).read()  # type: ignore[union-attr]
                    entries.append(TarEntry(path=path, kind="file", mode=m.mode, size=len(data), data=data))
    assert len(entries) > 500, "the trixie Python runtime layer has the standard library"
    built = build_layer(entries, store)
    layers[runtime] = store_layer(store, built.descriptor, built.diff_id)
    diff_ids = list(debian_base.config.diff_ids)
    diff_ids[runtime] = built.diff_id
    history = list(debian_base.config.history)
    history[runtime] = dataclasses.replace(history[runtime], created_by="python 3.13 under /usr/local", comment="")
    config = dataclasses.replace(debian_base.config, diff_ids=tuple(diff_ids), history=tuple(history))
    return ocibuild.MemoryImage.assemble(config, layers)


def test_python_under_usr_local(tmp_path: Path, cache: Path) -> None:
    """Found by its file name (no dpkg record, no PYTHON_VERSION); the venv's pyvenv.cfg ``home`` and
    ``bin/python`` point at /usr/local/bin, and a cp313 wheel with a C extension loads."""
    store = ocibuild.ContentStore(cache)
    debian = tmp_path / "debian"
    ocibuild_cli("base", "debian", "--platform", "linux/amd64", "--output", f"oci:{debian}:py", cache=cache)
    base = ocibuild.resolve_base(ocibuild.parse_location(f"oci:{debian}:py"), store)
    ocibuild.publish(usr_local_python(base, store), [f"oci:{tmp_path / 'local'}:py"])
    app = ("import os, sys, markupsafe\nfrom markupsafe import _speedups\n"
           "home = [x.strip() for x in open(sys.prefix + '/pyvenv.cfg') if x.startswith('home')]\n"
           "print(sys.version_info[:2], sys.base_prefix, sys.prefix, home, os.readlink(sys.prefix + '/bin/python'),\n"
           "      os.path.exists('/usr/bin/python3'), os.path.basename(_speedups.__file__), markupsafe.escape('<'),\n"
           "      os.path.exists(markupsafe.__cached__))\n")  # compiled by the base's /usr/local interpreter
    proj = project(tmp_path / "app", app, "markupsafe==3.0.2\n", f'base = "oci:{tmp_path / "local"}:py"\n')
    out = tmp_path / "img"
    result = json.loads(ocibuild_cli("build", proj, "--json", "--output", f"oci:{out}:v1", cache=cache).stdout)
    target = result["python"]["target"]
    assert (target["interpreter"], target["version"], target["full_version"]) == ("/usr/local/bin/python3.13",
                                                                                  "3.13", "")
    run = run_image(out, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == ("(3, 13) /usr/local /opt/venv ['home = /usr/local/bin'] /usr/local/bin/python3.13 "
                                  "False _speedups.cpython-313-x86_64-linux-gnu.so &lt; True")

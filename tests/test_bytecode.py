"""Bytecode on by default, byte-reproducible: ``.pyc`` for the standard library of a Debian base and
for every installed distribution, compiled by the image's own Python (run from the base's layers, or
its amd64 twin for arm64), checked by running the images under runc (arm64 under qemu-user) with
``python -v``, which says for every module whether its code came from a ``.pyc`` or from source."""

from __future__ import annotations

import json
import os
import random
import sys
import tarfile
from pathlib import Path

import pytest
from harness.cli import ocibuild
from harness.layout import image_layers
from harness.runtime import run_image

pytestmark = pytest.mark.slow

TRIXIE = '''entrypoint = ["python3", "-c", "import idna, six; print(idna.encode('bücher.example').decode(), six.PY3)"]
platforms = [{platforms}]
[base.debian]
suite = "trixie"
[python]
requirements = "requirements.txt"
{python}
'''
REQUIREMENTS = "idna==3.10\nsix==1.16.0\n"
IMPORTS = "import idna, six, json, email.message, http.client; print('imported')"


def project(dest: Path, platforms: str = '"linux/amd64"', python: str = "") -> Path:
    dest.mkdir(parents=True)
    (dest / "ocibuild.toml").write_text(TRIXIE.format(platforms=platforms, python=python))
    (dest / "requirements.txt").write_text(REQUIREMENTS)
    return dest


def pyc_members(layout: Path, tag: str, arch: str | None = None) -> dict[str, list[str]]:
    """``.pyc`` paths per layer (by the layer's history line), for the image of ``arch`` under ``tag``."""
    out: dict[str, list[str]] = {}
    for title, blob in image_layers(layout, tag, arch=arch):
        with tarfile.open(blob) as tar:
            out[title] = sorted(m.name for m in tar if m.name.endswith(".pyc"))
    return out


def sources_and_bytecode(stderr: str) -> tuple[list[str], list[str]]:
    """From ``python -v``: modules whose code was compiled from source, and those read from ``.pyc``."""
    code = [ln.split("# code object from ", 1)[1].strip("'") for ln in stderr.splitlines()
            if ln.startswith("# code object from ")]
    return [c for c in code if not c.endswith(".pyc")], [c for c in code if c.endswith(".pyc")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bytecode-cache")


def test_multiplatform_image_loads_everything_from_pyc(tmp_path: Path, cache: Path) -> None:
    """amd64 compiled by the base's own python3.13, arm64 by its amd64 twin: both start from .pyc for
    the standard library and the dependencies (nothing compiled at start), and the pure layers with
    their .pyc are the same blobs on both platforms."""
    app = project(tmp_path / "app", '"linux/amd64", "linux/arm64"')
    out = tmp_path / "img"
    result = json.loads(ocibuild("build", app, "--output", f"oci:{out}:v1", "--json", cache=cache).stdout)
    for arch in ("amd64", "arm64"):
        members = pyc_members(out, "v1", arch)
        runtime = [title for title, names in members.items() if "Python runtime" in title]
        assert runtime and any(n.endswith("/os.cpython-313.pyc") for n in members[runtime[0]]), members.keys()
        assert any("site-packages/idna/__pycache__/core.cpython-313.pyc" in n
                   for names in members.values() for n in names)
        proc = run_image(out, "v1", ["python3", "-v", "-c", IMPORTS], arch=arch, timeout=600)
        assert proc.returncode == 0 and "imported" in proc.stdout, proc.stderr[-2000:]
        compiled, loaded = sources_and_bytecode(proc.stderr)
        assert len(loaded) > 40, loaded
        assert any("/site-packages/idna/" in p for p in loaded) and any("/usr/lib/python3.13/" in p for p in loaded)
        assert compiled == [], f"{arch}: compiled from source at start: {compiled}"
    pure = [{x["digest"] for x in p["layers"] if x["label"].startswith("py:pure")} for p in result["platforms"]]
    assert len(pure) == 2 and pure[0] and pure[0] == pure[1], result["platforms"]  # .pyc do not depend on the CPU


def test_reproducible_in_two_fresh_stores(tmp_path: Path) -> None:
    """Same project, two empty caches (so the base, the compiler's tree and every layer are made
    anew): identical layer digests with bytecode on."""
    digests = []
    for name in ("one", "two"):
        app = project(tmp_path / name / "app")
        result = json.loads(ocibuild("build", app, "--output", f"oci:{tmp_path / name / 'img'}:v1", "--json",
                                     cache=tmp_path / name / "cache").stdout)
        digests.append((result["digest"], [x["digest"] for x in result["layers"]]))
    assert digests[0] == digests[1]
    assert pyc_members(tmp_path / "one" / "img", "v1")  # and there were .pyc to compare


def test_compile_order_does_not_change_the_bytes(tmp_path: Path) -> None:
    """The same tree given in two different orders to one compiler, and to two fresh processes:
    the same bytes, hash-based (PEP 552 unchecked), loadable by the interpreter."""
    from ocibuild.python.bytecode import host_compiler

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    compiler = host_compiler(version)
    assert compiler is not None
    stdlib = Path(os.__file__).parent
    files = sorted(p for p in (stdlib / "email").rglob("*.py")) + sorted((stdlib / "json").rglob("*.py"))
    items = [(f"/usr/lib/python{version}/{p.relative_to(stdlib).as_posix()}", p.read_bytes) for p in files]
    shuffled = list(items)
    random.Random(7).shuffle(shuffled)
    assert shuffled != items
    first = dict(compiler.compile(items))
    second = dict(compiler.compile(shuffled))
    assert len(first) == len(files) and first == second
    sample = first[f"/usr/lib/python{version}/json/decoder.py"]
    import importlib.util
    import marshal

    assert sample[:4] == importlib.util.MAGIC_NUMBER and int.from_bytes(sample[4:8], "little") == 0b01
    assert sample[8:16] == importlib.util.source_hash((stdlib / "json" / "decoder.py").read_bytes())
    assert marshal.loads(sample[16:]).co_filename == f"/usr/lib/python{version}/json/decoder.py"


def test_bytecode_false_and_no_compiler(tmp_path: Path, cache: Path) -> None:
    """``[python] bytecode = false``: no .pyc anywhere (the default base follows it). A foreign-CPU
    base given as a layout (no twin) whose Python this machine's cannot stand in for: the build goes
    on without .pyc and says so in one line."""
    off = project(tmp_path / "off")
    (off / "ocibuild.toml").write_text('entrypoint = ["python3"]\n[python]\nrequirements = "requirements.txt"\n'
                                       'bytecode = false\n')
    ocibuild("build", off, "--output", f"oci:{tmp_path / 'off-img'}:v1", "--platform", "linux/amd64", cache=cache)
    assert all(not names for names in pyc_members(tmp_path / "off-img", "v1").values())

    base = tmp_path / "arm-base"
    ocibuild("base", "debian", "--suite", "trixie", "--platform", "linux/arm64", "--output", f"oci:{base}:py",
             cache=cache)
    other = project(tmp_path / "other")
    (other / "ocibuild.toml").write_text('entrypoint = ["python3"]\n[python]\nrequirements = "requirements.txt"\n')
    proc = ocibuild("build", other, "--base", f"oci:{base}:py", "--output", f"oci:{tmp_path / 'other-img'}:v1",
                    cache=cache)
    notes = [ln for ln in proc.stderr.splitlines() if "no .pyc" in ln]
    if sys.version_info[:2] == (3, 13):
        assert notes == []
    else:
        assert len(notes) == 1 and "Python 3.13" in notes[0], proc.stderr
        members = pyc_members(tmp_path / "other-img", "v1")
        assert not any("site-packages" in n for names in members.values() for n in names)

"""Wheels installed straight into layer entries: placement, modes, scripts, RECORD, verification,
determinism, and a real venv that imports what was installed."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from harness.bases import test_cache_dir

from ocibuild.errors import ConfigError, LayerError
from ocibuild.layers import TarEntry, write_tar
from ocibuild.python.wheel import VenvLayout, WheelInfo, read_wheel_info, venv_entries, wheel_entries

SP = "opt/venv/lib/python3.11/site-packages"
REAL_WHEELS = {  # pinned by sha256 so the checks below are about exactly these bytes
    "six==1.16.0": ("six-1.16.0-py2.py3-none-any.whl",
                    "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"),
    "click==8.1.7": ("click-8.1.7-py3-none-any.whl",
                     "ae74fb96c20a0277a1d615f1e4d73c8414f5a98db8b799a7931d1582f3390c28"),
}


# --------------------------------------------------------------------------------------------------
# building test wheels
# --------------------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@dataclass(kw_only=True)
class Spec:
    """A wheel to build: ``files`` maps member name -> content or (content, unix mode)."""

    name: str = "demo"
    version: str = "1.0"
    tag: str = "py3-none-any"
    purelib: bool = True
    files: dict[str, bytes | tuple[bytes, int]] = field(default_factory=dict)
    entry_points: str | None = None
    wheel_version: str = "1.0"
    metadata_name: str | None = None
    dist_info: str | None = None
    record: bool = True
    unlisted: dict[str, bytes] = field(default_factory=dict)  # added after RECORD is computed
    tamper: dict[str, bytes] = field(default_factory=dict)  # content swapped after RECORD is computed
    record_overrides: dict[str, str] = field(default_factory=dict)  # member -> raw RECORD line
    filename: str | None = None


def make_wheel(directory: Path, spec: Spec) -> Path:
    """Write a wheel with a correct RECORD (unless the spec breaks it on purpose), fixed timestamps."""
    dist_info = spec.dist_info or f"{spec.name}-{spec.version}.dist-info"
    members: dict[str, tuple[bytes, int]] = {}
    for name, value in spec.files.items():
        members[name] = value if isinstance(value, tuple) else (value, 0o644)
    members[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {spec.metadata_name or spec.name}\nVersion: {spec.version}\n".encode(), 0o644)
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: {spec.wheel_version}\nGenerator: test\nRoot-Is-Purelib: {str(spec.purelib).lower()}\n"
        f"Tag: {spec.tag}\n".encode(), 0o644)
    if spec.entry_points is not None:
        members[f"{dist_info}/entry_points.txt"] = (spec.entry_points.encode(), 0o644)
    lines = [spec.record_overrides.get(n, f"{n},sha256={_b64(d)},{len(d)}") for n, (d, _) in members.items()]
    lines.append(f"{dist_info}/RECORD,,")
    for name, data in spec.tamper.items():
        members[name] = (data, members[name][1])
    for name, data in spec.unlisted.items():
        members[name] = (data, 0o644)
    if spec.record:
        members[f"{dist_info}/RECORD"] = ("\n".join(lines).encode() + b"\n", 0o644)
    path = directory / (spec.filename or f"{spec.name}-{spec.version}-{spec.tag}.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return path


def by_path(entries: list[TarEntry]) -> dict[str, TarEntry]:
    out = {e.path: e for e in entries}
    assert len(out) == len(entries), "duplicate paths"
    return out


def record_rows(entries: list[TarEntry], dist_info: str, sp: str = SP) -> list[list[str]]:
    data = by_path(entries)[f"{sp}/{dist_info}/RECORD"].data
    assert data is not None
    return list(csv.reader(io.StringIO(data.decode())))


DEMO_EP = "[console_scripts]\ndemo = demo.cli:main\n\n[gui_scripts]\ndemo-gui = demo.gui:App.run\n\n[other]\nx = y\n"
DEMO = Spec(
    files={
        "demo/__init__.py": b"",
        "demo/cli.py": b"def main():\n    print('demo says hi')\n    return 0\n",
        "demo/gui.py": b"class App:\n    @staticmethod\n    def run():\n        return 0\n",
        "demo/tool.sh": (b"#!/bin/sh\necho tool\n", 0o755),
        "demo-1.0.data/scripts/run-demo": (b"#!python\nimport demo.cli\ndemo.cli.main()\n", 0o644),
        "demo-1.0.data/scripts/runw": b"#!pythonw -u\r\nprint(1)\n",
        "demo-1.0.data/scripts/plain.sh": b"#!/bin/sh\necho plain\n",
        "demo-1.0.data/data/share/demo/readme.txt": b"data file\n",
        "demo-1.0.data/headers/demo.h": b"int demo(void);\n",
        "demo-1.0.data/purelib/demo_extra.py": b"X = 1\n",
        "demo-1.0.data/platlib/demo_native.py": b"Y = 2\n",
    },
    entry_points=DEMO_EP,
)


@pytest.fixture()
def demo_wheel(tmp_path: Path) -> Path:
    return make_wheel(tmp_path, DEMO)


@pytest.fixture(scope="session")
def real_wheels() -> dict[str, Path]:
    """six and click from PyPI (cached in the test cache, verified against pinned hashes)."""
    cache = test_cache_dir() / "wheels"
    cache.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    for req, (filename, sha256) in REAL_WHEELS.items():
        path = cache / filename
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "-d", str(cache), req], check=True, capture_output=True, timeout=300)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, f"{filename} is not the pinned wheel"
        out[req.split("==")[0]] = path
    return out


# --------------------------------------------------------------------------------------------------
# read_wheel_info
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "name", "tags", "pure"), [
    (Spec(), "demo", {"py3-none-any"}, True),
    (Spec(tag="py2.py3-none-any"), "demo", {"py2-none-any", "py3-none-any"}, True),
    (Spec(tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64", purelib=False), "demo",
     {"cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"}, False),
    (Spec(name="Foo_Bar", metadata_name="foo.bar"), "foo-bar", {"py3-none-any"}, True),
    (Spec(filename="demo-1.0-1build-py3-none-any.whl"), "demo", {"py3-none-any"}, True),
])
def test_read_wheel_info(tmp_path: Path, spec: Spec, name: str, tags: set[str], pure: bool) -> None:
    path = make_wheel(tmp_path, spec)
    info = read_wheel_info(path)
    assert info == WheelInfo(name=name, version="1.0", tags=frozenset(tags), is_pure=pure,
                             size=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())


def test_read_wheel_info_real(real_wheels: dict[str, Path]) -> None:
    six = read_wheel_info(real_wheels["six"])
    assert (six.name, six.version, six.tags, six.is_pure) == ("six", "1.16.0",
                                                              frozenset({"py2-none-any", "py3-none-any"}), True)
    assert six.sha256 == REAL_WHEELS["six==1.16.0"][1]


# --------------------------------------------------------------------------------------------------
# placement, modes, scripts
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "mode"), [
    (f"{SP}/demo/__init__.py", 0o644),
    (f"{SP}/demo/cli.py", 0o644),
    (f"{SP}/demo/tool.sh", 0o755),  # executable bit from the zip
    (f"{SP}/demo_extra.py", 0o644),  # .data/purelib
    (f"{SP}/demo_native.py", 0o644),  # .data/platlib
    ("opt/venv/bin/run-demo", 0o755),  # .data/scripts: always executable
    ("opt/venv/bin/runw", 0o755),
    ("opt/venv/bin/plain.sh", 0o755),
    ("opt/venv/bin/demo", 0o755),  # console_scripts
    ("opt/venv/bin/demo-gui", 0o755),  # gui_scripts
    ("opt/venv/share/demo/readme.txt", 0o644),  # .data/data
    ("opt/venv/include/site/python3.11/demo/demo.h", 0o644),  # .data/headers
    (f"{SP}/demo-1.0.dist-info/METADATA", 0o644),
    (f"{SP}/demo-1.0.dist-info/entry_points.txt", 0o644),
    (f"{SP}/demo-1.0.dist-info/INSTALLER", 0o644),
    (f"{SP}/demo-1.0.dist-info/RECORD", 0o644),
])
def test_placement_and_modes(demo_wheel: Path, path: str, mode: int) -> None:
    entry = by_path(wheel_entries(demo_wheel, VenvLayout()))[path]
    assert (entry.kind, entry.mode) == ("file", mode)
    assert entry.data is not None and entry.size == len(entry.data) and entry.source is None


def test_exact_path_set(demo_wheel: Path) -> None:
    paths = set(by_path(wheel_entries(demo_wheel, VenvLayout())))
    assert not any("demo-1.0.data" in p for p in paths)
    assert not any(p.endswith((".pyc", "REQUESTED", "direct_url.json")) for p in paths)
    assert len(paths) == 18  # 11 members + METADATA, WHEEL, entry_points.txt + 2 launchers + INSTALLER, RECORD


@pytest.mark.parametrize(("script", "content"), [
    ("run-demo", b"#!/opt/venv/bin/python\nimport demo.cli\ndemo.cli.main()\n"),
    ("runw", b"#!/opt/venv/bin/python -u\nprint(1)\n"),  # pythonw, args kept, CRLF on line 1 dropped
    ("plain.sh", b"#!/bin/sh\necho plain\n"),  # not '#!python': untouched
])
def test_script_shebangs(demo_wheel: Path, script: str, content: bytes) -> None:
    assert by_path(wheel_entries(demo_wheel, VenvLayout()))[f"opt/venv/bin/{script}"].data == content


@pytest.mark.parametrize(("script", "import_line", "call"), [
    ("demo", "from demo.cli import main", "main()"),
    ("demo-gui", "from demo.gui import App", "App.run()"),
])
def test_launchers(demo_wheel: Path, script: str, import_line: str, call: str) -> None:
    data = by_path(wheel_entries(demo_wheel, VenvLayout()))[f"opt/venv/bin/{script}"].data
    assert data == (
        "#!/opt/venv/bin/python\n"
        "# -*- coding: utf-8 -*-\n"
        "import re\n"
        "import sys\n"
        f"{import_line}\n"
        'if __name__ == "__main__":\n'
        '    sys.argv[0] = re.sub(r"(-script\\.pyw|\\.exe)?$", "", sys.argv[0])\n'
        f"    sys.exit({call})\n"
    ).encode()


def test_entry_point_extras_and_spacing(tmp_path: Path) -> None:
    spec = Spec(files={"demo/__init__.py": b""},
                entry_points="[console_scripts]\nMixedCase = demo : main [extra1, extra2]\n")
    entries = by_path(wheel_entries(make_wheel(tmp_path, spec), VenvLayout()))
    data = entries["opt/venv/bin/MixedCase"].data
    assert data is not None and b"from demo import main\n" in data and b"sys.exit(main())" in data


def test_platlib_wheel(tmp_path: Path) -> None:
    spec = Spec(tag="cp311-cp311-manylinux_2_17_x86_64", purelib=False,
                files={"demo/_native.cpython-311-x86_64-linux-gnu.so": (b"\x7fELF fake", 0o755),
                       "demo/__init__.py": b"from ._native import *\n"})
    entries = by_path(wheel_entries(make_wheel(tmp_path, spec), VenvLayout()))
    assert entries[f"{SP}/demo/_native.cpython-311-x86_64-linux-gnu.so"].mode == 0o755
    assert entries[f"{SP}/demo/__init__.py"].mode == 0o644


def test_custom_layout(demo_wheel: Path) -> None:
    layout = VenvLayout(prefix="/app/.venv", python_version="3.12", interpreter="/usr/local/bin/python3.12")
    assert layout.site_packages == "/app/.venv/lib/python3.12/site-packages"
    entries = by_path(wheel_entries(demo_wheel, layout))
    assert "app/.venv/lib/python3.12/site-packages/demo/cli.py" in entries
    assert "app/.venv/include/site/python3.12/demo/demo.h" in entries
    assert "app/.venv/share/demo/readme.txt" in entries
    data = entries["app/.venv/bin/run-demo"].data
    assert data is not None and data.startswith(b"#!/app/.venv/bin/python\n")
    data = entries["app/.venv/bin/demo"].data
    assert data is not None and data.startswith(b"#!/app/.venv/bin/python\n")


# --------------------------------------------------------------------------------------------------
# INSTALLER and RECORD
# --------------------------------------------------------------------------------------------------


def test_installer(demo_wheel: Path) -> None:
    assert by_path(wheel_entries(demo_wheel, VenvLayout()))[f"{SP}/demo-1.0.dist-info/INSTALLER"].data == b"ocibuild\n"


def test_shipped_installer_replaced(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, Spec(files={"demo-1.0.dist-info/INSTALLER": b"pip\n"}))
    assert by_path(wheel_entries(path, VenvLayout()))[f"{SP}/demo-1.0.dist-info/INSTALLER"].data == b"ocibuild\n"


def _check_record(entries: list[TarEntry], dist_info: str) -> list[list[str]]:
    """RECORD lists exactly the installed files with their sha256 and size, sorted, itself unhashed."""
    rows = record_rows(entries, dist_info)
    assert rows == sorted(rows)
    record_rel = f"{dist_info}/RECORD"
    listed = {r[0]: r for r in rows}
    assert len(listed) == len(rows)
    assert listed.pop(record_rel) == [record_rel, "", ""]
    installed = {os.path.relpath("/" + e.path, "/" + SP): e for e in entries}
    assert set(listed) == set(installed) - {record_rel}
    for rel, (_, digest, size) in listed.items():
        data = installed[rel].data
        assert data is not None
        assert digest == f"sha256={_b64(data)}" and size == str(len(data)), rel
    return rows


def test_record(demo_wheel: Path) -> None:
    entries = wheel_entries(demo_wheel, VenvLayout())
    rows = _check_record(entries, "demo-1.0.dist-info")
    names = [r[0] for r in rows]
    for expected in ("../../../bin/demo", "../../../bin/run-demo", "../../../share/demo/readme.txt",
                     "../../../include/site/python3.11/demo/demo.h", "demo/cli.py", "demo_extra.py",
                     "demo-1.0.dist-info/INSTALLER"):
        assert expected in names
    record = by_path(entries)[f"{SP}/demo-1.0.dist-info/RECORD"].data
    assert record is not None and b"\r" not in record and record.endswith(b"\n")


def test_real_wheels(real_wheels: dict[str, Path]) -> None:
    for name, dist_info in (("six", "six-1.16.0.dist-info"), ("click", "click-8.1.7.dist-info")):
        entries = wheel_entries(real_wheels[name], VenvLayout())
        _check_record(entries, dist_info)
        got = by_path(entries)
        with zipfile.ZipFile(real_wheels[name]) as zf:
            for member in zf.namelist():
                if not member.endswith("/RECORD"):
                    assert got[f"{SP}/{member}"].data == zf.read(member), member
        assert all(p.startswith(SP + "/") for p in got)  # neither has scripts
        assert all(e.mode == 0o644 for e in entries)
    assert f"{SP}/six.py" in by_path(wheel_entries(real_wheels["six"], VenvLayout()))


# --------------------------------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------------------------------


def _tar(entries: list[TarEntry]) -> bytes:
    out = io.BytesIO()
    write_tar(entries, out)
    return out.getvalue()


def test_deterministic(tmp_path: Path, real_wheels: dict[str, Path]) -> None:
    first = make_wheel(tmp_path, DEMO)
    again = tmp_path / "again"
    again.mkdir()
    second = make_wheel(again, DEMO)
    layout = VenvLayout()
    assert wheel_entries(first, layout) == wheel_entries(first, layout) == wheel_entries(second, layout)
    assert _tar(wheel_entries(first, layout)) == _tar(wheel_entries(second, layout))
    for path in real_wheels.values():
        assert _tar(wheel_entries(path, layout)) == _tar(wheel_entries(path, layout))


# --------------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------------


ERRORS: list[tuple[str, Spec, str]] = [
    ("tampered", Spec(files={"demo/a.py": b"ok\n"}, tamper={"demo/a.py": b"evil\n"}),
     r"member 'demo/a.py' is \d+ bytes but RECORD says"),
    ("tampered-same-size", Spec(files={"demo/a.py": b"ok\n"}, tamper={"demo/a.py": b"no\n"}),
     r"member 'demo/a.py' does not match its RECORD hash"),
    ("unlisted", Spec(unlisted={"demo/sneaky.py": b"x"}), r"member 'demo/sneaky.py' is not listed in RECORD"),
    ("unhashed", Spec(files={"demo/a.py": b"x"}, record_overrides={"demo/a.py": "demo/a.py,,"}),
     r"member 'demo/a.py' has no hash in RECORD"),
    ("md5", Spec(files={"demo/a.py": b"x"}, record_overrides={"demo/a.py": "demo/a.py,md5=abc,1"}),
     r"unsupported or weak hash 'md5=abc'"),
    ("no-record", Spec(record=False), r"demo-1.0.dist-info/RECORD is missing"),
    ("dotdot", Spec(files={"demo/../../etc/passwd": b"x"}), r"escapes the install target with '\.\.'"),
    ("data-dotdot", Spec(files={"demo-1.0.data/data/../../../../etc/x": b"x"}), r"escapes the install target"),
    ("absolute", Spec(files={"/etc/passwd": b"x"}), r"has an absolute path"),
    ("backslash", Spec(files={"demo\\a.py": b"x"}), r"contains a backslash"),
    ("bad-filename", Spec(filename="demo.whl"), r"not a wheel filename"),
    ("bad-filename-ext", Spec(filename="demo-1.0-py3-none-any.zip"), r"not a wheel filename"),
    ("metadata-name", Spec(metadata_name="other"), r"METADATA says other 1.0, the filename says demo 1.0"),
    ("no-dist-info", Spec(dist_info="other-1.0.dist-info"), r"expected exactly one demo-<version>.dist-info"),
    ("wheel-version", Spec(wheel_version="2.0"), r"Wheel-Version 2.0 is not supported"),
    ("bad-data-scheme", Spec(files={"demo-1.0.data/lib/x": b"x"}), r"not inside a known demo-1.0.data/"),
    ("duplicate-target", Spec(files={"x.py": b"1", "demo-1.0.data/purelib/x.py": b"2"}),
     r"member 'x.py' and member 'demo-1.0.data/purelib/x.py' both install /opt/venv/lib/python3.11/site-packages/x.py"),
    ("script-collision", Spec(files={"demo-1.0.data/scripts/demo": b"#!python\n"},
                              entry_points="[console_scripts]\ndemo = demo:main\n"),
     r"member 'demo-1.0.data/scripts/demo' and entry point 'demo' both install /opt/venv/bin/demo"),
    ("entry-point-no-attr", Spec(entry_points="[console_scripts]\ndemo = demo\n"), r"is not 'module:function'"),
    ("entry-point-bad-module", Spec(entry_points="[console_scripts]\ndemo = 1demo:main\n"),
     r"is not 'module:function'"),
    ("entry-point-bad-name", Spec(entry_points="[console_scripts]\n../x = demo:main\n"),
     r"entry point name '\.\./x' .* is not a valid file name"),
]


@pytest.mark.parametrize(("spec", "message"), [(s, m) for _, s, m in ERRORS], ids=[i for i, _, _ in ERRORS])
def test_errors(tmp_path: Path, spec: Spec, message: str) -> None:
    path = make_wheel(tmp_path, spec)
    with pytest.raises(LayerError, match=message) as exc:
        wheel_entries(path, VenvLayout())
    assert str(exc.value).startswith(f"wheel {path.name}: ")


def test_duplicate_zip_member(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, Spec(files={"demo/a.py": b"x"}))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as zf:
        zf.writestr("demo/a.py", b"x")
    with pytest.raises(LayerError, match=r"member 'demo/a.py' appears twice in the zip"):
        wheel_entries(path, VenvLayout())


@pytest.mark.parametrize(("content", "message"), [
    (b"this is not a zip", r"wheel demo-1.0-py3-none-any.whl: not a zip archive; download it again"),
    (None, r"wheel demo-1.0-py3-none-any.whl: file .* not found"),
])
def test_unreadable(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "demo-1.0-py3-none-any.whl"
    if content is not None:
        path.write_bytes(content)
    for fn in (read_wheel_info, lambda p: wheel_entries(p, VenvLayout())):
        with pytest.raises(LayerError, match=message):
            fn(path)


def test_corrupt_member(tmp_path: Path) -> None:
    path = make_wheel(tmp_path, Spec(files={"demo/a.py": b"A" * 4096}))
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("demo/a.py")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(LayerError, match=r"member 'demo/a.py' cannot be decompressed"):
        wheel_entries(path, VenvLayout())


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"prefix": "opt/venv"}, "normalised absolute path"),
    ({"prefix": "/opt/venv/"}, "normalised absolute path"),
    ({"prefix": "/"}, "normalised absolute path"),
    ({"prefix": "/opt/my venv"}, "whitespace"),
    ({"prefix": "/" + "x" * 120}, "too long"),
    ({"interpreter": "python3"}, "normalised absolute path"),
    ({"python_version": "3"}, "major.minor"),
    ({"python_version": "3.11.4"}, "major.minor"),
])
def test_layout_validation(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        VenvLayout(**kwargs)


# --------------------------------------------------------------------------------------------------
# venv skeleton and end to end
# --------------------------------------------------------------------------------------------------


def test_venv_entries() -> None:
    entries = by_path(venv_entries(VenvLayout()))
    assert entries["opt/venv/pyvenv.cfg"].data == (
        b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n")
    assert {p: (e.kind, e.linkname) for p, e in entries.items() if e.kind != "file"} == {
        "opt/venv/bin/python": ("symlink", "/usr/bin/python3.11"),
        "opt/venv/bin/python3": ("symlink", "python"),
        "opt/venv/bin/python3.11": ("symlink", "python"),
        f"{SP}": ("dir", ""),
        "opt/venv/lib64": ("symlink", "lib"),
    }


APP = Spec(
    name="hello-app", version="0.1", dist_info="hello_app-0.1.dist-info", filename="hello_app-0.1-py3-none-any.whl",
    files={"hello_app/__init__.py": b"",
           "hello_app/main.py": (b"import sys\nimport click\nimport six\n\n\n@click.command()\n"
                                 b"@click.argument('who')\ndef main(who):\n"
                                 b"    click.echo(f'hello {who} six={six.__version__} argv0={sys.argv[0]}')\n")},
    entry_points="[console_scripts]\nhello = hello_app.main:main\n",
)


def _extract(tmp_path: Path, layout: VenvLayout, wheels: list[Path]) -> Path:
    entries = venv_entries(layout)
    for wheel in wheels:
        entries += wheel_entries(wheel, layout)
    root = tmp_path / "root"
    with tarfile.open(fileobj=io.BytesIO(_tar(entries))) as tar:
        tar.extractall(root, filter="tar")
    return root


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(extra)
    return env


def test_end_to_end_pythonpath(tmp_path: Path, real_wheels: dict[str, Path]) -> None:
    app = make_wheel(tmp_path, APP)
    root = _extract(tmp_path, VenvLayout(), [real_wheels["six"], real_wheels["click"], app])
    script = root / "opt/venv/bin/hello"
    assert script.stat().st_mode & 0o777 == 0o755
    env = _clean_env(PYTHONPATH=str(root / SP))
    out = subprocess.run([sys.executable, str(script), "world"], env=env, capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout == f"hello world six=1.16.0 argv0={script}\n"
    code = ("import six, click, importlib.metadata as m; "
            "print(six.__file__); print(m.version('click'), m.distribution('six').read_text('INSTALLER'), end='')")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout == f"{root / SP / 'six.py'}\n8.1.7 ocibuild\n"


def test_end_to_end_venv(tmp_path: Path, real_wheels: dict[str, Path]) -> None:
    """The extracted tree is a working venv: its bin/python (pointed at the host interpreter here) finds
    pyvenv.cfg and its own site-packages, and importlib.metadata sees every RECORD file."""
    layout = VenvLayout(interpreter=os.path.realpath(sys.executable))
    app = make_wheel(tmp_path, APP)
    root = _extract(tmp_path, layout, [real_wheels["six"], real_wheels["click"], app])
    python = root / "opt/venv/bin/python"
    out = subprocess.run([str(python), str(root / "opt/venv/bin/hello"), "venv"], env=_clean_env(),
                         capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.startswith("hello venv six=1.16.0 ")
    code = ("import sys, importlib.metadata as m\n"
            "print(sys.prefix)\n"
            "for d in ('six', 'click', 'hello-app'):\n"
            "    files = m.files(d)\n"
            "    assert files and all(f.locate().exists() for f in files), d\n"
            "print(sorted(str(f) for f in m.files('hello-app') if 'bin' in str(f)))\n")
    out = subprocess.run([str(python), "-c", code], env=_clean_env(), capture_output=True, text=True, check=True,
                         timeout=60)
    assert out.stdout == f"{root / 'opt/venv'}\n['../../../bin/hello']\n"


def test_big_members_are_streamed_not_held(tmp_path: Path) -> None:
    """A member over STREAM_THRESHOLD is verified by streaming and read again when the layer is written."""
    import base64
    import hashlib
    import io
    import os
    import tarfile
    import zipfile

    from ocibuild.layers import write_tar
    from ocibuild.python.wheel import STREAM_THRESHOLD, VenvLayout, wheel_entries

    big = os.urandom(STREAM_THRESHOLD + 12345)
    files = {"bigpkg/__init__.py": b"", "bigpkg/weights.bin": big,
             "bigpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: bigpkg\nVersion: 1.0\n",
             "bigpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},"
                     f"{len(v)}\n" for k, v in files.items()) + "bigpkg-1.0.dist-info/RECORD,,\n"
    wheel = tmp_path / "bigpkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        zf.writestr("bigpkg-1.0.dist-info/RECORD", record)
    entries = {e.path: e for e in wheel_entries(wheel, VenvLayout())}
    streamed = entries["opt/venv/lib/python3.11/site-packages/bigpkg/weights.bin"]
    assert streamed.data is None and streamed.opener is not None and streamed.size == len(big)
    buf = io.BytesIO()
    write_tar(list(entries.values()), buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        member = tar.extractfile("opt/venv/lib/python3.11/site-packages/bigpkg/weights.bin")
        assert member is not None and member.read() == big
        installed_record = tar.extractfile("opt/venv/lib/python3.11/site-packages/bigpkg-1.0.dist-info/RECORD")
        assert installed_record is not None
        digest = base64.urlsafe_b64encode(hashlib.sha256(big).digest()).rstrip(b"=").decode()
        assert f"bigpkg/weights.bin,sha256={digest},{len(big)}" in installed_record.read().decode()
    # a tampered big member is still caught
    tampered = tmp_path / "t" / wheel.name
    tampered.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, data[:-1] + b"X" if info.filename.endswith("weights.bin") else data)
    with pytest.raises(LayerError, match="does not match its RECORD hash"):
        wheel_entries(tampered, VenvLayout())

"""The command line: bad input gives one clear error line and a non-zero exit, never a traceback
(unless --debug), and nothing partial is left behind."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
        cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    if cache is not None:
        full_env["OCIBUILD_CACHE"] = str(cache)
    cmd = [sys.executable, "-m", "ocibuild", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=full_env, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ocibuild: error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    shutil.copytree(HELLO, p)
    return p


def test_build_scratch_prints_digest_and_json(tmp_path: Path, project: Path) -> None:
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("sha256:") and "layer   app" in proc.stderr
    js = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", "--json", cache=tmp_path / "c")
    result = json.loads(js.stdout)
    assert result["digest"] == proc.stdout.strip()
    assert result["layers"][0]["cached"] is True and result["outputs"] == [f"oci:{tmp_path / 'o'}:v1"]
    quiet = run("build", project, "-q", "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert quiet.stdout.strip() == proc.stdout.strip() and quiet.stderr == ""


def test_python_dash_m_and_console_script_agree(tmp_path: Path) -> None:
    script = shutil.which("ocibuild")
    assert script, "the ocibuild console script is not installed (pip install -e .)"
    out = subprocess.run([script, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ocibuild ") and run("--version").stdout == out


def test_missing_base(tmp_path: Path, project: Path) -> None:
    proc = run("build", project, "--base", f"oci:{tmp_path / 'nope'}:latest", "--output",
               f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "not found", str(tmp_path / "nope"))
    assert not (tmp_path / "o").exists()


def test_base_layout_without_the_tag(tmp_path: Path, project: Path) -> None:
    base = tmp_path / "base"
    assert run("build", project, "--output", f"oci:{base}:one", cache=tmp_path / "c").returncode == 0
    proc = run("build", project, "--base", f"oci:{base}:two", "--output", f"oci:{tmp_path / 'o'}:v1",
               cache=tmp_path / "c")
    assert_one_line_error(proc, "has no tag 'two'", "(it has: one)")


def test_malformed_toml(tmp_path: Path, project: Path) -> None:
    (project / "ocibuild.toml").write_text('base = "scratch"\nentrypoint = [\n')
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "ocibuild.toml", "invalid TOML")


@pytest.mark.parametrize(("text", "fragment"), [
    ('entrypont = ["x"]', "unknown key 'entrypont'; did you mean 'entrypoint'?"),
    ('[[layers]]\nsrc = "."\ndest = "/app"\nexlude = ["x"]', "unknown key 'exlude'; did you mean 'exclude'?"),
    ('ports = ["http"]', "port 'http' is not valid"),
    ('env = ["A=1"]', "env must be a table"),
    ('[[layers]]\nsrc = "."\ndest = "app"', "must be an absolute path"),
    ('[[layers]]\nsrc = "."', "needs both 'src'"),
    ('compression = "brotli"', "unknown compression 'brotli'"),
    ('platform = "linux/sparc9"', "unknown architecture 'sparc9'"),
])
def test_bad_build_file_values(tmp_path: Path, project: Path, text: str, fragment: str) -> None:
    (project / "ocibuild.toml").write_text(text + "\n")
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, fragment)


def test_unknown_key_in_pyproject_table(tmp_path: Path, project: Path) -> None:
    (project / "ocibuild.toml").unlink()
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n[tool.ocibuild]\nbsae = "scratch"\n')
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "pyproject.toml [tool.ocibuild]", "did you mean 'base'?")


def test_file_layer_source_missing(tmp_path: Path, project: Path) -> None:
    (project / "ocibuild.toml").write_text('[[layers]]\nsrc = "models"\ndest = "/models"\n')
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "layer source", "models does not exist")
    assert not (tmp_path / "o").exists()


def test_symlink_escaping_the_project(tmp_path: Path, project: Path) -> None:
    os.symlink("../../../etc/passwd", project / "passwd")
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "escapes the source tree", "passwd")
    assert not (tmp_path / "o").exists()


def test_layer_source_outside_project(tmp_path: Path, project: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (project / "ocibuild.toml").write_text('[[layers]]\nsrc = "../elsewhere"\ndest = "/x"\n')
    proc = run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "outside the project folder")


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write, not even root: a read-only bind mount (like a read-only volume)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["mount", "--bind", locked, locked], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", locked], check=True)
        yield locked
    finally:
        subprocess.run(["umount", locked], check=True)


@pytest.mark.parametrize("kind", ["oci", "oci-archive", "docker-archive"])
def test_output_directory_not_writable(tmp_path: Path, project: Path, read_only_dir: Path, kind: str) -> None:
    target = read_only_dir / ("img" if kind == "oci" else "img.tar")
    proc = run("build", project, "--output", f"{kind}:{target}", cache=tmp_path / "c")
    assert_one_line_error(proc, "not writable", str(read_only_dir))
    assert list(read_only_dir.iterdir()) == []
    assert not list((tmp_path / "c" / "blobs" / "sha256").iterdir())  # failed before building anything


@pytest.mark.parametrize(("args", "fragment"), [
    (["--platform", "linux/sparc9"], "unknown architecture"),
    (["--output", "dir:/tmp/x"], "transport 'dir'"),
    (["--output", "oci:"], "the path is empty"),
    (["--output", "oci:/tmp/x:bad tag"], "invalid tag"),
    (["--entrypoint", '["python3", '], "not a valid JSON array"),
    (["--env", "NOEQUALS"], "expected KEY=VALUE"),
    (["--layer", "src"], "expected SRC:DEST"),
    (["--compression", "lz4"], "unknown compression"),
    (["--base", "Not A Reference"], "invalid image reference"),
    (["--base", "docker://127.0.0.1:5000/Base:1"], "must be lowercase"),
    (["--output", "docker://127.0.0.1:5000/app@sha256:" + "a" * 64], "not to a digest"),
    (["--creds", "nocolon", "--output", "docker://127.0.0.1:5000/app:1"], "expected USER:PASSWORD"),
    (["--ca-file", "/nonexistent/ca.pem"], "no such file"),
])
def test_bad_flags(tmp_path: Path, project: Path, args: list[str], fragment: str) -> None:
    outputs = [] if "--output" in args else ["--output", f"oci:{tmp_path / 'o'}:v1"]
    proc = run("build", project, *args, *outputs, cache=tmp_path / "c")
    assert_one_line_error(proc, fragment)


def test_no_output_is_an_error(tmp_path: Path, project: Path) -> None:
    assert_one_line_error(run("build", project, cache=tmp_path / "c"), "no output given", "--output")


def test_debug_shows_traceback(tmp_path: Path, project: Path) -> None:
    proc = run("build", project, "--base", f"oci:{tmp_path / 'nope'}", "--output", f"oci:{tmp_path / 'o'}",
               "--debug", cache=tmp_path / "c")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_output_into_non_layout_folder_is_refused(tmp_path: Path, project: Path) -> None:
    folder = tmp_path / "stuff"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    proc = run("build", project, "--output", f"oci:{folder}:v1", cache=tmp_path / "c")
    assert_one_line_error(proc, "not an OCI layout")
    assert [p.name for p in folder.iterdir()] == ["keep.txt"]


@pytest.mark.no_conformance(reason="corrupts its base layout's layer on purpose")
def test_corrupt_base_blob_is_rejected_and_not_cached(tmp_path: Path, project: Path) -> None:
    base = tmp_path / "base"
    assert run("build", project, "--output", f"oci:{base}:b", "--compression", "none",
               cache=tmp_path / "c1").returncode == 0
    index = json.loads((base / "index.json").read_text())
    manifest = json.loads((base / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    layer = base / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(layer.read_bytes())
    data[600] ^= 1
    layer.write_bytes(bytes(data))
    cache = tmp_path / "c2"
    proc = run("build", project, "--base", f"oci:{base}:b", "--output", f"oci:{tmp_path / 'o'}", cache=cache)
    assert_one_line_error(proc, "corrupt", manifest["layers"][0]["digest"])
    assert not (cache / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]).exists()
    assert list((cache / "tmp").iterdir()) == []
    assert not (tmp_path / "o").exists()


def test_interrupted_write_leaves_nothing_partial(tmp_path: Path, project: Path) -> None:
    """SIGINT while the archive is being written: exit 130, no archive, no temp file beside it."""
    big = project / "big.bin"
    with big.open("wb") as f:
        f.truncate(400 << 20)  # 400 MB of zeros, stored uncompressed so writing takes a while
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp_path / "c")}
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "build", str(project), "--compression", "none",
                             "--output", f"oci-archive:{out_dir / 'img.tar'}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".img.tar.tmp-") for p in out_dir.iterdir()):
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the build finished before the archive write could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(out_dir.iterdir()) == []


def test_inspect_shows_layers_and_what_each_holds(tmp_path: Path, project: Path) -> None:
    (project / "weights.bin").write_bytes(b"\0" * (2 << 20))  # a model file: its own layer
    assert run("build", project, "--output", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c").returncode == 0
    proc = run("inspect", f"oci:{tmp_path / 'o'}:v1", cache=tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    assert "ocibuild: COPY . /app (weights.bin)" in proc.stdout and "ocibuild: COPY . /app" in proc.stdout
    assert 'entrypoint ["/bin/sh", "/app/hello.sh"]' in proc.stdout and "platform   linux/amd64" in proc.stdout
    info = json.loads(run("inspect", f"oci:{tmp_path / 'o'}:v1", "--json", cache=tmp_path / "c").stdout)
    assert len(info["layers"]) == 2 and info["total_size"] == sum(x["size"] for x in info["layers"])
    missing = run("inspect", f"oci:{tmp_path / 'nope'}:v1", cache=tmp_path / "c")
    assert_one_line_error(missing, "not found")

"""What a person reads while ``ocibuild build`` works: in a log (stderr not a terminal) one line per
layer even for several platforms and one line per output with what its transfers cost; on a terminal
a live table (run under a pseudo-terminal, its final screen read back through the ``pyte`` terminal
emulator). Then the renderer fed with events directly: grouping, threads, a platform that never
reports, ``--quiet``, the transfer bars."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pyte
import pytest
from harness.cli import EPOCH
from harness.cli import ocibuild as run_cli
from harness.registry import Registry
from test_python_deps import _fake_wheel

from ocibuild.events import (
    BaseResolved,
    BlobTransferred,
    BuildStarted,
    LayerDone,
    LayerExplained,
    Note,
    OutputDone,
    Progress,
    Pushed,
)
from ocibuild.progress import Reporter
from ocibuild.spec import Descriptor, Digest, MediaType

REPO = Path(__file__).resolve().parents[1]
PLATFORMS = ("linux/amd64", "linux/arm64/v8")


def _two_platform_app(tmp_path: Path, amd64: Path, arm64: Path) -> tuple[Path, Path]:
    """A project with two pure-Python requirements from a local wheelhouse on busybox bases for amd64
    and arm64 (the interpreter and C library named, as busybox has neither): (project, wheelhouse)."""
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "tinylib", "1.0", "py3-none-any")
    _fake_wheel(wheels, "otherlib", "2.0", "py3-none-any")
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("print('hi')\n")
    (app / "requirements.txt").write_text("tinylib==1.0\notherlib==2.0\n")
    (app / "ocibuild.toml").write_text(
        'platforms = ["linux/amd64", "linux/arm64"]\n'
        f'[base]\n"linux/amd64" = "oci:{amd64}:busybox"\n"linux/arm64" = "oci:{arm64}:busybox"\n'
        '[python]\nrequirements = "requirements.txt"\ninterpreter = "/usr/bin/python3.11"\npython_version = "3.11"\n'
        'libc = "glibc"\nlibc_version = "2.36"\nbytecode = false\n')
    return app, wheels


def _layer_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("layer ")]


def test_plain_log_of_a_two_platform_build_has_one_line_per_layer(tmp_path: Path, busybox_layout: Path,
                                                                  busybox_arm64_layout: Path) -> None:
    app, wheels = _two_platform_app(tmp_path, busybox_layout, busybox_arm64_layout)
    out = tmp_path / "out"
    proc = run_cli("build", app, "--find-links", wheels, "--no-index", "--output", f"oci:{out}:v1",
                   "--result-json", tmp_path / "result.json", cache=tmp_path / "cache")
    digest = proc.stdout.strip()
    doc = json.loads((tmp_path / "result.json").read_text())
    assert doc["digest"] == digest and len(doc["platforms"]) == 2
    labels = {x["label"] for p in doc["platforms"] for x in p["layers"]}
    assert {"app", "py:venv"} <= labels

    lines = _layer_lines(proc.stderr)
    assert sorted(line.split()[1] for line in lines) == sorted(labels), proc.stderr  # each layer once
    for line in lines:
        label = line.split()[1]
        if label.startswith("py:"):  # one per platform: a column each
            assert all(p in line for p in PLATFORMS), line
            assert line.count(" built ") + line.count(" cached ") == 2, line
        else:  # the app's files: one layer for all platforms, as a single-platform build prints it
            assert not any(p in line for p in PLATFORMS) and " files  " in line, line
    assert f"wrote   oci:{out}:v1  {digest}  " in proc.stderr, proc.stderr

    again = run_cli("build", app, "--find-links", wheels, "--no-index", "--output", f"oci:{out}:v1",
                    cache=tmp_path / "cache")
    assert again.stdout == proc.stdout
    assert len(_layer_lines(again.stderr)) == len(labels)
    assert all(" built " not in line for line in _layer_lines(again.stderr)), again.stderr  # all cached


def _run_in_pty(args: list[str | Path], env: dict[str, str], *, cols: int, rows: int,
                timeout: float = 120) -> tuple[int, str, list[str]]:
    """``python -m ocibuild ARGS`` with stderr on a pseudo-terminal of ``cols`` x ``rows`` (stdout a
    pipe): (exit code, stdout, the terminal's final screen as lines)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR",
                                                             "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    full.update({"TERM": "xterm-256color", **env})
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=full, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child and every copy of the terminal's other end are gone
                break
            if not chunk:
                break
            chunks.append(chunk)
        else:
            proc.kill()
            raise AssertionError("ocibuild under a pty did not finish in time:\n"
                                 + b"".join(chunks).decode(errors="replace")[-3000:])
    finally:
        os.close(master)
    assert proc.stdout is not None
    stdout = proc.stdout.read().decode()
    code = proc.wait(timeout=30)
    screen = pyte.Screen(cols, rows)
    pyte.ByteStream(screen).feed(b"".join(chunks))
    return code, stdout, [line.rstrip() for line in screen.display]


def test_live_view_on_a_terminal(tmp_path: Path, busybox_layout: Path, busybox_arm64_layout: Path,
                                 plain_registry: Registry) -> None:
    app, wheels = _two_platform_app(tmp_path, busybox_layout, busybox_arm64_layout)
    target = f"{plain_registry.host}/progress/live:1"
    env = {"OCIBUILD_CACHE": str(tmp_path / "cache"), "SOURCE_DATE_EPOCH": EPOCH, "PYTHONPATH": str(REPO),
           "DOCKER_CONFIG": str(tmp_path / "docker")}
    code, stdout, screen = _run_in_pty(["build", app, "--find-links", wheels, "--no-index", "--sbom", "none",
                                        "--output", f"docker://{target}"], env, cols=200, rows=50)
    shown = "\n".join(screen)
    assert code == 0, shown
    digest = stdout.strip()
    assert digest.startswith("sha256:") and len(digest) == 71, stdout

    # the table: a header with a column per platform, a row per layer, every platform reported
    header = next((line for line in screen if line.startswith("layer ")), None)
    assert header is not None, shown
    assert header.split() == ["layer", *PLATFORMS, "files", "time"], header
    rows = {line.split()[0]: line for line in screen if line.split() and line.split()[0] in ("app", "py:venv")}
    assert set(rows) == {"app", "py:venv"}, shown
    assert "shared" in rows["app"]  # one layer for both platforms
    assert rows["py:venv"].count("built") + rows["py:venv"].count("cached") == 2, rows["py:venv"]
    assert "building…" not in shown

    # then the output's line, digest and costs, and nothing of the per-blob lines of a log
    summary = [line for line in screen if line.startswith("pushed  ")]
    assert len(summary) == 1, shown
    assert summary[0].startswith(f"pushed  {target}@{digest}  ") and " uploaded (" in summary[0], summary[0]
    assert " skipped (" in summary[0] and " mounted (" in summary[0], summary[0]
    assert not any(line.startswith("push    ") for line in screen), shown

    # the same build with --quiet on the same terminal: the digest, nothing on the screen
    code, quiet_out, quiet_screen = _run_in_pty(["build", app, "--find-links", wheels, "--no-index", "--sbom", "none",
                                                 "--output", f"docker://{target}", "--quiet"], env, cols=200, rows=50)
    assert code == 0 and quiet_out == stdout and not any(quiet_screen), quiet_screen


# --- the renderer, fed with events --------------------------------------------------------------------

def _desc(seed: str, size: int) -> Descriptor:
    return Descriptor(media_type=MediaType.OCI_LAYER_GZIP, digest=Digest.of(seed.encode()), size=size)


def _done(label: str, platform: str | None, size: int = 1000, cached: bool = False) -> LayerDone:
    return LayerDone(label=label, descriptor=_desc(label + str(platform), size), cached=cached, seconds=0.25,
                     files=3, platform=platform)


def test_layers_of_several_platforms_are_grouped(capsys: pytest.CaptureFixture[str]) -> None:
    report = Reporter(False)
    report(BuildStarted(platforms=("linux/amd64", "linux/arm64")))
    report(_done("app", None))
    for platform in PLATFORMS:
        report(BaseResolved(base="oci:b", digest=None, layers=1, platform=platform))

    def platform_thread(platform: str) -> None:
        for i in range(20):
            report(LayerExplained(label=f"py:lib{i}", platform=platform, causes=(f"lib{i} 1.0 -> 1.1",)))
            report(_done(f"py:lib{i}", platform, cached=platform == PLATFORMS[1]))

    threads = [threading.Thread(target=platform_thread, args=(p,)) for p in PLATFORMS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report(LayerExplained(label="app", platform=None, causes=("app/main.py: content changed",)))
    report(OutputDone(output="oci:out:v1", digest=Digest.of(b"image"), seconds=0.5))
    report.close()
    lines = capsys.readouterr().err.splitlines()

    layers = [line for line in lines if line.startswith("layer ")]
    assert len(layers) == 21
    assert layers[0].startswith("layer   app                  built ")
    for i in range(20):
        (line,) = [x for x in layers if x.split()[1] == f"py:lib{i}"]
        assert "linux/amd64 built     1.0 kB  linux/arm64/v8 cached    1.0 kB      3 files  0.25s" in line, line
        why = lines[lines.index(line) + 1]
        assert why == f"        why: lib{i} 1.0 -> 1.1", why  # both platforms gave it: said once, under its line
    assert "        why: app/main.py: content changed" in lines  # told after its line was printed
    assert lines[-1] == f"wrote   oci:out:v1  {Digest.of(b'image')}  0.50s"


def test_a_platform_that_never_reports_loses_no_line(capsys: pytest.CaptureFixture[str]) -> None:
    report = Reporter(False)
    report(BuildStarted(platforms=PLATFORMS))
    report(_done("py:numpy", PLATFORMS[0]))
    report(Note(text="skip    linux/arm64/v8: no wheel"))
    assert capsys.readouterr().err == "skip    linux/arm64/v8: no wheel\n"
    report(OutputDone(output="oci:out:v1", digest=Digest.of(b"i"), seconds=0.1))  # held lines come first
    first, second = capsys.readouterr().err.splitlines()
    assert first.startswith("layer   py:numpy             linux/amd64 built ") and "arm64" not in first
    assert second.startswith("wrote   oci:out:v1")

    failed = Reporter(False)  # no output at all (the other platform failed): close() prints what it holds
    failed(BuildStarted(platforms=PLATFORMS))
    failed(_done("py:numpy", PLATFORMS[1], cached=True))
    failed.close()
    failed.close()
    assert capsys.readouterr().err.splitlines() == [
        "layer   py:numpy             linux/arm64/v8 cached    1.0 kB      3 files  0.25s"]


def test_transfers_are_counted_per_output(capsys: pytest.CaptureFixture[str]) -> None:
    report = Reporter(False)
    digest = Digest.of(b"index")
    moves = [("uploaded", 2_000_000, 0.5), ("uploaded", 500, 0.01), ("exists", 30_000_000, 0.0),
             ("mounted", 4_000_000, 0.02), ("exists", 1_000, 0.0)]
    for i, (how, size, seconds) in enumerate(moves):
        report(BlobTransferred(registry="127.0.0.1:5000", repository="team/app", digest=Digest.of(b"%d" % i),
                               size=size, how=how, seconds=seconds))  # type: ignore[arg-type]
    report(BlobTransferred(registry="127.0.0.1:5000", repository="other", digest=Digest.of(b"x"), size=9,
                           how="uploaded", seconds=0.0))
    report(Pushed(reference=f"127.0.0.1:5000/team/app:1@{digest}", digest=digest))
    report(OutputDone(output="docker://127.0.0.1:5000/team/app:1", digest=digest, seconds=1.25))
    report.close()
    lines = capsys.readouterr().err.splitlines()
    pushes = [line for line in lines if line.startswith("push ")]
    assert pushes == [f"push    {Digest.of(b'0').short}  uploaded      2.0 MB  4.0 MB/s",
                      f"push    {Digest.of(b'1').short}  uploaded       500 B  50.0 kB/s",
                      f"push    {Digest.of(b'x').short}  uploaded         9 B"]
    assert lines[-1] == (f"pushed  127.0.0.1:5000/team/app:1@{digest}  2 uploaded (2.0 MB), 2 skipped (30.0 MB), "
                         "1 mounted (4.0 MB)  1.25s")


def test_quiet_prints_only_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    report = Reporter(True, live=True)
    report(BuildStarted(platforms=PLATFORMS))
    report(_done("py:numpy", PLATFORMS[0]))
    report(Note(text="python  resolved"))
    report(Note(text="warning: cache repository: down", warning=True))
    report.close()
    assert capsys.readouterr().err == "warning: cache repository: down\n"


def test_live_view_draws_the_table_and_the_blobs_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    report = Reporter(False, live=True)
    view = report._view
    assert view is not None
    screen = io.StringIO()
    view.console = Console(file=screen, width=120, force_terminal=False, color_system=None)
    report(BuildStarted(platforms=("linux/amd64", "linux/arm64")))
    report(_done("app", None))
    report(_done("py:numpy", "linux/arm64/v8", size=16_900_000))
    blob = Digest.of(b"numpy")
    report(Progress(digest=blob, done=5_000_000, total=20_000_000, action="push"))
    view.console.print(view.render())
    text = screen.getvalue()
    report.close()
    lines = text.splitlines()
    assert lines[0].split() == ["layer", "linux/amd64", "linux/arm64/v8", "files", "time"], text
    assert lines[1].split() == ["app", "built", "1.0", "kB", "shared", "3", "0.25s"], text
    assert lines[2].split() == ["py:numpy", "building…", "built", "16.9", "MB", "3", "0.25s"], text
    assert lines[3].startswith(f"push {blob.short}") and "5.0 MB/20.0 MB" in lines[3], text

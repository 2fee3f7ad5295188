"""``ocibuild dev`` (issue 15): a long-lived process that rebuilds and pushes on every save.

Against a real registry (distribution, its access log) and checked with skopeo: after each of three
edits the tag names a manifest whose code layer holds the new bytes, and only that layer, the config
and the manifest were uploaded (no HEAD of a layer the session knows); a broken build file prints one
error line and a fix pushes again; a blob deleted from the registry's storage behind its back is
pushed again (``MANIFEST_BLOB_UNKNOWN``); Ctrl-C exits 130 leaving no process behind. ``--run``
keeps the iris server running in podman: an edit of its version string is answered by the new
container. A fresh ``ocibuild build`` remembers the blobs each repository holds (in the store).
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from harness.cli import EPOCH
from harness.cli import ocibuild as run_cli
from harness.net import free_port
from harness.proc import skopeo_copy, skopeo_inspect
from harness.registry import Registry
from harness.runtime import podman as run_podman
from harness.runtime import podman_env
from harness.validate import validate_layout

from ocibuild.dev import DevSession
from ocibuild.plan import BuildPlan, LayerSpec
from ocibuild.registry import KnownBlobs, Repository
from ocibuild.spec import Digest
from ocibuild.store import ContentStore
from ocibuild.transports import parse_location

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris-server"
BUILD_FILE = """base = "scratch"
entrypoint = ["/bin/sh", "/app/app.sh"]

[[layers]]
name = "lib"
src = "lib"
dest = "/lib/app"

[[layers]]
name = "code"
src = "app.sh"
dest = "/app/app.sh"
"""


def _save(path: Path, text: str) -> None:
    """Save as many editors do: a temp file beside it, renamed over it (one change, never half written)."""
    tmp = path.parent / f".{path.name}.tmp-save"
    tmp.write_text(text)
    os.replace(tmp, path)


def _project(where: Path) -> Path:
    """Two layers: ``lib`` (never edited here) and ``code`` (``app.sh``, edited)."""
    (where / "lib").mkdir(parents=True)
    (where / "lib" / "data.txt").write_text("library bytes\n" * 1000)
    (where / "app.sh").write_text('echo "version 0"\n')
    (where / "ocibuild.toml").write_text(BUILD_FILE)
    return where


class Dev:
    """``python -m ocibuild dev ARGS`` in a session of its own; its stdout lines in a queue."""

    def __init__(self, *args: str | Path, cache: Path, env: dict[str, str] | None = None) -> None:
        full = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": EPOCH, **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "dev", *map(str, args)], env=full,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.stderr = ""
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self, pattern: str = r"^dev ", timeout: float = 600) -> str:
        """The next stdout line matching ``pattern`` (other lines are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=min(1.0, max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                if self.reader.is_alive() and time.monotonic() < deadline:
                    continue  # the process may still print (its pipe is read until it ends)
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s; saw {self.seen[-20:]}; "
                                     f"exit {self.proc.poll()}; stderr: {self._stderr()}") from None
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def saw(self, pattern: str, timeout: float = 60) -> str:
        """A line matching ``pattern`` already read, else the next one."""
        return next((line for line in self.seen if re.search(pattern, line)), None) or self.line(pattern, timeout)

    def _stderr(self) -> str:
        if self.proc.poll() is None:
            return "(still running)"
        assert self.proc.stderr is not None
        self.stderr += self.proc.stderr.read()
        return self.stderr[-3000:]

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT to the process); its exit code."""
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=120)
        self._stderr()
        return code

    def leftovers(self) -> list[str]:
        """Processes still in the dev process's session (its children, podman's log readers...)."""
        sid = self.proc.pid
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":  # session id, state
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append(f"{entry.name}: {cmdline!r}")
        return found

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture
def dev_processes() -> Iterator[list[Dev]]:
    started: list[Dev] = []
    yield started
    for dev in started:
        dev.kill()


def _digest(line: str) -> str:
    found = re.search(r"pushed (sha256:[0-9a-f]{64})", line)
    assert found, line
    return found.group(1)


def _pulled_layers(reg: Registry, ref: str, dest: Path) -> tuple[str, list[tarfile.TarFile]]:
    """``skopeo copy`` the tag into an OCI layout: the manifest digest and each layer as a tar."""
    if dest.exists():
        shutil.rmtree(dest)
    skopeo_copy(f"docker://{reg.host}/{ref}", f"oci:{dest}:x", *reg.skopeo_args("src"))
    index = json.loads((dest / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((dest / "blobs" / "sha256" / digest.split(":")[1]).read_text())
    tars = [tarfile.open(dest / "blobs" / "sha256" / layer["digest"].split(":")[1]) for layer in manifest["layers"]]
    return digest, tars


def _uploaded(reg: Registry, mark: int) -> set[str]:
    """Digests of the blobs whose upload finished since ``mark``."""
    return {r["query"]["digest"][0] for r in reg.requests_since(mark)
            if r["method"] == "PUT" and "/blobs/uploads/" in r["route"] and "digest" in r["query"]}


def _manifest(reg: Registry, ref: str) -> dict[str, Any]:
    raw = subprocess.run(["skopeo", "inspect", "--raw", *reg.skopeo_args(), f"docker://{reg.host}/{ref}"],
                         capture_output=True, check=True, timeout=60).stdout
    result: dict[str, Any] = json.loads(raw)
    return result


def test_three_edits_push_only_the_code_layer_and_a_broken_build_file_keeps_watching(
        tmp_path: Path, plain_registry: Registry, dev_processes: list[Dev]) -> None:
    reg = plain_registry
    project = _project(tmp_path / "p")
    ref = "dev/three:dev"
    dev = Dev(project, "--output", f"docker://{reg.host}/{ref}", cache=tmp_path / "cache")
    dev_processes.append(dev)
    first = dev.line()
    assert "first build" in first and _digest(first), first
    assert dev.line(r"watching")
    lib_digest = _manifest(reg, ref)["layers"][0]["digest"]
    for n in range(1, 4):
        mark = reg.mark()
        _save(project / "app.sh", f'echo "version {n}"\n')
        line = dev.line()
        assert re.match(r"^dev +app\.sh: built code; pushed sha256:[0-9a-f]{64} in \d+\.\d+ s$", line), line
        digest, (lib, code) = _pulled_layers(reg, ref, tmp_path / "pulled")
        assert digest == _digest(line)  # the tag names what the line says
        code_file = code.extractfile("app/app.sh")
        assert code_file is not None and code_file.read() == f'echo "version {n}"\n'.encode()
        assert lib.extractfile("lib/app/data.txt") is not None
        manifest = _manifest(reg, ref)
        # only the new code layer and the config went up; the lib layer is never even HEADed again
        assert _uploaded(reg, mark) == {manifest["layers"][1]["digest"], manifest["config"]["digest"]}
        since = reg.requests_since(mark)
        assert not [r for r in since if r["method"] == "HEAD" and lib_digest in r["route"]], since
        assert [r["route"] for r in since if r["method"] == "PUT" and "/manifests/" in r["route"]] == \
            [f"/v2/dev/three/manifests/{digest}", "/v2/dev/three/manifests/dev"]  # by digest, then the tag
    # a syntax error in the build file: one error line, still watching
    good = (project / "ocibuild.toml").read_text()
    _save(project / "ocibuild.toml", good + "\n[layers\n")
    error = dev.line()
    assert re.match(r"^dev +ocibuild\.toml: error: .*ocibuild\.toml: invalid TOML.*\(still watching", error), error
    assert dev.proc.poll() is None
    _save(project / "ocibuild.toml", good)
    fixed = dev.line()
    assert "error" not in fixed, fixed
    _save(project / "app.sh", 'echo "version 4"\n')
    again = dev.line()
    assert "pushed" in again, again
    _, (_, code) = _pulled_layers(reg, ref, tmp_path / "pulled")
    code_file = code.extractfile("app/app.sh")
    assert code_file is not None and code_file.read() == b'echo "version 4"\n'
    assert dev.interrupt() == 130
    assert "Traceback" not in dev.stderr
    assert not dev.leftovers()


def test_a_blob_deleted_behind_its_back_is_pushed_again(tmp_path: Path, plain_registry: Registry,
                                                       dev_processes: list[Dev]) -> None:
    reg = plain_registry
    project = _project(tmp_path / "p")
    ref = "dev/deleted:dev"
    dev = Dev(project, "--output", f"docker://{reg.host}/{ref}", cache=tmp_path / "cache")
    dev_processes.append(dev)
    dev.line()
    dev.line("watching")
    lib_digest = _manifest(reg, ref)["layers"][0]["digest"]
    reg.blob_path(lib_digest).unlink()  # the registry lost it (a cleanup, a GC): the session still thinks it is there
    mark = reg.mark()
    _save(project / "app.sh", 'echo "after the loss"\n')
    line = dev.line()
    assert "pushed" in line, line
    refused = [r for r in reg.requests_since(mark) if r["method"] == "PUT" and "/manifests/" in r["route"]]
    assert [r["status"] for r in refused] == [400, 201, 201]  # MANIFEST_BLOB_UNKNOWN, the retry, the tag
    assert lib_digest in _uploaded(reg, mark)
    digest, (lib, code) = _pulled_layers(reg, ref, tmp_path / "pulled")
    assert digest == _digest(line)
    validate_layout(tmp_path / "pulled")  # every blob there, digests and sizes right
    assert lib.extractfile("lib/app/data.txt") is not None
    code_file = code.extractfile("app/app.sh")
    assert code_file is not None and code_file.read() == b'echo "after the loss"\n'
    assert dev.interrupt() == 130


def test_dev_writes_an_oci_layout_and_ignores_what_is_not_built_from(tmp_path: Path,
                                                                    dev_processes: list[Dev]) -> None:
    project = _project(tmp_path / "p")
    (project / ".ociignore").write_text("notes/\n")
    (project / "notes").mkdir()
    out = project / "out"  # an output inside the project: never a change
    dev = Dev(project, "--output", f"oci:{out}:dev", cache=tmp_path / "cache")
    dev_processes.append(dev)
    first = _digest(dev.line())
    dev.line("watching")
    (project / "notes" / "todo.md").write_text("not in any layer\n")  # in no layer: nothing happens
    (project / ".app.sh.swp").write_bytes(b"editor noise")
    _save(project / "app.sh", 'echo "layout"\n')
    line = dev.line()
    assert line.startswith("dev     app.sh: built code; pushed"), line  # only the code change made a cycle
    assert skopeo_inspect(f"oci:{out}:dev")["Digest"] == _digest(line) != first
    validate_layout(out)
    (project / "app.sh").unlink()  # a layer's source gone: one error line, still watching
    gone = dev.line()
    assert re.match(r"^dev +app\.sh: error: layer source .*app\.sh does not exist", gone), gone
    _save(project / "app.sh", 'echo "back"\n')
    back = dev.line()
    assert "pushed" in back and skopeo_inspect(f"oci:{out}:dev")["Digest"] == _digest(back), back
    assert dev.interrupt() == 130


def test_a_build_file_given_with_config_is_watched_too(tmp_path: Path, dev_processes: list[Dev]) -> None:
    project = _project(tmp_path / "p")
    config = tmp_path / "elsewhere" / "build.toml"  # outside the project
    config.parent.mkdir()
    (project / "ocibuild.toml").rename(config)
    config.write_text(config.read_text().replace('src = "lib"', f'src = "{project / "lib"}"')
                      .replace('src = "app.sh"', f'src = "{project / "app.sh"}"'))
    out = tmp_path / "out"
    dev = Dev(project, "--config", config, "--output", f"oci:{out}:dev", cache=tmp_path / "cache")
    dev_processes.append(dev)
    first = _digest(dev.line())
    dev.line("watching")
    _save(config, config.read_text().replace('"/app/app.sh"]', '"/app/app.sh", "--flag"]'))
    line = dev.line()
    assert "build.toml" in line and "pushed" in line, line
    assert _digest(line) != first
    assert skopeo_inspect(f"oci:{out}:dev")["Digest"] == _digest(line)
    assert dev.interrupt() == 130


def test_sigterm_stops_like_ctrl_c(tmp_path: Path, dev_processes: list[Dev]) -> None:
    project = _project(tmp_path / "p")
    dev = Dev(project, "--output", f"oci:{tmp_path / 'out'}:dev", cache=tmp_path / "cache")
    dev_processes.append(dev)
    assert "pushed" in dev.line()
    dev.line("watching")
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(timeout=60) == 143
    assert not dev.leftovers()


def test_a_truncate_then_write_save_never_builds_an_empty_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor that truncates, then writes a moment later: the cycle waits for the bytes."""
    project = _project(tmp_path / "p")
    plan = BuildPlan(project_dir=project, layers=(LayerSpec(src=Path("app.sh"), dest="/app/app.sh", name="code"),),
                     outputs=(parse_location(f"oci:{tmp_path / 'out'}:dev"),))
    session = DevSession(lambda: plan, store=ContentStore(tmp_path / "cache"))
    assert session.cycle().error is None
    app = project / "app.sh"
    app.write_text("")  # truncated...
    real_sleep = time.sleep

    def editor_writes_meanwhile(seconds: float) -> None:  # ...and written while the cycle waits for it
        if app.stat().st_size == 0:
            app.write_text('echo "whole"\n')
        real_sleep(seconds)

    monkeypatch.setattr("ocibuild.dev.time.sleep", editor_writes_meanwhile)
    cycle = session.cycle([app])
    assert cycle.error is None and cycle.result is not None
    layer = cycle.result.layers[-1].layer
    with layer.compressed() as f, tarfile.open(fileobj=f, mode="r:gz") as tar:
        member = tar.extractfile("app/app.sh")
        assert member is not None and member.read() == b'echo "whole"\n'


def test_classify_names_what_a_change_means(tmp_path: Path) -> None:
    project = _project(tmp_path / "p")
    (project / ".ociignore").write_text("*.log\n")
    plan = BuildPlan(project_dir=project, layers=(LayerSpec(src=Path("."), dest="/app", name="app"),),
                     outputs=(parse_location(f"oci:{project / 'out'}:dev"),))
    session = DevSession(lambda: plan, store=ContentStore(tmp_path / "cache"))
    session.plan = plan
    assert session.classify(project / "ocibuild.toml") == "plan"
    assert session.classify(project / "app.sh") == "files"
    assert session.classify(project / "lib" / "new.py") == "files"
    for ignored in ("out/index.json", ".git/index", "__pycache__/x.pyc", ".app.sh.swp", "app.sh~", "debug.log"):
        assert session.classify(project / ignored) is None, ignored
    assert session.classify(tmp_path / "elsewhere.txt") is None
    assert session.classify(tmp_path / "cache" / "blobs" / "x") is None


@pytest.mark.parametrize(("args", "message"), [
    ((), "no output given: add --output LOCATION"),
    (("--output", "oci:out:dev", "--run", "--publish", "eighty"), "--publish 'eighty': give HOST:CONTAINER"),
    (("--output", "docker-archive:out.tar", "--run"), "--run starts the image from a docker:// or oci:DIR:TAG"),
    (("--output", "oci:out:dev", "--config", "missing.toml"), "missing.toml"),
    (("--output", "oci:out:dev", "--config", "broken.toml"), "broken.toml: invalid TOML"),
])
def test_dev_usage_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    project = _project(tmp_path / "p")
    (tmp_path / "broken.toml").write_text("[layers\n")  # a build file broken from the start: nothing to watch yet
    proc = run_cli("dev", project, *args, cache=tmp_path / "cache", check=False, cwd=tmp_path, timeout=120,
                   env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocibuild: error: ") and message in lines[0], proc.stderr


def test_a_fresh_build_remembers_the_blobs_a_repository_holds(tmp_path: Path, plain_registry: Registry) -> None:
    """``ocibuild build`` as a new process: blobs a previous push stored are not HEADed again (the
    store keeps a record per repository); a blob lost since is pushed again all the same."""
    reg = plain_registry
    project = _project(tmp_path / "p")
    target = f"docker://{reg.host}/dev/fresh:1"
    cache = tmp_path / "cache"
    run_cli("build", project, "--output", target, "--sbom", "none", cache=cache)
    lib_digest = _manifest(reg, "dev/fresh:1")["layers"][0]["digest"]
    (project / "app.sh").write_text('echo "fresh 2"\n')
    mark = reg.mark()
    run_cli("build", project, "--output", target, "--sbom", "none", cache=cache)
    heads = [r["route"] for r in reg.requests_since(mark) if r["method"] == "HEAD"]
    assert not [h for h in heads if lib_digest in h], heads
    manifest = _manifest(reg, "dev/fresh:1")
    assert _uploaded(reg, mark) == {manifest["layers"][1]["digest"], manifest["config"]["digest"]}
    reg.blob_path(lib_digest).unlink()
    (project / "app.sh").write_text('echo "fresh 3"\n')
    mark = reg.mark()
    out = run_cli("build", project, "--output", target, "--sbom", "none", cache=cache).stdout.strip()
    assert lib_digest in _uploaded(reg, mark)
    _, (lib, _) = _pulled_layers(reg, f"dev/fresh@{out}", tmp_path / "pulled")
    validate_layout(tmp_path / "pulled")
    assert lib.extractfile("lib/app/data.txt") is not None


# --- --run: the iris server in podman --------------------------------------------------------------------

@pytest.fixture
def podman_net(tmp_path: Path) -> Iterator[dict[str, str]]:
    """podman with its state under tmp_path and a bridge network (its config there too, not in /etc),
    so ``--run`` can publish the server's port."""
    state = tmp_path / "podman"
    env = podman_env(state)
    conf = Path(env["CONTAINERS_CONF"])
    conf.write_text(conf.read_text().replace('netns = "none"\n', "")
                    + f'[network]\nnetwork_config_dir = "{state / "cni"}"\n')
    yield env
    run_podman(env, "rm", "-f", "-a", check=False, timeout=120)
    run_podman(env, "system", "reset", "--force", check=False, timeout=300)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _version(port: int) -> str | None:
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        version: str = answer.json()["version"]
        return version
    except (requests.RequestException, ValueError, KeyError):
        return None


@pytest.mark.slow
def test_run_replaces_the_container_with_the_new_code(tmp_path: Path, plain_registry: Registry,
                                                      podman_net: dict[str, str], dev_processes: list[Dev]) -> None:
    app = Path(shutil.copytree(IRIS, tmp_path / "iris"))
    subprocess.run([sys.executable, str(app / "train.py")], check=True, capture_output=True, timeout=300)
    reg = plain_registry
    port = free_port()
    dev = Dev(app, "--platform", "linux/amd64", "--output", f"docker://{reg.host}/dev/iris:dev", "--run",
              "--publish", f"{port}:8080", cache=tmp_path / "cache", env=podman_net)
    dev_processes.append(dev)
    dev.line()
    dev.line(r"^run +started")
    deadline = time.monotonic() + 300
    while _version(port) != "1":
        assert time.monotonic() < deadline, (dev.seen, dev._stderr())
        time.sleep(0.2)
    first = run_podman(podman_net, "ps", "-q").stdout.split()
    assert len(first) == 1
    server = app / "server.py"
    _save(server, server.read_text().replace('VERSION = "1"', 'VERSION = "2-dev"'))
    pushed = dev.line()
    assert "built code" in pushed, pushed
    started = dev.line(r"^run +started")
    assert re.search(r"\d+\.\d+ s after the save", started), started
    deadline = time.monotonic() + 120
    while _version(port) != "2-dev":
        assert time.monotonic() < deadline, (dev.seen, dev._stderr())
        time.sleep(0.1)
    assert dev.saw(r"^app \| iris server 2-dev listening")  # its output, behind the prefix
    running = run_podman(podman_net, "ps", "-a", "-q").stdout.split()
    assert len(running) == 1 and running != first  # the old container is gone (stopped and removed)
    assert dev.interrupt() == 130
    assert run_podman(podman_net, "ps", "-a", "-q").stdout.split() == []
    assert _version(port) is None
    assert not dev.leftovers()
    readers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and b"ocibuild-dev-" in _cmdline(p)]
    assert not readers, [_cmdline(p) for p in readers]  # no `podman logs -f` left behind either


def test_known_blobs_are_kept_per_repository_bounded_and_expire(tmp_path: Path) -> None:
    store = ContentStore(tmp_path / "cache")
    repo, other = Repository(host="127.0.0.1:5000", name="team/app"), Repository(host="127.0.0.1:5000", name="x")
    digests = [Digest.of(str(n).encode()) for n in range(5)]
    known = KnownBlobs(store, limit=3)
    known.add(repo, digests)
    assert [known.has(repo, d) for d in digests] == [False, False, True, True, True]  # the newest 3
    assert not known.has(other, digests[4])
    again = KnownBlobs(store, limit=3)  # a new process reads the store's record
    assert again.has(repo, digests[4]) and not again.has(repo, digests[0])
    again.forget(repo)
    assert not KnownBlobs(store).has(repo, digests[4])  # forgotten in the record too
    known = KnownBlobs(store)
    known.add(repo, digests[:1])
    assert not KnownBlobs(store, ttl=-1).has(repo, digests[0])  # past its time: every blob checked again
    assert KnownBlobs(store).has(repo, digests[0])
    record = next((store.root / "selectors").glob("known-blobs-*.json"))
    record.write_text("{not json")
    assert not KnownBlobs(store).has(repo, digests[0])  # a damaged record is no memory, not an error

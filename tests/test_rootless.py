"""Rootless is tested, not assumed: a project with Python dependencies (``six`` from PyPI) on a base
assembled from Debian packages, pushed to a local registry and written as an ``oci:`` layout, built by
an unprivileged user (``setpriv --reuid 65534``, its own HOME, cache and temp folder) gives the same
digest as the same build run as root into another cache.

CI runs as root, whose Python lives under /root (mode 0700): the unprivileged process runs the
system's ``/usr/bin/python3`` with copies of ocibuild's installed dependencies (the very versions of
this environment, so the compressors are the same) and this checkout on ``PYTHONPATH``. Both builds
use that same interpreter; only the user differs. The Debian mirror is reached through a read-through
cache on loopback, so the two builds see the same mirror state and the packages are downloaded once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from harness.bases import apt_mirror
from harness.layout import images_of_index
from harness.net import TLSThreadingServer
from harness.registry import Registry
from harness.runtime import host_arch
from harness.validate import validate_layout
from packaging.requirements import Requirement

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"
SETPRIV = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
# the machine's network settings (a corporate proxy, its CA), passed to both builds alike
NETWORK_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE",
                "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def _closure(names: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need, with their (unconditional) requirements."""
    out: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        dist = importlib.metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in out:
            continue
        out[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(out.values())


def _copy_site(dest: Path) -> None:
    """ocibuild's installed dependencies, copied into ``dest`` as ``pip install --target`` lays them out
    (console scripts, uv's binary among them, in ``dest/bin``)."""
    deps = [Requirement(r).name for r in importlib.metadata.requires("ocibuild") or [] if "extra ==" not in r]
    for dist in _closure(deps):
        for f in dist.files or []:
            src = Path(str(dist.locate_file(f)))
            rel = Path("bin") / src.name if str(f).startswith("..") else Path(str(f))
            if "__pycache__" in rel.parts or not src.is_file():
                continue
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


class _MirrorCache(BaseHTTPRequestHandler):
    """GET /PATH: ``upstream``/PATH, fetched once and kept (404s passed through)."""

    protocol_version = "HTTP/1.1"
    server: _CacheServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        path = self.server.fetch(self.path)
        if path is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with path.open("rb") as f:
            shutil.copyfileobj(f, self.wfile, 1 << 20)


class _CacheServer(TLSThreadingServer):
    def __init__(self, upstream: str, folder: Path) -> None:
        super().__init__(("127.0.0.1", 0), _MirrorCache, None)
        self.upstream = upstream.rstrip("/")
        self.folder = folder
        self.session = requests.Session()
        self.lock = threading.Lock()
        self.fetched: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def fetch(self, path: str) -> Path | None:
        key = self.folder / hashlib.sha256(path.encode()).hexdigest()
        with self.lock:  # one fetch per path (a build asks for each file once per store)
            if key.is_file():
                return key
            missing = key.with_suffix(".404")
            if missing.exists():
                return None
            with self.session.get(self.upstream + path, stream=True, timeout=(15, 120)) as resp:
                if resp.status_code == 404:
                    missing.touch()
                    return None
                resp.raise_for_status()
                tmp = key.with_suffix(".part")
                with tmp.open("wb") as f:
                    for chunk in resp.iter_content(1 << 20):
                        f.write(chunk)
            tmp.rename(key)
            self.fetched.append(path)
            return key


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder every user may enter (pytest's own tmp folders are 0700), removed at the end."""
    folder = Path(tempfile.mkdtemp(prefix="ocibuild-rootless-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def site(shared: Path) -> Path:
    dest = shared / "site"
    _copy_site(dest)
    for p in (dest, *dest.rglob("*")):
        p.chmod(p.stat().st_mode | stat.S_IRGRP | stat.S_IROTH | (0o055 if p.is_dir() else 0))
    assert os.access(dest / "bin" / "uv", os.X_OK)
    return dest


@pytest.fixture(scope="module")
def mirror(shared: Path) -> Iterator[_CacheServer]:
    folder = shared / "mirror-cache"
    folder.mkdir()
    server = _CacheServer(apt_mirror(), folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stop()
    thread.join(10)


def _home(parent: Path, owner: int) -> dict[str, Path]:
    """HOME, the ocibuild cache, TMPDIR and the outputs' folder of one user, owned by ``owner``."""
    dirs = {name: parent / name for name in ("home", "cache", "tmp", "out")}
    for d in (parent, *dirs.values()):
        d.mkdir()
        os.chown(d, owner, owner)
        d.chmod(0o700)
    return dirs


def _project(dest: Path, mirror_url: str, owner: int) -> Path:
    dest.mkdir()
    (dest / "app.py").write_text("import six\nprint('six', six.__version__)\n")
    (dest / "requirements.txt").write_text("six==1.17.0\n")
    (dest / "ocibuild.toml").write_text(
        'entrypoint = ["/opt/venv/bin/python", "/app/app.py"]\n'
        "[base.debian]\n"
        'suite = "trixie"\n'
        'packages = ["python3"]\n'
        f'architectures = ["{host_arch()}"]\n'
        f'mirror = "{mirror_url}"\n'
        "[python]\n"
        'requirements = "requirements.txt"\n'
        "[[layers]]\n"
        'src = "app.py"\n'
        'dest = "/app/app.py"\n')
    for p in (dest, *dest.iterdir()):
        os.chown(p, owner, owner)
    return dest


def _env(site: Path, dirs: dict[str, Path]) -> dict[str, str]:
    env = {k: os.environ[k] for k in NETWORK_VARS if k in os.environ}
    if any("PROXY" in k.upper() for k in env):
        env["NO_PROXY"] = env["no_proxy"] = ",".join(filter(None, ["127.0.0.1", "localhost", env.get("NO_PROXY")]))
    return {**env, "PATH": f"{site / 'bin'}:/usr/local/bin:/usr/bin:/bin", "HOME": str(dirs["home"]),
            "TMPDIR": str(dirs["tmp"]), "OCIBUILD_CACHE": str(dirs["cache"]), "LANG": "C.UTF-8",
            "PYTHONPATH": f"{site}:{REPO}", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "SOURCE_DATE_EPOCH": "1700000000"}


def _run(prefix: list[str], args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, SYSTEM_PYTHON, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=1500)


def test_unprivileged_build_and_push_equal_the_root_build(shared: Path, site: Path, mirror: _CacheServer,
                                                          plain_registry: Registry) -> None:
    repo = f"rootless-{uuid.uuid4().hex[:8]}/app"
    user = _home(shared / "nobody", NOBODY)
    root = _home(shared / "root", 0)
    user_env, root_env = _env(site, user), _env(site, root)

    # the unprivileged process really is: uid/gid 65534, no groups, no capabilities, /root out of reach
    probe = _run(SETPRIV, ["-c", "import os; print(os.getuid(), os.getgid(), os.getgroups(), "
                                 "[ln for ln in open('/proc/self/status') if ln.startswith('CapEff')][0].split()[1], "
                                 "os.access('/root', os.R_OK))"], user_env, user["home"])
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["65534", "65534", "[]", "0000000000000000", "False"], probe.stdout

    user_proj = _project(user["home"] / "proj", mirror.url, NOBODY)
    root_proj = _project(root["home"] / "proj", mirror.url, 0)
    layout = user["out"] / "layout"

    as_root = _run([], ["-m", "ocibuild", "build", str(root_proj), "--json", "--output",
                        plain_registry.ref(f"{repo}:root")], root_env, root["home"])
    assert as_root.returncode == 0, as_root.stderr
    downloaded = len(mirror.fetched)
    assert downloaded > 3  # Release, Packages, the .deb files: fetched by the root build, kept for the user

    as_user = _run(SETPRIV, ["-m", "ocibuild", "build", str(user_proj), "--json", "--output",
                             plain_registry.ref(f"{repo}:user"), "--output", f"oci:{layout}:v1"],
                   user_env, user["home"])
    assert as_user.returncode == 0, as_user.stderr
    assert len(mirror.fetched) == downloaded  # the mirror cache served the user everything

    mine, theirs = json.loads(as_user.stdout), json.loads(as_root.stdout)
    assert mine["digest"] == theirs["digest"], (mine, theirs)
    assert mine["python"]["pins"] == ["six==1.17.0"]
    session = plain_registry.session()
    for tag in ("root", "user"):
        head = session.head(f"{plain_registry.url}/v2/{repo}/manifests/{tag}", timeout=30, headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"})
        assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == mine["digest"], tag

    # the layout and the cache are the unprivileged user's, and the layout is a valid image of that digest
    validate_layout(layout)
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in images_of_index(index)] == [mine["digest"]]
    for path in (layout, layout / "index.json", *(layout / "blobs" / "sha256").iterdir()):
        assert path.stat().st_uid == NOBODY, path
    assert all(p.lstat().st_uid == NOBODY for p in user["cache"].rglob("*")), "root-owned files in the user's cache"

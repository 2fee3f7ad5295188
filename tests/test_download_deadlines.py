"""Every download from a Debian mirror or a Python package index has a deadline: a server that drips,
stalls or never ends its body is cut off within a bound (the limits made small through the
``OCIBUILD_LOW_SPEED_TIME`` / ``OCIBUILD_TRANSFER_TIMEOUT`` variables or a ``TransferLimits``), with
one error line naming the URL; error bodies are never read, bodies are streamed with bounded memory.

The server is an in-process one on loopback: a real mirror or index cannot drip on purpose."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from harness.net import TLSThreadingServer, http_session

from ocibuild.debian.mirror import Fetcher
from ocibuild.errors import ConfigError, DigestMismatch, ResolutionError, SourceError
from ocibuild.python import fetch
from ocibuild.python.fetch import Candidate, candidates, stream
from ocibuild.python.resolve import IndexSettings, Pin
from ocibuild.store import ContentStore
from ocibuild.transfer import TransferLimits

SMALL = TransferLimits(connect_timeout=5, low_speed_limit=1024, low_speed_time=1.5, max_time=3)
SMALL_ENV = {"OCIBUILD_LOW_SPEED_TIME": "1.5", "OCIBUILD_TRANSFER_TIMEOUT": "3"}
BOUND = 15.0  # seconds: generous; without the deadlines every one of these transfers runs for minutes or forever


class _Hostile(BaseHTTPRequestHandler):
    """The first path segment chooses the fault: ``drip`` (1 byte / 0.25 s of a 100 kB body), ``chunked-drip``
    (the same as 1-byte chunks), ``stall`` (headers and 10 bytes, then silence), ``slow`` (4 kB/s: above the
    low-speed limit, but never done in time), ``error-forever`` (a 500 whose body never ends), ``flood``
    (an endless body as fast as it goes), ``unavailable`` (503 at once); anything else: 404."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        fault = self.path.lstrip("/").split("/", 1)[0]
        with contextlib.suppress(OSError):  # the client went away: what a deadline does
            self._serve(fault)

    def _send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.server.sent += len(data)

    def _serve(self, fault: str) -> None:
        stop = self.server.stopping
        if fault in ("drip", "stall", "slow", "error-forever", "flood"):
            self.send_response(500 if fault == "error-forever" else 200)
            self.send_header("Content-Length", str(10 ** 12 if fault in ("error-forever", "flood") else 100_000))
            self.end_headers()
            if fault == "drip":
                while not stop.wait(0.25):
                    self._send(b"x")
            elif fault == "stall":
                self._send(b"x" * 10)
                stop.wait(120)
            elif fault == "slow":
                while not stop.wait(0.25):
                    self._send(b"x" * 1000)
            else:
                block = b"e" * 65536
                while not stop.is_set():
                    self._send(block)
        elif fault == "chunked-drip":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while not stop.wait(0.25):
                self._send(b"1\r\nx\r\n")
        elif fault == "unavailable":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


class _Server(TLSThreadingServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hostile, None)
        self.hits: list[str] = []
        self.sent = 0
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def hostile() -> Iterator[_Server]:
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.stopping.set()
    server.stop()
    thread.join(10)


def ocibuild(*args: str | Path, env: dict[str, str], cache: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    full = {**os.environ, **env, "OCIBUILD_CACHE": str(cache)}
    full = {k: v for k, v in full.items() if not k.endswith(("_proxy", "_PROXY"))}  # loopback, no proxy
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=300)
    return proc, time.monotonic() - start


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocibuild: error:")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def store_tmp_is_empty(cache: Path) -> bool:
    tmp = cache / "tmp"
    return not tmp.exists() or not any(tmp.iterdir())


# --- Debian mirror, through the command line --------------------------------------------------------


@pytest.mark.parametrize(("fault", "fragment"), [
    ("drip", "stalled (under 1024 bytes/s for 1.5 s"),
    ("chunked-drip", "stalled (under 1024 bytes/s for 1.5 s"),
    ("stall", "stalled"),
    ("slow", "did not finish within 3 s"),
])
def test_mirror_release_file_that_drips_is_cut_off(tmp_path: Path, hostile: _Server, fault: str,
                                                   fragment: str) -> None:
    """``ocibuild base debian --mirror URL`` whose InRelease drips, stalls or crawls: one error line naming
    the file, within the bound, no output, nothing left in the store's tmp."""
    out = tmp_path / "base"
    proc, took = ocibuild("base", "debian", "--suite", "trixie", "--packages", "python3", "--platform",
                          "linux/amd64", "--mirror", f"{hostile.url}/{fault}/debian", "--output", f"oci:{out}:t",
                          env=SMALL_ENV, cache=tmp_path / "cache")
    line = one_error_line(proc)
    assert f"GET {hostile.url}/{fault}/debian/dists/trixie/InRelease: the transfer " in line, line
    assert fragment in line, line
    assert took < BOUND, took
    assert hostile.hits == [f"/{fault}/debian/dists/trixie/InRelease"]  # no retry storm, no fallback
    assert not out.exists()
    assert store_tmp_is_empty(tmp_path / "cache")


def test_mirror_error_body_is_not_read(tmp_path: Path, hostile: _Server) -> None:
    """A 500 whose body never ends: the status is the error, the body is left unread."""
    out = tmp_path / "base"
    proc, took = ocibuild("base", "debian", "--suite", "trixie", "--packages", "python3", "--platform",
                          "linux/amd64", "--mirror", f"{hostile.url}/error-forever/debian", "--output",
                          f"oci:{out}:t", env=SMALL_ENV, cache=tmp_path / "cache")
    line = one_error_line(proc)
    assert f"GET {hostile.url}/error-forever/debian/dists/trixie/InRelease failed: HTTP 500" in line, line
    assert took < BOUND and not out.exists()


def test_bad_limit_variable_is_one_error_line(tmp_path: Path, hostile: _Server) -> None:
    proc, _ = ocibuild("base", "debian", "--mirror", f"{hostile.url}/drip/debian", "--platform", "linux/amd64",
                       "--output", f"oci:{tmp_path / 'b'}:t", env={"OCIBUILD_LOW_SPEED_TIME": "soon"},
                       cache=tmp_path / "cache")
    assert "OCIBUILD_LOW_SPEED_TIME='soon' is not a positive number" in one_error_line(proc)
    assert hostile.hits == []


def test_mirror_download_longer_than_its_signed_size_stops_there(tmp_path: Path, hostile: _Server) -> None:
    """A .deb that never ends (at full speed, so no deadline helps): refused at its signed size + 1
    byte, nothing kept in the store."""
    store = ContentStore(tmp_path / "store")
    fetcher = Fetcher(f"{hostile.url}/flood/debian", limits=SMALL)
    start = time.monotonic()
    with pytest.raises(DigestMismatch, match=r"flood/debian/pool/main/p/p\.deb is larger than the 5000 bytes"):
        fetcher.download("pool/main/p/p.deb", store, hashlib.sha256(b"").hexdigest(), 5000)
    assert time.monotonic() - start < BOUND
    assert store_tmp_is_empty(store.root)


def test_mirror_read_is_bounded_in_memory(hostile: _Server) -> None:
    """``Fetcher.read`` of an endless body keeps at most ``limit`` + 1 bytes, then refuses."""
    fetcher = Fetcher(f"{hostile.url}/flood/debian", limits=SMALL)
    with pytest.raises(SourceError, match=r"flood/debian/dists/x/InRelease is larger than 1000000 bytes"):
        fetcher.read("dists/x/InRelease", limit=1_000_000)


# --- Python package downloads (the library path: a build would need a Python base first) ---------------

PIN = Pin(name="six", version="1.17.0")
WHEEL = "six-1.17.0-py2.py3-none-any.whl"


@pytest.mark.parametrize(("fault", "fragment"), [
    ("drip", "stalled (under 1024 bytes/s for 1.5 s"),
    ("chunked-drip", "stalled"),
    ("stall", "stalled"),
    ("slow", "did not finish within 3 s"),
])
def test_wheel_download_that_drips_is_cut_off(hostile: _Server, fault: str, fragment: str) -> None:
    got = bytearray()
    start = time.monotonic()
    with pytest.raises(ResolutionError) as err:
        stream(Candidate(filename=WHEEL, url=f"{hostile.url}/{fault}/files/{WHEEL}"), http_session(),
               got.extend, limits=SMALL)
    message = str(err.value)
    assert message.startswith(f"downloading {WHEEL} from {hostile.url}/{fault}/files/{WHEEL}: the transfer ")
    assert fragment in message and "\n" not in message
    assert time.monotonic() - start < BOUND
    assert len(hostile.hits) == 1  # a download that has started is not retried


def test_wheel_retries_end_within_the_deadline(hostile: _Server) -> None:
    """503 every time: retried with back-off, but the pauses count against the same deadline."""
    start = time.monotonic()
    with pytest.raises(ResolutionError, match=f"downloading {WHEEL} failed: HTTPError"):
        stream(Candidate(filename=WHEEL, url=f"{hostile.url}/unavailable/{WHEEL}"), http_session(),
               lambda _: None, limits=TransferLimits(low_speed_time=1, max_time=1.2))
    assert time.monotonic() - start < 1.2 + 1.0
    assert 1 <= len(hostile.hits) < 4  # the 2 s pause before the fourth try would pass the deadline


def test_index_page_that_drips_is_a_clear_error(hostile: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """The simple-API page of the pin drips: the source counts as not answering, with why."""
    for var, value in SMALL_ENV.items():
        monkeypatch.setenv(var, value)
    index = IndexSettings(index_url=f"{hostile.url}/drip/simple")
    start = time.monotonic()
    with pytest.raises(ResolutionError) as err:
        candidates(PIN, index, http_session())
    message = str(err.value)
    assert message.startswith("cannot fetch six==1.17.0: no package source answered (GET "
                              f"{hostile.url}/drip/simple/six/: the transfer stalled"), message
    assert time.monotonic() - start < BOUND


def test_index_error_body_is_not_read(hostile: _Server) -> None:
    index = IndexSettings(index_url=f"{hostile.url}/error-forever/simple")
    start = time.monotonic()
    with pytest.raises(ResolutionError, match=r"no package source answered \(http://127\.0\.0\.1:\d+/error-forever/"
                                              r"simple: HTTPError\)"):
        candidates(PIN, index, http_session())
    assert time.monotonic() - start < BOUND


def test_index_page_is_bounded_in_memory(hostile: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "PAGE_LIMIT", 2_000_000)
    index = IndexSettings(index_url=f"{hostile.url}/flood/simple")
    with pytest.raises(ResolutionError, match="flood/simple/six/: the response is larger than 2000000 bytes"):
        candidates(PIN, index, http_session())


def test_credentials_in_an_index_url_stay_out_of_messages(hostile: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in SMALL_ENV.items():
        monkeypatch.setenv(var, value)
    index = IndexSettings(index_url=f"http://user:s3cret@127.0.0.1:{hostile.server_address[1]}/drip/simple")
    with pytest.raises(ResolutionError) as err:
        candidates(PIN, index, http_session())
    assert "stalled" in str(err.value) and "s3cret" not in str(err.value) and "user" not in str(err.value)


def test_limits_from_the_environment() -> None:
    assert TransferLimits.from_env({}) == TransferLimits()
    limits = TransferLimits.from_env({"OCIBUILD_LOW_SPEED_LIMIT": "512", "OCIBUILD_LOW_SPEED_TIME": "30",
                                      "OCIBUILD_TRANSFER_TIMEOUT": "600"})
    assert (limits.low_speed_limit, limits.low_speed_time, limits.max_time) == (512, 30.0, 600.0)
    assert TransferLimits().bound(64 << 20) == 120 + 1024  # a 64 MiB file: 120 s + 1 s per 64 KiB
    for bad in ("0", "-1", "inf", "nan", "x"):
        with pytest.raises(ConfigError, match="OCIBUILD_TRANSFER_TIMEOUT"):
            TransferLimits.from_env({"OCIBUILD_TRANSFER_TIMEOUT": bad})

"""``ocibuild dev --run``: run each new image of a dev session with podman.

After each published build the old container is stopped (``podman stop``: the image's stop signal,
SIGTERM by default, then SIGKILL after ``stop_timeout`` seconds) and removed, and a new one started detached from
the image just published, by digest: from the registry output (``docker://REPO@sha256:...``; plain
HTTP and unverified TLS only for a loopback registry or one named with ``--insecure-registry``), or
from the ``oci:`` layout output. podman copies only the layers it does not have yet. The image's
exposed ports are published on the same host ports (or as ``publish`` says). The container's output is streamed with a
prefix (``podman logs -f``). Nothing outlives the session: on exit the container is stopped and
removed and the log reader ends.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .errors import ConfigError, OcibuildError
from .image import Image
from .registry.tls import is_loopback
from .spec import Reference
from .transports import Location, OciLayout, Registry, parse_location

__all__ = ["ContainerRunner", "RunError", "run_reference"]

STOP_TIMEOUT = 10
PODMAN_TIMEOUT = 600.0


class RunError(OcibuildError):
    """podman could not start or stop the dev container."""


def run_reference(outputs: Sequence[str], digest: str) -> str | None:
    """What podman runs for the image ``digest`` written to ``outputs`` (a registry first, else an
    ``oci:`` layout); None if no output can be run from."""
    locations: list[Location] = [parse_location(o) for o in outputs]
    for loc in locations:
        if isinstance(loc, Registry):
            ref = loc.reference
            return f"docker://{Reference(registry=ref.registry, repository=ref.repository, digest=digest)}"
    for loc in locations:
        if isinstance(loc, OciLayout) and loc.tag:
            return f"oci:{loc.path.absolute()}:{loc.tag}"
    return None


@dataclass(kw_only=True)
class ContainerRunner:
    """Keeps one container of the dev session running (see the module docstring). ``args`` go after
    the image (the container's arguments); ``insecure`` names registries podman may reach without
    verified TLS; ``out`` gets the container's output, each line behind ``prefix``."""

    args: Sequence[str] = ()
    insecure: Sequence[str] = ()
    prefix: str = "app | "
    stop_timeout: int = STOP_TIMEOUT
    out: TextIO = field(default_factory=lambda: sys.stderr)
    podman: str = "podman"
    on_note: Callable[[str], None] = lambda _: None
    publish: Sequence[str] = ()
    name: str | None = None
    _logs: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self) -> None:
        """``ConfigError`` now if podman is missing."""
        if shutil.which(self.podman) is None:
            raise ConfigError("--run needs podman, which is not installed; install it (apt-get install podman) "
                              "or leave out --run")

    def _podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:  # in a session of its own: a Ctrl-C meant for ocibuild does not cut podman short
            proc = subprocess.run([self.podman, *args], capture_output=True, text=True, timeout=PODMAN_TIMEOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            raise RunError(f"podman {args[0]} did not finish within {PODMAN_TIMEOUT:.0f} s") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise RunError(f"podman {args[0]} failed: {detail}")
        return proc

    def replace(self, reference: str, image: Image) -> float:
        """Stop the running container (if any) and start ``reference`` (whose host-platform image is
        ``image``); returns the wall-clock time the new container was started."""
        with self._lock:
            self._stop()
            tls = []
            if reference.startswith("docker://"):
                host = Reference.parse(reference.removeprefix("docker://")).api_host
                if is_loopback(host) or host in self.insecure:
                    tls = ["--tls-verify=false"]
            ports = [arg for mapping in self.publish for arg in ("-p", mapping)]
            for port in [] if self.publish else sorted(image.config.config.exposed_ports):
                number, _, proto = port.partition("/")
                ports += ["-p", f"{number}:{number}" + (f"/{proto}" if proto and proto != "tcp" else "")]
            name = f"ocibuild-dev-{uuid.uuid4().hex[:12]}"
            self.name = name  # known before it exists: an interrupted start is still cleaned up
            # no --rm: a container that exits at once keeps its output for the log reader; _stop removes it
            self._podman("run", "-d", "--name", name, *tls, *ports, reference, *self.args)
            started = time.time()
            self._logs = subprocess.Popen([self.podman, "logs", "-f", name], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
            self._reader = threading.Thread(target=self._stream, args=(self._logs,), daemon=True,
                                            name="ocibuild-dev-logs")
            self._reader.start()
            return started

    def _stream(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.out.write(f"{self.prefix}{line}\n")
            self.out.flush()

    def _stop(self) -> None:
        name, logs, reader = self.name, self._logs, self._reader
        self._logs, self._reader = None, None
        if name is not None:
            self._podman("stop", "--ignore", "-t", str(self.stop_timeout), name, check=False)
            self._podman("rm", "-f", "--ignore", name, check=False)
            self.name = None  # only once it is gone (a second Ctrl-C during the stop still finds it)
        if logs is not None:
            try:
                logs.wait(timeout=10)
            except subprocess.TimeoutExpired:
                logs.kill()
                logs.wait()
        if reader is not None:
            reader.join(timeout=5)

    def stop(self) -> None:
        """Stop and remove the container, end the log reader."""
        with self._lock:
            self._stop()

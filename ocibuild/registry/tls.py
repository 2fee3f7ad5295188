"""Per-registry transport settings: which scheme, which CA bundle, which client certificate.

- HTTPS with verification by default.
- Extra CAs and client certificates per host from ``/etc/containers/certs.d/HOST/`` and
  ``/etc/docker/certs.d/HOST/`` (``*.crt`` CAs, ``*.cert`` + ``*.key`` client pairs), plus ``--ca-file``.
- ``--insecure-registry HOST``: HTTPS without verification, falling back to plain HTTP.
- ``localhost`` / ``127.0.0.0/8`` / ``::1``: HTTPS (verified), falling back to plain HTTP when the
  server does not speak TLS (docker treats these as insecure; we still verify a certificate when one
  is offered, so a test CA is really checked).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests
import requests.utils

CERTS_DIRS = (Path("/etc/containers/certs.d"), Path("/etc/docker/certs.d"))


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` names this machine (``localhost``, ``127.0.0.0/8``, ``[::1]``)."""
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    name = name.lower().rstrip(".")
    return name in ("localhost", "[::1]") or name.startswith("127.")


@dataclass(frozen=True, kw_only=True, slots=True)
class TLSConfig:
    """TLS choices for all registries of one client."""

    insecure_registries: tuple[str, ...] = ()
    ca_files: tuple[Path, ...] = ()
    certs_dirs: tuple[Path, ...] = CERTS_DIRS
    _bundles: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    def insecure(self, host: str) -> bool:
        return host in self.insecure_registries or host.split(":")[0] in self.insecure_registries

    def may_use_http(self, host: str) -> bool:
        return self.insecure(host) or is_loopback(host)

    def _host_files(self, host: str) -> tuple[list[Path], list[tuple[str, str]]]:
        cas: list[Path] = list(self.ca_files)
        clients: list[tuple[str, str]] = []
        for root in self.certs_dirs:
            d = root / host
            if not d.is_dir():
                continue
            cas += sorted(d.glob("*.crt"))
            for cert in sorted(d.glob("*.cert")):
                key = cert.with_suffix(".key")
                if key.is_file():
                    clients.append((str(cert), str(key)))
        return cas, clients

    def verify(self, host: str) -> bool | str:
        """``requests``' ``verify=``: False for insecure hosts, a bundle path when extra CAs apply."""
        if self.insecure(host):
            return False
        cas, _ = self._host_files(host)
        if not cas:
            return True
        key = hashlib.sha256("\0".join(str(p) for p in cas).encode()).hexdigest()[:16]
        if key not in self._bundles:
            self._bundles[key] = _bundle(cas)
        return self._bundles[key]

    def client_cert(self, host: str) -> tuple[str, str] | None:
        _, clients = self._host_files(host)
        return clients[0] if clients else None


def _bundle(cas: Sequence[Path]) -> str:
    """The default CA bundle plus ``cas`` in one PEM file (requests takes a single path); removed at exit."""
    env = os.environ
    default = env.get("REQUESTS_CA_BUNDLE") or env.get("SSL_CERT_FILE") or requests.utils.DEFAULT_CA_BUNDLE_PATH
    parts = [Path(default).read_bytes()]
    for ca in cas:
        parts.append(ca.read_bytes())
    with tempfile.NamedTemporaryFile("wb", prefix="ocibuild-ca-", suffix=".pem", delete=False) as f:
        f.write(b"\n".join(parts))
    atexit.register(_remove, f.name)
    return f.name


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)

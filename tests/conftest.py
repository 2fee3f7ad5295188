"""Shared fixtures for the ocibuild test suite.

``tests/`` is NOT a package: this conftest puts the ``tests/`` folder on sys.path so test modules can
``from tools import ...``. Nothing here imports ``ocibuild``; the helpers in tools.py are independent of it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from tools import make_busybox_layout, make_debian_python_layout, podman_env  # noqa: E402


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layout (session tmp dir) with the amd64 busybox-static image tagged ``busybox``."""
    return make_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout", "busybox", "amd64")


@pytest.fixture(scope="session")
def busybox_arm64_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layout with the arm64 busybox-static image tagged ``busybox`` (run it via qemu binfmt)."""
    return make_busybox_layout(tmp_path_factory.mktemp("busybox-arm64") / "layout", "busybox", "arm64")


@pytest.fixture(scope="session")
def debian_python_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OCI layout with Debian bookworm minbase + python3 + ca-certificates (amd64) tagged ``bookworm-py``.
    First build ~25-40 s, then cached in $OCIBUILD_TEST_CACHE (default /var/cache/ocibuild-test)."""
    dest = tmp_path_factory.mktemp("bookworm-py") / "layout"
    return make_debian_python_layout(dest, "bookworm-py", "amd64")


@pytest.fixture(scope="session")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment dict for running ``podman`` with test-local config and vfs storage (session-scoped).
    Use as ``subprocess.run(["podman", ...], env=podman)`` or ``tools.podman(podman, ...)``."""
    env = podman_env(tmp_path_factory.mktemp("podman"))
    yield env
    # free the (vfs = full copy per layer) storage; best effort
    subprocess.run(["podman", "system", "reset", "--force"], env=env, capture_output=True, check=False,
                   timeout=300)


# ---------------------------------------------------------------------------------------------------
# registries (tests/registry_tools.py): real distribution 2.8.2 processes on 127.0.0.1, never skipped
# ---------------------------------------------------------------------------------------------------

from registry_tools import (  # noqa: E402
    PKI,
    FaultProxy,
    Registry,
    RegistryFactory,
    TokenServer,
    make_pki,
    start_plain,
    start_tls_basic,
    start_token,
)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    """Test CA + server cert (127.0.0.1, localhost) + token-signing cert; ``pki.certs_dir`` for skopeo."""
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Session registry: plain HTTP, no auth, deletes enabled. Shared: use unique repo names and
    ``mark()`` / ``requests_since()`` to look at your own requests only."""
    reg = start_plain(tmp_path_factory.mktemp("reg-plain"))
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[Registry]:
    """Session registry: HTTPS (``pki``) + htpasswd basic auth ``testuser``/``testpass``."""
    reg = start_tls_basic(tmp_path_factory.mktemp("reg-tls"), pki)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[tuple[Registry, TokenServer]]:
    """Session registry: HTTPS + bearer tokens from an in-process TokenServer (testuser/testpass: all
    actions; anonymous: pull). Yields ``(registry, token_server)``."""
    reg, ts = start_token(tmp_path_factory.mktemp("reg-token"), pki)
    yield reg, ts
    reg.stop()
    ts.stop()


@pytest.fixture
def registry_factory(tmp_path: Path, pki: PKI) -> Iterator[RegistryFactory]:
    """Function-scoped: ``registry_factory(kind)`` starts a fresh ``plain``/``tls``/``token`` registry
    (kill/restart it freely), ``registry_factory.proxy(reg)`` a FaultProxy; all stopped at teardown."""
    factory = RegistryFactory(tmp_path / "registries", pki)
    yield factory
    factory.close()


@pytest.fixture
def fault_proxy(registry_factory: RegistryFactory) -> FaultProxy:
    """Function-scoped FaultProxy in front of a fresh plain registry (``fault_proxy.registry``)."""
    return registry_factory.proxy(registry_factory("plain"))

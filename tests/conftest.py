"""Shared fixtures for the ocibuild test suite.

``tests/`` is NOT a package: this conftest puts the ``tests/`` folder on sys.path so test modules can
``from harness.validate import ...`` (``tests/harness/`` is a package; pytest collects only ``test_*.py``).
Nothing here imports ``ocibuild``; the harness is independent of it.

Every test that uses ``tmp_path`` has each OCI layout / OCI archive / docker archive it wrote there
validated at teardown (:func:`_conformance`); a test that writes broken images on purpose opts out with
``@pytest.mark.no_conformance(reason=...)``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from harness.bases import make_busybox_layout, make_debian_python_layout  # noqa: E402
from harness.runtime import podman as run_podman  # noqa: E402
from harness.runtime import podman_env  # noqa: E402
from harness.validate import find_outputs, validate_output  # noqa: E402

# ---------------------------------------------------------------------------------------------------
# conformance: every image a test writes under tmp_path is checked by harness.validate
# ---------------------------------------------------------------------------------------------------

_CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                          pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


@pytest.fixture(autouse=True)
def _conformance(request: pytest.FixtureRequest) -> Iterator[None]:
    """At teardown, validate every OCI layout, OCI archive and docker archive the test wrote under its
    ``tmp_path`` (content stores skipped). Not for tests that did not use tmp_path, failed, or carry
    ``@pytest.mark.no_conformance``."""
    yield
    tmp = getattr(request.node, "funcargs", {}).get("tmp_path")
    report = request.node.stash.get(_CALL_REPORT, None)
    if tmp is None or report is None or not report.passed or request.node.get_closest_marker("no_conformance"):
        return
    problems = []
    for out in find_outputs(tmp):
        try:
            validate_output(out)
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("non-conformant output written by this test (mark it no_conformance if that is the "
                    "point of the test):\n" + "\n".join(problems), pytrace=False)


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
def debian_arm64_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Debian bookworm + python3 for arm64 (mmdebstrap under qemu-user; cached like the amd64 one)."""
    return make_debian_python_layout(tmp_path_factory.mktemp("bookworm-arm64") / "layout", "bookworm-py", "arm64")


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Environment dict for running ``podman`` with test-local config and vfs storage (module-scoped: vfs
    keeps a full copy per layer, so each module's images are removed when the module ends).
    Use as ``subprocess.run(["podman", ...], env=podman)`` or ``harness.runtime.podman(podman, ...)``."""
    root = tmp_path_factory.mktemp("podman")
    env = podman_env(root)
    yield env
    # free the (vfs = full copy per layer) storage; best effort
    run_podman(env, "system", "reset", "--force", check=False)
    shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# registries (tests/harness/registry.py): real distribution 2.8.2 processes on 127.0.0.1, never skipped
# ---------------------------------------------------------------------------------------------------

from harness.pki import PKI, make_pki  # noqa: E402
from harness.proxy import FaultProxy  # noqa: E402
from harness.registry import Registry, RegistryFactory, start_plain, start_tls_basic, start_token  # noqa: E402
from harness.tokens import TokenServer  # noqa: E402


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

"""Hostile and faulty registries (issue 12): credentials stay with their origin, every transfer has a
deadline, big or endless answers are refused with bounded memory, what the registry reports after a
push is checked, and every such fault is one clean error line.

The servers are in-process ones on loopback (``harness.hostile``): a real registry cannot send an
upload to another origin, drip a blob or lie about a digest. A forward proxy gives them non-loopback
names where the rules depend on it. The real-registry round trips are in test_registry.py.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness.credentials import docker_config
from harness.hostile import (
    ForwardProxy,
    HostileRegistry,
    Measured,
    RegistryHandler,
    Store,
    TinyImage,
    accept_client_certs,
    endless_json,
    issue_client_cert,
    issue_server_context,
    run_measured,
    sha256,
    tiny_image,
    zeros,
)
from harness.pki import PKI

from ocibuild.errors import ConfigError, DigestMismatch, RegistryError
from ocibuild.registry import RegistryClient, Repository, RetryPolicy, StaticCredentials, TLSConfig
from ocibuild.registry.auth import Credentials
from ocibuild.registry.transport import Transport, origin
from ocibuild.spec import Descriptor, Digest, Reference
from ocibuild.store import ContentStore

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
USER = "alice"
SECRET = "s3cret-Pa55w0rd"
BASIC = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
TOKEN = "hostile-token"
BASE = "base/img"
# small deadlines: without them every one of the faults below runs for minutes or forever
FAST = {"OCIBUILD_LOW_SPEED_LIMIT": "1000", "OCIBUILD_LOW_SPEED_TIME": "2", "OCIBUILD_TRANSFER_TIMEOUT": "4"}
STALL = {**FAST, "OCIBUILD_TRANSFER_TIMEOUT": "20"}  # the low-speed rule acts, well before the total bound
BOUND = 30.0  # seconds: generous against the ~2-6 s the small deadlines give
MAX_RSS = 100 << 20


# --- helpers ------------------------------------------------------------------------------------------

def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    """No host credentials or proxies leak in; a private cache."""
    drop = {"REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "OCIBUILD_REGISTRY_USERNAME", "OCIBUILD_REGISTRY_PASSWORD",
            "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
            "all_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", *FAST}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"DOCKER_CONFIG": str(tmp / "docker-config"), "XDG_CONFIG_HOME": str(tmp / "xdg"),
                "OCIBUILD_CACHE": str(tmp / "cache"), "SOURCE_DATE_EPOCH": "1700000000"})
    env.update(extra)
    return env


def ocibuild(*args: str | Path, env: dict[str, str], timeout: float = 120) -> Measured:
    return run_measured([sys.executable, "-m", "ocibuild", *map(str, args)], env=env, timeout=timeout)


def ok(m: Measured) -> None:
    assert m.returncode == 0 and not m.timed_out, m.stderr
    assert SECRET not in m.stdout + m.stderr and BASIC not in m.stdout + m.stderr


def one_error(m: Measured, *fragments: str) -> str:
    """Exit 1, exactly one ``ocibuild: error:`` line holding every fragment, no traceback, no secret."""
    assert not m.timed_out, f"still running after {m.seconds:.0f} s:\n{m.stderr}"
    assert m.returncode == 1, (m.returncode, m.stderr)
    lines = [line for line in m.stderr.splitlines() if line.startswith("ocibuild: error:")]
    assert len(lines) == 1, m.stderr
    assert "Traceback" not in m.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    for secret in (SECRET, BASIC, TOKEN):
        assert secret not in m.stdout + m.stderr
    return lines[0]


def nothing_left(tmp: Path, out: Path | None = None, cache: Path | None = None) -> None:
    """No output written, nothing half-written in the cache's tmp/."""
    if out is not None:
        assert not out.exists(), f"{out} was written"
    tmp_dir = (cache or tmp / "cache") / "tmp"
    assert not tmp_dir.exists() or not any(tmp_dir.iterdir()), list(tmp_dir.iterdir())


def no_credentials(server: HostileRegistry | ForwardProxy) -> None:
    """Not one header of any request ``server`` got carries our credentials or token."""
    records = server.requests_log()
    assert records, f"{server!r} got no request at all: the test did not test anything"
    for rec in records:
        for name, value in rec["headers"]:
            assert name.lower() != "authorization", (rec["method"], rec["path"], name)
            for secret in (SECRET, BASIC, TOKEN):
                assert secret not in value, (rec["method"], rec["path"], name)
        assert SECRET not in rec["path"] and BASIC not in rec["path"]


def got_credentials(server: HostileRegistry) -> bool:
    return any(name.lower() == "authorization" for name, _ in server.headers_seen())


@pytest.fixture
def image() -> TinyImage:
    return tiny_image()


@pytest.fixture
def servers() -> Iterator[list[HostileRegistry | ForwardProxy]]:
    """Servers a test starts; all stopped at teardown."""
    started: list[HostileRegistry | ForwardProxy] = []
    yield started
    for s in started:
        s.stop()


def start(servers: list[HostileRegistry | ForwardProxy], server: HostileRegistry) -> HostileRegistry:
    servers.append(server)
    return server


def with_bearer(reg: HostileRegistry) -> HostileRegistry:
    """Bearer challenges whose realm is the registry's own ``/token`` (same origin: credentials may go)."""
    reg.auth = "bearer"
    reg.realm = f"{reg.url}/token"
    reg.token_body = json.dumps({"token": TOKEN, "expires_in": 300}).encode()
    return reg


def pull(reg: HostileRegistry, tmp: Path, env: dict[str, str], *extra: str, creds: bool = True) -> Measured:
    """Build the hello project on ``REG/base/img:1`` into ``oci:TMP/out:v1`` (pulls the whole base),
    with ``--creds`` unless told otherwise."""
    flags = ["--creds", f"{USER}:{SECRET}"] if creds else []
    return ocibuild("build", HELLO, "--base", f"docker://{reg.host}/{BASE}:1", "--output", f"oci:{tmp / 'out'}:v1",
                    *flags, *extra, env=env)


def push(reg: HostileRegistry, env: dict[str, str], *extra: str) -> Measured:
    """Build the hello project (on scratch) and push it to ``REG/team/app:1``."""
    return ocibuild("build", HELLO, "--output", f"docker://{reg.host}/team/app:1", "--creds", f"{USER}:{SECRET}",
                    *extra, env=env)


# --- 1. credentials stay with their origin ------------------------------------------------------------

@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic-put", "chunked-patch"])
@pytest.mark.parametrize("auth", ["basic", "bearer"])
def test_upload_location_on_another_origin_gets_no_credentials(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], auth: str, chunked: bool) -> None:
    store = Store()
    other = start(servers, HostileRegistry(store=store))  # another port: another origin, logs every header
    other.refuse_monolithic = chunked  # 405 for a whole-blob PUT: ocibuild falls back to PATCH chunks
    reg = start(servers, HostileRegistry(auth="basic", user=USER, password=SECRET, store=store))
    if auth == "bearer":
        with_bearer(reg)
    reg.upload_origin = other.url

    m = push(reg, env_for(tmp_path))
    ok(m)
    assert other.count("PUT", r"/blobs/uploads/.*digest=") >= 2  # the app layer and the config went there
    if chunked:
        assert other.count("PATCH", r"/blobs/uploads/") >= 2
    no_credentials(other)
    assert got_credentials(reg)  # the registry itself did get them
    assert ("team/app", "1") in store.manifests


@pytest.mark.parametrize("status", [302, 303, 307, 308])
def test_blob_redirect_to_another_origin_gets_no_credentials(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], image: TinyImage, status: int) -> None:
    store = Store()
    store.add_image(BASE, "1", image)
    other = start(servers, HostileRegistry(store=store))
    reg = start(servers, with_bearer(HostileRegistry(auth="bearer", store=store)))
    reg.redirect_blobs, reg.redirect_status = other.url, status

    ok(pull(reg, tmp_path, env_for(tmp_path)))
    assert other.count("GET", image.layer_digest) == 1 and other.count("GET", image.config_digest) == 1
    no_credentials(other)
    assert got_credentials(reg)


def test_client_certificate_stays_with_its_origin(tmp_path: Path, servers: list[HostileRegistry | ForwardProxy],
                                                  pki: PKI, image: TinyImage) -> None:
    """The registry's certs.d client certificate is presented to the registry, not to the host its
    upload Location or blob redirect names (that host gets its own TLS settings)."""
    store = Store()
    store.add_image(BASE, "1", image)
    other = start(servers, HostileRegistry(
        ctx=accept_client_certs(issue_server_context(pki, tmp_path / "o", ["127.0.0.1"]), pki), store=store))
    reg = start(servers, HostileRegistry(
        ctx=accept_client_certs(issue_server_context(pki, tmp_path / "r", ["127.0.0.1"]), pki), store=store,
        auth="basic", user=USER, password=SECRET))
    reg.upload_origin = reg.redirect_blobs = other.url
    issue_client_cert(pki, tmp_path / "certs.d" / reg.host)
    client = RegistryClient(credentials=StaticCredentials(Credentials(username=USER, password=SECRET)),
                            tls=TLSConfig(ca_files=(pki.ca_cert,), certs_dirs=(tmp_path / "certs.d",)))

    repo = Repository(host=reg.host, name=BASE)
    raw, _, _ = client.get_manifest(Reference.parse(f"{reg.host}/{BASE}:1"))
    layer = json.loads(raw)["layers"][0]
    desc = Descriptor(media_type=layer["mediaType"], digest=Digest.parse(layer["digest"]), size=layer["size"])
    assert client.fetch_blob(repo, desc, ContentStore(tmp_path / "cache")) == "downloaded"
    data = b"pushed through another origin"
    pushed = Descriptor(media_type="application/octet-stream", digest=Digest.parse(sha256(data)), size=len(data))
    assert client.push_blob(Repository(host=reg.host, name="team/app"), pushed, lambda: io.BytesIO(data)) == "uploaded"

    assert all(r["client_cert"] for r in reg.requests_log())
    assert other.count("GET", image.layer_digest) == 1 and other.count("PUT", "/blobs/uploads/") == 1
    assert not any(r["client_cert"] for r in other.requests_log())
    no_credentials(other)


@pytest.mark.parametrize("creds", ["--creds", "docker-config"])
@pytest.mark.parametrize("realm", ["http://auth.test/token", "http://auth.test:8080/token?scope=x"])
def test_cleartext_token_realm_on_another_origin_is_refused(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], pki: PKI, image: TinyImage, realm: str, creds: str) -> None:
    """A TLS registry whose Bearer realm is plain http:// on another (non-loopback) host: the build
    fails naming the realm, and neither the realm server nor the proxy in front of it ever sees the
    password."""
    store = Store()
    store.add_image(BASE, "1", image)
    realm_server = start(servers, HostileRegistry())
    proxy = ForwardProxy({"auth.test:80": realm_server.port, "auth.test:8080": realm_server.port})
    servers.append(proxy)
    reg = start(servers, HostileRegistry(ctx=issue_server_context(pki, tmp_path / "r", ["127.0.0.1"]), store=store,
                                         auth="bearer", realm=realm))
    env = env_for(tmp_path, HTTP_PROXY=proxy.url(), HTTPS_PROXY=proxy.url(), NO_PROXY="127.0.0.1,localhost")
    if creds == "docker-config":
        docker_config(tmp_path / "docker-config", reg.host, USER, SECRET)

    m = pull(reg, tmp_path, env, "--ca-file", str(pki.ca_cert), creds=creds == "--creds")
    one_error(m, realm.split("?")[0], "refusing to send credentials", reg.host)
    nothing_left(tmp_path, tmp_path / "out")
    assert realm_server.requests_log() == [] and proxy.requests_log() == []


def test_https_realm_through_the_proxy_gets_the_credentials(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], pki: PKI, image: TinyImage) -> None:
    """The allowed case next to the refusal: an https:// realm on another host, reached through
    HTTPS_PROXY (a CONNECT tunnel), gets the Basic credentials and its token is used."""
    store = Store()
    store.add_image(BASE, "1", image)
    realm_server = start(servers, HostileRegistry(ctx=issue_server_context(pki, tmp_path / "a", ["auth.test"])))
    realm_server.token_body = json.dumps({"token": TOKEN}).encode()
    proxy = ForwardProxy({"auth.test:443": realm_server.port})
    servers.append(proxy)
    reg = start(servers, HostileRegistry(ctx=issue_server_context(pki, tmp_path / "r", ["127.0.0.1"]), store=store,
                                         auth="bearer", realm="https://auth.test/token"))
    env = env_for(tmp_path, HTTPS_PROXY=proxy.url(), NO_PROXY="127.0.0.1")

    ok(pull(reg, tmp_path, env, "--ca-file", str(pki.ca_cert)))
    assert [r["path"] for r in proxy.requests_log()] == ["auth.test:443"]
    assert ("Authorization", f"Basic {BASIC}") in realm_server.headers_seen()
    assert ("Authorization", f"Bearer {TOKEN}") in reg.headers_seen()


def test_https_proxy_is_honoured_and_its_credentials_never_show(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], pki: PKI, image: TinyImage) -> None:
    """A registry known only by a name the proxy resolves (HTTPS_PROXY with credentials): the pull
    goes through the proxy; with a wrong proxy password, one error line that shows neither password."""
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, HostileRegistry(ctx=issue_server_context(pki, tmp_path / "r", ["registry.test"]), store=store,
                                         auth="basic", user=USER, password=SECRET))
    proxy = ForwardProxy({"registry.test:443": reg.port}, auth=("puser", "pr0xy-Secret"))
    servers.append(proxy)
    ref = f"docker://registry.test/{BASE}:1"
    env = env_for(tmp_path, HTTPS_PROXY=proxy.url())

    ok(ocibuild("build", HELLO, "--base", ref, "--output", f"oci:{tmp_path / 'out'}:v1", "--creds",
                f"{USER}:{SECRET}", "--ca-file", pki.ca_cert, env=env))
    assert {r["method"] for r in proxy.requests_log()} == {"CONNECT"} and got_credentials(reg)

    env["HTTPS_PROXY"] = proxy.url(password="wr0ng-Pr0xy")
    m = ocibuild("build", HELLO, "--base", ref, "--output", f"oci:{tmp_path / 'out2'}:v1", "--ca-file", pki.ca_cert,
                 "--cache-dir", tmp_path / "cache2", env=env)
    one_error(m, "registry.test", "proxy")
    assert "pr0xy-Secret" not in m.stderr and "wr0ng-Pr0xy" not in m.stderr and "puser" not in m.stderr
    assert not (tmp_path / "out2").exists()


def test_http_proxy_carries_plain_http_only_to_an_insecure_registry(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], image: TinyImage) -> None:
    """A plain-HTTP registry known only as ``registry.test`` through HTTPS_PROXY / HTTP_PROXY: its TLS
    handshake fails, and without --insecure-registry that is the end (no request, no credentials in
    cleartext); with it, the pull goes over plain HTTP through HTTP_PROXY; and the deadlines still
    cut a blob that drips through the proxy."""
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, HostileRegistry(auth="basic", user=USER, password=SECRET, store=store))
    proxy = ForwardProxy({"registry.test:443": reg.port, "registry.test:80": reg.port})
    servers.append(proxy)
    env = env_for(tmp_path, HTTP_PROXY=proxy.url(), HTTPS_PROXY=proxy.url(), **STALL)

    def build(out: str, *extra: str) -> Measured:
        return ocibuild("build", HELLO, "--base", f"docker://registry.test/{BASE}:1", "--output",
                        f"oci:{tmp_path / out}:v1", "--creds", f"{USER}:{SECRET}", "--cache-dir",
                        tmp_path / "cache" / out, *extra, env=env)

    one_error(build("refused"), "registry.test", "TLS failed", "--insecure-registry")
    assert reg.requests_log() == [] and {r["method"] for r in proxy.requests_log()} == {"CONNECT"}
    nothing_left(tmp_path, tmp_path / "refused", tmp_path / "cache" / "refused")

    ok(build("insecure", "--insecure-registry", "registry.test"))
    assert proxy.count("GET", r"^http://registry\.test/v2/") >= 3 and got_credentials(reg)

    reg.on("GET", image.layer_digest, _drip_blob(image))
    m = build("drip", "--insecure-registry", "registry.test")
    one_error(m, "stalled")
    assert m.seconds < BOUND
    nothing_left(tmp_path, tmp_path / "drip", tmp_path / "cache" / "drip")


@pytest.mark.parametrize(("registry", "realm", "allowed"), [
    ("reg.example", "https://auth.example/token", True),
    ("reg.example", "http://auth.example/token", False),
    ("reg.example", "https://reg.example/token", True),
    ("reg.example:5000", "http://reg.example:5000/token", False),  # the registry speaks https here
    ("127.0.0.1:5000", "http://127.0.0.1:6000/token", True),  # loopback to loopback
    ("127.0.0.1:5000", "http://localhost:6000/token", True),
    ("127.0.0.1:5000", "http://auth.example/token", False),
    ("reg.example", "http://127.0.0.1/token", False),
    ("reg.example", "ftp://auth.example/token", False),
    ("reg.example", "http://[::1/token", False),
    ("reg.example", "/token", False),
])
def test_which_token_realms_may_get_credentials(registry: str, realm: str, allowed: bool) -> None:
    transport = Transport(credentials=StaticCredentials(Credentials(username=USER, password=SECRET)))
    assert transport._realm_may_get_credentials(registry, realm) is allowed


@pytest.mark.parametrize(("a", "b", "same"), [
    ("https://r.example/v2/", "https://r.example:443/upload", True),
    ("https://r.example/v2/", "http://r.example/upload", False),
    ("https://r.example/v2/", "https://r.example:8443/upload", False),
    ("https://r.example/v2/", "https://R.EXAMPLE/x", True),
    ("https://r.example/v2/", "https://s3.example/x", False),
    ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5001/x", False),
])
def test_origins(a: str, b: str, same: bool) -> None:
    assert (origin(a) == origin(b)) is same
    assert origin("ftp://x/") is None and origin("http://[::1") is None and origin("/relative") is None


# --- 2. deadlines --------------------------------------------------------------------------------------

def _drip_blob(image: TinyImage) -> Callable[[RegistryHandler], None]:
    def answer(h: RegistryHandler) -> None:
        data = image.blobs[image.layer_digest]
        h.stream(h.drip(data, 1.0), length=len(data))  # 1 byte/s: ~3 minutes for this layer without a deadline
    return answer


def _drip_manifest(image: TinyImage) -> Callable[[RegistryHandler], None]:
    def answer(h: RegistryHandler) -> None:
        h.stream(h.drip(image.manifest, 1.0), length=len(image.manifest), content_type=image.media_type)
    return answer


def _drip_headers(image: TinyImage) -> Callable[[RegistryHandler], None]:
    def answer(h: RegistryHandler) -> None:
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: {image.media_type}\r\nContent-Length: {len(image.manifest)}\r\n"
                + "X-Padding: " + "p" * 400 + "\r\n\r\n").encode()
        h.raw_drip(head + image.manifest, 0.5)
    return answer


def _steady_but_slow(h: RegistryHandler) -> None:
    """3000 bytes/s: above the low-speed limit, but 3 MB take a quarter of an hour."""
    blocks = (b"x" * 600 for _ in range(5_000))
    h.stream((b for b in blocks if not h.reg.stopping.wait(0.2)), length=3_000_000,
             content_type="application/vnd.oci.image.manifest.v1+json")


def _silent(h: RegistryHandler) -> None:
    h.body()
    h.hold(600)


@pytest.mark.parametrize(("what", "method", "path", "answer", "fragment"), [
    ("blob drips", "GET", "/blobs/{layer}", _drip_blob, "stalled"),
    ("manifest drips", "GET", "/manifests/1", _drip_manifest, "stalled"),
    ("headers drip", "GET", "/manifests/1", _drip_headers, "stalled"),
    ("steady but too slow", "GET", "/manifests/1", lambda image: _steady_but_slow, "not done within"),
    ("manifest never answered", "GET", "/manifests/1", lambda image: _silent, "not done within"),
    ("config never answered", "GET", "/blobs/{config}", lambda image: _silent, "not done within"),
    ("token never answered", "GET", "/token", lambda image: _silent, "not done within"),
])
def test_slow_or_silent_pulls_end_within_the_deadline(tmp_path: Path, servers: list[HostileRegistry | ForwardProxy],
                                                      image: TinyImage, what: str, method: str, path: str,
                                                      answer: Callable[[TinyImage], Callable[[RegistryHandler], None]],
                                                      fragment: str) -> None:
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, with_bearer(HostileRegistry(auth="bearer", store=store)))
    rx = path.format(layer=image.layer_digest, config=image.config_digest)
    reg.on(method, rx, answer(image), auth_first=path != "/token")

    m = pull(reg, tmp_path, env_for(tmp_path, **(STALL if fragment == "stalled" else FAST)))
    one_error(m, fragment, "OCIBUILD_")
    assert m.seconds < BOUND, (what, m.seconds)
    nothing_left(tmp_path, tmp_path / "out")


@pytest.mark.parametrize("where", ["blob upload", "manifest push", "upload start"])
def test_silent_registry_during_a_push_ends_within_the_deadline(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], where: str) -> None:
    reg = start(servers, HostileRegistry(auth="basic", user=USER, password=SECRET))
    method, rx = {"blob upload": ("PUT", r"/blobs/uploads/.+digest="), "manifest push": ("PUT", "/manifests/"),
                  "upload start": ("POST", "/blobs/uploads/")}[where]
    reg.on(method, rx, _silent)

    m = push(reg, env_for(tmp_path, **FAST))
    one_error(m, "not done within", "OCIBUILD_TRANSFER_TIMEOUT")
    assert m.seconds < BOUND, (where, m.seconds)


def test_deadline_settings_are_checked() -> None:
    assert RetryPolicy.from_env({"OCIBUILD_LOW_SPEED_LIMIT": "10", "OCIBUILD_LOW_SPEED_TIME": "0.5",
                                 "OCIBUILD_TRANSFER_TIMEOUT": "7"}) == RetryPolicy(
        low_speed_limit=10, low_speed_time=0.5, timeout=7)
    assert RetryPolicy.from_env({}) == RetryPolicy()
    for bad in ("abc", "0", "-3", "inf", "nan"):
        with pytest.raises(ConfigError, match="OCIBUILD_LOW_SPEED_TIME"):
            RetryPolicy.from_env({"OCIBUILD_LOW_SPEED_TIME": bad})


def test_bad_deadline_setting_is_one_error_line(tmp_path: Path, servers: list[HostileRegistry | ForwardProxy],
                                                 image: TinyImage) -> None:
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, HostileRegistry(store=store))
    one_error(pull(reg, tmp_path, env_for(tmp_path, OCIBUILD_TRANSFER_TIMEOUT="soon")), "OCIBUILD_TRANSFER_TIMEOUT")


# --- 2. bounded reads: a huge or endless answer is refused with bounded memory ----------------------------

def _huge_manifest(h: RegistryHandler) -> None:
    h.stream(zeros(total=1 << 30), length=1 << 30, content_type="application/vnd.oci.image.manifest.v1+json")


def _endless_chunked_manifest(h: RegistryHandler) -> None:
    h.stream(endless_json(), content_type="application/vnd.oci.image.manifest.v1+json")


def _endless_unframed_manifest(h: RegistryHandler) -> None:
    h.stream(zeros(), until_close=True, content_type="application/vnd.oci.image.manifest.v1+json")


def _endless_config(h: RegistryHandler) -> None:
    h.stream(zeros())


def _endless_error(h: RegistryHandler) -> None:
    h.stream(endless_json(), status=404, content_type="application/json")


def _huge_token(h: RegistryHandler) -> None:
    h.stream(endless_json(), content_type="application/json")


@pytest.mark.parametrize(("what", "method", "path", "answer", "fragment"), [
    ("1 GiB manifest", "GET", "/manifests/1", _huge_manifest, "refusing"),
    ("endless chunked manifest", "GET", "/manifests/1", _endless_chunked_manifest, "refusing"),
    ("endless manifest without framing", "GET", "/manifests/1", _endless_unframed_manifest, "refusing"),
    ("endless config", "GET", "/blobs/{config}", _endless_config, "larger than"),
    ("endless error body", "GET", "/manifests/1", _endless_error, "HTTP 404"),
    ("endless token answer", "GET", "/token", _huge_token, "refusing"),
])
def test_huge_or_endless_answers_are_refused_with_bounded_memory(
        tmp_path: Path, servers: list[HostileRegistry | ForwardProxy], image: TinyImage, what: str, method: str,
        path: str, answer: Callable[[RegistryHandler], None], fragment: str) -> None:
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, with_bearer(HostileRegistry(auth="bearer", store=store)))
    reg.on(method, path.format(config=image.config_digest), answer, auth_first=path != "/token")

    m = pull(reg, tmp_path, env_for(tmp_path))
    assert m.max_rss < MAX_RSS, (what, m.max_rss, m.stderr[-2000:])
    one_error(m, fragment)
    assert m.seconds < BOUND, (what, m.seconds)
    nothing_left(tmp_path, tmp_path / "out")


# --- 3. what the registry reports after a push ----------------------------------------------------------

WRONG = "sha256:" + "0" * 64


def _lying_head(h: RegistryHandler) -> None:
    h.answer(200, headers=[("Docker-Content-Digest", WRONG)], content_type="application/octet-stream")


@pytest.mark.parametrize(("lie", "fragment"), [
    ("blob_digest_header", "stored the uploaded blob as"),
    ("manifest_digest_header", "stored manifest"),
    ("head", "has the blob as"),
])
def test_wrong_reported_digest_after_a_push_is_an_error(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy], lie: str, fragment: str) -> None:
    reg = start(servers, HostileRegistry(auth="basic", user=USER, password=SECRET))
    if lie == "head":
        reg.on("HEAD", r"/blobs/sha256:", _lying_head)
    else:
        setattr(reg, lie, WRONG)

    m = push(reg, env_for(tmp_path))
    one_error(m, fragment, WRONG)
    assert ("team/app", "1") not in reg.store.manifests  # the tag was never written


def test_wrong_reported_blob_digest_is_a_library_error(servers: list[HostileRegistry | ForwardProxy]) -> None:
    reg = start(servers, HostileRegistry())
    reg.blob_digest_header = WRONG
    data = b"some blob"
    desc = Descriptor(media_type="application/octet-stream", digest=Digest.parse(sha256(data)), size=len(data))
    with pytest.raises(DigestMismatch, match="not as the pushed"):
        RegistryClient().push_blob(Repository(host=reg.host, name="x"), desc, lambda: io.BytesIO(data))
    assert reg.count("POST", "/blobs/uploads/") == 1  # a lie is not retried


# --- 7. malformed answers: one error line, never a traceback -----------------------------------------------

def _answer(status: int, body: bytes, *headers: tuple[str, str], content_type: str = "application/json",
            ) -> Callable[[RegistryHandler], None]:
    def answer(h: RegistryHandler) -> None:
        h.body()
        h.answer(status, body, headers, content_type=content_type)
    return answer


def _challenge(value: str) -> Callable[[RegistryHandler], None]:
    def answer(h: RegistryHandler) -> None:
        if h.headers.get("Authorization"):
            h.error(403, "DENIED", "no")
            return
        h.error(401, "UNAUTHORIZED", "auth required", [("WWW-Authenticate", value)])
    return answer


DEEP = b"[" * 60_000
MALFORMED: list[tuple[str, str, str, Callable[[RegistryHandler], None], str]] = [
    ("token not JSON", "GET", "/token", _answer(200, b"<html>gateway</html>", content_type="text/html"),
     "no usable token"),
    ("token a JSON list", "GET", "/token", _answer(200, b"[1, 2, 3]"), "no usable token"),
    ("token nested too deeply", "GET", "/token", _answer(200, DEEP), "no usable token"),
    ("token with a line break", "GET", "/token", _answer(200, json.dumps({"token": "a\r\nX-Evil: 1"}).encode()),
     "no usable token"),
    ("token not a string", "GET", "/token", _answer(200, b'{"token": {"a": 1}}'), "no usable token"),
    ("realm not a URL", "GET", "/v2/", _challenge('Bearer realm="http://[::1",service="x"'), "not an http(s) URL"),
    ("realm not http", "GET", "/v2/", _challenge('Bearer realm="ftp://127.0.0.1/token",service="x"'),
     "not an http(s) URL"),
    ("realm relative", "GET", "/v2/", _challenge('Bearer realm="/token",service="x"'), "not an http(s) URL"),
    ("error body not JSON", "GET", "/manifests/1", _answer(400, b"{not json"), "HTTP 400"),
    ("error body nested too deeply", "GET", "/manifests/1", _answer(404, b'{"errors": ' + DEEP), "HTTP 404"),
    ("error body of wrong types", "GET", "/manifests/1",
     _answer(403, b'{"errors": [1, {"code": ["x"]}, {"code": "DENIED", "message": {"a": 1}}]}'), "DENIED"),
    ("error message with line breaks", "GET", "/manifests/1",
     _answer(403, json.dumps({"errors": [{"code": "DENIED", "message": "one\ntwo\r\nocibuild: error: three"}]}
                             ).encode()), "one two ocibuild: error: three"),
    ("error message echoing the password", "GET", "/manifests/1",
     _answer(403, json.dumps({"errors": [{"code": "DENIED", "message": f"bad password {SECRET} / {BASIC}"}]}
                             ).encode()), "bad password *** / ***"),
    ("redirect loop", "GET", "/blobs/{layer}", lambda h: h.answer(307, headers=[("Location", h.path)]),
     "more than 10 redirects"),
    ("redirect to a non-URL", "GET", "/blobs/{layer}", _answer(302, b"", ("Location", "gopher://x/y")),
     "not an http(s) URL"),
    ("content length not a number", "GET", "/manifests/1", lambda h: h.wfile.write(
        b"HTTP/1.1 200 OK\r\nContent-Length: lots\r\nContent-Type: application/json\r\n\r\n{}"), "manifest"),
]


@pytest.mark.parametrize(("what", "method", "path", "answer", "fragment"), MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_answers_are_one_error_line(tmp_path: Path, servers: list[HostileRegistry | ForwardProxy],
                                              image: TinyImage, what: str, method: str, path: str,
                                              answer: Callable[[RegistryHandler], None], fragment: str) -> None:
    store = Store()
    store.add_image(BASE, "1", image)
    reg = start(servers, with_bearer(HostileRegistry(auth="bearer", store=store)))
    rx = path.format(layer=image.layer_digest, config=image.config_digest)

    reg.on(method, rx, answer, auth_first=path not in ("/token", "/v2/"))
    m = pull(reg, tmp_path, env_for(tmp_path, **FAST))
    one_error(m, fragment)
    nothing_left(tmp_path, tmp_path / "out")


def test_upload_location_that_is_not_a_url_is_one_error_line(tmp_path: Path, servers: list[
        HostileRegistry | ForwardProxy]) -> None:
    reg = start(servers, HostileRegistry(auth="basic", user=USER, password=SECRET))
    reg.on("POST", "/blobs/uploads/", _answer(202, b"", ("Location", "http://[::1/upload")))
    one_error(push(reg, env_for(tmp_path)), "upload location", "not an http(s) URL")


def test_library_errors_are_registry_errors(servers: list[HostileRegistry | ForwardProxy]) -> None:
    """The same faults through the library: an OcibuildError, never another exception."""
    reg = start(servers, HostileRegistry())
    reg.on("GET", "/manifests/", _endless_chunked_manifest)
    with pytest.raises(RegistryError, match="refusing"):
        RegistryClient().get_manifest(Reference.parse(f"{reg.host}/x:1"))

"""Self-checks of the registry test harness (tests/harness: registry, tokens, proxy, credentials, pki) with
skopeo as the client.

If these fail, every registry test's verdict is meaningless: real distribution registries (plain, TLS +
basic auth, TLS + bearer tokens), the request log, the token server, the fault proxy and the credential
files/helpers are checked here against a client nobody on the team wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from harness.credentials import containers_auth, credential_helper, credential_helper_calls, docker_config
from harness.pki import PKI
from harness.proc import skopeo, skopeo_copy, skopeo_inspect
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.tokens import TokenServer

UPLOAD_POST = r"^/v2/test/bb/blobs/uploads/$"          # new upload session (no mount)
UPLOAD_PUT = r"^/v2/test/bb/blobs/uploads/[^?]+\?.*\bdigest="  # upload completed
MOUNT_POST = r"^/v2/test/bb/blobs/uploads/\?.*\bmount="


def _layout_blobs(layout: Path, tag: str = "busybox") -> tuple[str, dict[str, Any]]:
    """(manifest digest, manifest) of the tag in an OCI layout (single-platform image)."""
    index = json.loads((layout / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"].split(":", 1)[1]).read_bytes())
    return desc["digest"], manifest


def _push(reg: Registry | FaultProxy, layout: Path, name: str, *extra: str) -> None:
    args = reg.skopeo_args("dest") if isinstance(reg, Registry) else ["--dest-tls-verify=false"]
    skopeo_copy(f"oci:{layout}:busybox", reg.ref(name), *args, *extra)


def _http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


# ---------------------------------------------------------------------------------------------------
# PKI
# ---------------------------------------------------------------------------------------------------

def test_pki(pki: PKI) -> None:
    srv = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    srv.verify_directly_issued_by(ca)
    assert sorted(p.name for p in pki.certs_dir.iterdir()) == ["ca.crt"]


# ---------------------------------------------------------------------------------------------------
# the three registry kinds, with skopeo
# ---------------------------------------------------------------------------------------------------

def test_plain_push_inspect_and_request_log(registry_factory: RegistryFactory, busybox_layout: Path) -> None:
    reg = registry_factory("plain")  # a fresh registry: skopeo would mount blobs it saw in a shared one
    digest, manifest = _layout_blobs(busybox_layout)
    n_blobs = 1 + len(manifest["layers"])

    m = reg.mark()
    _push(reg, busybox_layout, "test/bb:1")
    assert reg.count("POST", UPLOAD_POST, since=m) == n_blobs, reg.requests_since(m)
    assert reg.count("PUT", UPLOAD_PUT, since=m) == n_blobs
    assert reg.count("POST", MOUNT_POST, since=m) == 0
    assert reg.count("PUT", r"^/v2/test/bb/manifests/1$", since=m) == 1
    assert all(r["status"] < 400 or r["method"] == "HEAD" for r in reg.requests_since(m))

    info = skopeo_inspect(reg.ref("test/bb:1"), *reg.skopeo_args())
    assert info["Digest"] == digest
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]

    # same push again: skopeo HEADs every blob, uploads nothing
    m2 = reg.mark()
    _push(reg, busybox_layout, "test/bb:1")
    assert reg.count("POST", r"/blobs/uploads/", since=m2) == 0, reg.requests_since(m2)
    assert reg.count("PUT", r"/blobs/uploads/", since=m2) == 0
    assert reg.count("HEAD", r"^/v2/test/bb/blobs/sha256:", since=m2) >= n_blobs
    # the log records method, URI (with query) and status
    put = next(r for r in reg.requests_since(m) if r["method"] == "PUT" and "digest=" in r["path"])
    assert put["status"] == 201 and put["route"].startswith("/v2/test/bb/blobs/uploads/")
    assert put["query"]["digest"][0].startswith("sha256:")


def test_tls_basic_push_inspect_and_refusals(tls_registry: Registry, busybox_layout: Path) -> None:
    reg = tls_registry
    digest, _ = _layout_blobs(busybox_layout)
    assert reg.scheme == "https" and reg.url.startswith("https://127.0.0.1:")
    _push(reg, busybox_layout, "test/bb:1")
    assert skopeo_inspect(reg.ref("test/bb:1"), *reg.skopeo_args())["Digest"] == digest

    m = reg.mark()
    anon = skopeo("copy", *reg.skopeo_args("dest", creds=False), f"oci:{busybox_layout}:busybox",
                  reg.ref("test/anon:1"), check=False)
    assert anon.returncode != 0
    assert re.search(r"authentication required|unauthorized", anon.stderr, re.I), anon.stderr
    bad = skopeo("copy", "--dest-cert-dir", str(reg.certs_dir), "--dest-creds", "testuser:wrong",
                 f"oci:{busybox_layout}:busybox", reg.ref("test/anon:1"), check=False)
    assert bad.returncode != 0
    assert reg.count(None, r"^/v2/test/anon/", since=m) >= 1
    assert all(r["status"] == 401 for r in reg.requests_since(m) if r["route"].startswith("/v2/test/anon/"))
    # TLS really is verified: without the CA the client refuses the certificate
    with pytest.raises(requests.exceptions.SSLError):
        _http().get(f"{reg.url}/v2/", verify=True, timeout=5)
    assert reg.session().get(f"{reg.url}/v2/test/bb/tags/list", timeout=5).json()["tags"] == ["1"]


def test_token_push_scopes_and_anonymous_pull(token_registry: tuple[Registry, TokenServer],
                                              busybox_layout: Path) -> None:
    reg, ts = token_registry
    assert reg.token_server is ts
    digest, _ = _layout_blobs(busybox_layout)
    tm = ts.mark()
    _push(reg, busybox_layout, "test/bb:1")
    assert skopeo_inspect(reg.ref("test/bb:1"), *reg.skopeo_args())["Digest"] == digest
    reqs = ts.requests_since(tm)
    push_scopes = [s for r in reqs for s in r["scopes"]
                   if re.fullmatch(r"repository:test/bb:(push,pull|pull,push)", s)]
    assert push_scopes, reqs
    assert all(r["user"] == "testuser" and r["status"] == 200 for r in reqs)
    assert all(r["service"] == "test-registry" for r in reqs)

    # anonymous: pull allowed (token with pull only), push refused
    tm = ts.mark()
    anon_info = skopeo_inspect(reg.ref("test/bb:1"), *reg.skopeo_args(creds=False))
    assert anon_info["Digest"] == digest
    assert any(r["user"] is None and r["granted"][0]["actions"] == ["pull"] for r in ts.requests_since(tm))
    anon = skopeo("copy", *reg.skopeo_args("dest", creds=False), f"oci:{busybox_layout}:busybox",
                  reg.ref("test/anon:1"), check=False)
    assert anon.returncode != 0
    assert re.search(r"authentication required|unauthorized|denied", anon.stderr, re.I), anon.stderr
    # wrong password: the token server answers 401
    bad = skopeo("inspect", "--cert-dir", str(reg.certs_dir), "--creds", "testuser:wrong", reg.ref("test/bb:1"),
                 check=False)
    assert bad.returncode != 0
    assert ts.requests_log()[-1]["status"] == 401


def test_token_server_oauth_post_refresh_and_knobs(token_registry: tuple[Registry, TokenServer]) -> None:
    reg, ts = token_registry
    s = _http()
    s.verify = str(reg.ca_cert)
    form = {"grant_type": "password", "username": "testuser", "password": "testpass", "service": "test-registry",
            "scope": "repository:test/bb:pull repository:x/y:pull,push", "client_id": "selfcheck",
            "access_type": "offline"}
    r = s.post(ts.realm, data=form, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert ts.requests_log()[-1]["scopes"] == ["repository:test/bb:pull", "repository:x/y:pull,push"]
    head = s.head(f"{reg.url}/v2/test/bb/manifests/1", timeout=5,
                  headers={"Authorization": f"Bearer {body['access_token']}",
                           "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert head.status_code == 200
    r2 = s.post(ts.realm, data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"],
                                "service": "test-registry", "scope": "repository:test/bb:pull",
                                "client_id": "selfcheck"}, timeout=5)
    assert r2.status_code == 200 and r2.json()["access_token"]
    assert s.post(ts.realm, data={**form, "password": "nope"}, timeout=5).status_code == 401
    assert s.post(ts.realm, data={**form, "grant_type": "refresh_token", "refresh_token": "nope"},
                  timeout=5).status_code == 401
    ts.fail_next(1, 503)
    assert s.get(ts.realm, params={"service": "test-registry"}, timeout=5).status_code == 503
    assert s.get(ts.realm, params={"service": "test-registry"}, timeout=5).status_code == 200
    ts.allow_post = False
    try:
        assert s.post(ts.realm, data=form, timeout=5).status_code == 404
    finally:
        ts.allow_post = True
    # a token already expired beyond the registry's 60 s leeway is refused with invalid_token
    ts.lifetime = -120
    try:
        tok = s.get(ts.realm, params={"service": "test-registry", "scope": "repository:test/bb:pull"},
                    auth=("testuser", "testpass"), timeout=5).json()["token"]
    finally:
        ts.lifetime = None
    r3 = s.head(f"{reg.url}/v2/test/bb/manifests/1", headers={"Authorization": f"Bearer {tok}"}, timeout=5)
    assert r3.status_code == 401 and 'error="invalid_token"' in r3.headers["WWW-Authenticate"]


# ---------------------------------------------------------------------------------------------------
# process control
# ---------------------------------------------------------------------------------------------------

def test_kill_restart_keeps_data(registry_factory: RegistryFactory, busybox_layout: Path) -> None:
    reg = registry_factory("plain")
    digest, _ = _layout_blobs(busybox_layout)
    _push(reg, busybox_layout, "test/bb:1")
    m = reg.mark()
    old_pid = reg.pid
    reg.kill()
    assert not reg.running
    with pytest.raises(requests.exceptions.ConnectionError):
        _http().get(f"{reg.url}/v2/", timeout=2)
    reg.restart()
    assert reg.running and reg.pid != old_pid
    assert skopeo_inspect(reg.ref("test/bb:1"), *reg.skopeo_args())["Digest"] == digest
    assert reg.count("GET", r"^/v2/test/bb/manifests/1$", since=m) >= 1  # log continues across restarts
    assert reg.blob_path(digest).is_file()


def test_factory_stops_everything(tmp_path: Path, pki: PKI) -> None:
    factory = RegistryFactory(tmp_path, pki)
    regs = [factory(kind) for kind in ("plain", "tls", "token")]
    proxy = factory.proxy(regs[0])
    pids = [r.pid for r in regs]
    assert all(isinstance(p, int) for p in pids)
    token_server = regs[2].token_server
    assert token_server is not None
    factory.close()
    for pid in pids:
        assert pid is not None
        with pytest.raises(ProcessLookupError):  # stopped and reaped
            os.kill(pid, 0)
    for url in (regs[0].url, proxy.url):
        with pytest.raises(requests.exceptions.ConnectionError):
            _http().get(f"{url}/v2/", timeout=2)
    with pytest.raises(requests.exceptions.ConnectionError):
        _http().get(token_server.realm, verify=False, timeout=2)


# ---------------------------------------------------------------------------------------------------
# fault proxy
# ---------------------------------------------------------------------------------------------------

def test_proxy_forwards_push_and_pull(fault_proxy: FaultProxy, busybox_layout: Path, tmp_path: Path) -> None:
    proxy = fault_proxy
    reg = proxy.registry
    assert reg is not None
    digest, manifest = _layout_blobs(busybox_layout)
    _push(proxy, busybox_layout, "test/bb:1")
    # the upload session's Location was rewritten to the proxy: PATCH/PUT went through it
    patches = [r for r in proxy.requests if r["method"] in ("PATCH", "PUT") and "/blobs/uploads/" in r["path"]]
    assert patches and sum(r["bytes_in"] for r in patches) == sum(
        layer["size"] for layer in manifest["layers"]) + manifest["config"]["size"]
    assert reg.count("PUT", UPLOAD_PUT) == 1 + len(manifest["layers"])
    skopeo_copy(proxy.ref("test/bb:1"), f"oci:{tmp_path / 'out'}:x", "--src-tls-verify=false")
    assert json.loads((tmp_path / "out" / "index.json").read_text())["manifests"][0]["digest"] == digest
    assert proxy.count("GET", r"/blobs/sha256:") == 1 + len(manifest["layers"])
    # chunked request bodies are streamed through too
    data = os.urandom(300_000)
    s = _http()
    post = s.post(f"{proxy.url}/v2/test/chunked/blobs/uploads/", timeout=5)
    assert post.status_code == 202 and post.headers["Location"].startswith(proxy.url)
    patch = s.patch(post.headers["Location"], data=iter([data[:100_000], data[100_000:]]), timeout=10)
    assert patch.status_code == 202 and patch.headers["Range"] == f"0-{len(data) - 1}"
    put = s.put(patch.headers["Location"] + "&digest=sha256:" + hashlib.sha256(data).hexdigest(), timeout=5)
    assert put.status_code == 201, put.text
    got = s.get(f"{proxy.url}/v2/test/chunked/blobs/sha256:{hashlib.sha256(data).hexdigest()}", timeout=5)
    assert got.content == data


def test_proxy_fail_next(fault_proxy: FaultProxy, busybox_layout: Path) -> None:
    proxy = fault_proxy
    reg = proxy.registry
    assert reg is not None
    _push(reg, busybox_layout, "test/bb:1")
    s = _http()
    proxy.fail_next(2, 503)
    m, rm = proxy.mark(), reg.mark()
    for _ in range(2):
        r = s.get(f"{proxy.url}/v2/", timeout=5)
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert s.get(f"{proxy.url}/v2/", timeout=5).status_code == 200
    assert [(r["status"], r["action"]) for r in proxy.requests_since(m)] == [
        (503, "fail"), (503, "fail"), (200, "forward")]
    assert reg.count("GET", r"^/v2/$", since=rm) == 1  # failed requests were not forwarded

    # skopeo 1.9 does not retry 503 (not even with --retry-times) ...
    proxy.fail_next(2, 503, match=r"/manifests/")
    r1 = skopeo("inspect", "--tls-verify=false", "--retry-times", "3", proxy.ref("test/bb:1"), check=False)
    assert r1.returncode != 0 and "503" in r1.stderr
    proxy.clear()
    # ... but it does retry 429, honouring Retry-After
    proxy.fail_next(1, 429, retry_after="1", match=r"/manifests/")
    m = proxy.mark()
    skopeo("inspect", "--tls-verify=false", "--retry-times", "3", proxy.ref("test/bb:1"))
    manifest_gets = [r["status"] for r in proxy.requests_since(m) if "/manifests/" in r["path"]]
    assert manifest_gets[:2] == [429, 200]


def test_proxy_corrupt_blob(fault_proxy: FaultProxy, busybox_layout: Path, tmp_path: Path) -> None:
    proxy = fault_proxy
    assert proxy.registry is not None
    _push(proxy.registry, busybox_layout, "test/bb:1")
    _, manifest = _layout_blobs(busybox_layout)
    layer = manifest["layers"][0]["digest"]
    proxy.corrupt_blob(layer)
    bad = skopeo("copy", "--src-tls-verify=false", proxy.ref("test/bb:1"), f"oci:{tmp_path / 'bad'}:x",
                 check=False)
    assert bad.returncode != 0
    assert re.search(r"digest did not match", bad.stderr, re.I), bad.stderr
    assert proxy.corrupt[layer] >= 1
    got = _http().get(f"{proxy.url}/v2/test/bb/blobs/{layer}", timeout=5)
    assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == layer
    assert len(got.content) == manifest["layers"][0]["size"]
    assert "sha256:" + hashlib.sha256(got.content).hexdigest() != layer
    proxy.clear()
    skopeo_copy(proxy.ref("test/bb:1"), f"oci:{tmp_path / 'good'}:x", "--src-tls-verify=false")


def test_proxy_drop_truncate_delay(fault_proxy: FaultProxy, busybox_layout: Path) -> None:
    proxy = fault_proxy
    assert proxy.registry is not None
    _push(proxy.registry, busybox_layout, "test/bb:1")
    _, manifest = _layout_blobs(busybox_layout)
    layer = manifest["layers"][0]
    proxy.drop_next(1)
    m = proxy.mark()
    with pytest.raises(requests.exceptions.ConnectionError):
        _http().get(f"{proxy.url}/v2/", timeout=5)
    assert _http().get(f"{proxy.url}/v2/", timeout=5).status_code == 200
    assert [(r["action"], r["status"]) for r in proxy.requests_since(m)] == [("drop", None), ("forward", 200)]

    proxy.truncate_next(1, after=100, match=r"/blobs/")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _http().get(f"{proxy.url}/v2/test/bb/blobs/{layer['digest']}", timeout=5).content  # noqa: B018
    ok = _http().get(f"{proxy.url}/v2/test/bb/blobs/{layer['digest']}", timeout=5)
    assert len(ok.content) == layer["size"]

    proxy.delay_next(1, 0.5)
    r = _http().get(f"{proxy.url}/v2/", timeout=5)
    assert r.status_code == 200 and r.elapsed.total_seconds() >= 0.5
    with pytest.raises(requests.exceptions.ReadTimeout):
        proxy.delay_next(1, 1.0)
        _http().get(f"{proxy.url}/v2/", timeout=0.3)
    assert proxy.pending() == 0


# ---------------------------------------------------------------------------------------------------
# credentials
# ---------------------------------------------------------------------------------------------------

def _helper(script: Path, action: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), action], input=stdin, capture_output=True, text=True, timeout=30,
                          check=False)


def test_credential_helper_protocol(tmp_path: Path) -> None:
    script = credential_helper(tmp_path / "bin", "selfcheck", "127.0.0.1:5999", "alice", "s3cret")
    assert script.name == "docker-credential-selfcheck" and os.access(script, os.X_OK)
    for query in ("127.0.0.1:5999", "https://127.0.0.1:5999", "https://127.0.0.1:5999/v2/"):
        p = _helper(script, "get", query + "\n")
        assert p.returncode == 0, p.stderr
        assert json.loads(p.stdout) == {"ServerURL": "127.0.0.1:5999", "Username": "alice", "Secret": "s3cret"}
    p = _helper(script, "get", "127.0.0.1:1")
    assert p.returncode == 1 and p.stdout.strip() == "credentials not found in native keychain"
    store = {"ServerURL": "127.0.0.1:6000", "Username": "bob", "Secret": "pw"}
    assert _helper(script, "store", json.dumps(store)).returncode == 0
    assert json.loads(_helper(script, "list", "").stdout) == {"127.0.0.1:5999": "alice", "127.0.0.1:6000": "bob"}
    assert json.loads(_helper(script, "get", "127.0.0.1:6000").stdout)["Secret"] == "pw"
    assert _helper(script, "erase", "127.0.0.1:6000").returncode == 0
    assert _helper(script, "get", "127.0.0.1:6000").returncode == 1
    calls = credential_helper_calls(script)
    assert [c["action"] for c in calls][:4] == ["get", "get", "get", "get"]
    assert all("pw" not in c["input"] for c in calls)


def test_auth_files_with_skopeo(tls_registry: Registry, busybox_layout: Path, tmp_path: Path) -> None:
    reg = tls_registry
    _push(reg, busybox_layout, "test/bb:1")
    certs = ["--cert-dir", str(reg.certs_dir)]
    auth_json = containers_auth(tmp_path / "c", reg.host, "testuser", "testpass")
    skopeo("inspect", *certs, "--authfile", str(auth_json), reg.ref("test/bb:1"))
    cfg = docker_config(tmp_path / "d", reg.host, "testuser", "testpass")
    assert json.loads(cfg.read_text())["auths"][reg.host]["auth"] == "dGVzdHVzZXI6dGVzdHBhc3M="
    skopeo("inspect", *certs, "--authfile", str(cfg), reg.ref("test/bb:1"))
    wrong = docker_config(tmp_path / "w", reg.host, "testuser", "wrong")
    assert skopeo("inspect", *certs, "--authfile", str(wrong), reg.ref("test/bb:1"), check=False).returncode != 0
    # a credHelpers entry: skopeo runs our docker-credential-<name> get
    bin_dir = tmp_path / "bin"
    script = credential_helper(bin_dir, "selfcheck", reg.host, "testuser", "testpass")
    helper_cfg = docker_config(tmp_path / "h", reg.host, None, None, cred_helpers={reg.host: "selfcheck"})
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    skopeo("inspect", *certs, "--authfile", str(helper_cfg), reg.ref("test/bb:1"), env=env)
    calls = {(c["action"], c["input"]) for c in credential_helper_calls(script)}
    assert calls == {("get", reg.host)}  # skopeo asks once per registry client it builds (here 2x)

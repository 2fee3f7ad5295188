"""Registry pulls and pushes against real registries (Debian's docker-registry = CNCF distribution) over
plain HTTP, TLS + basic auth and token auth, checked with skopeo and run with runc; fault injection
through a proxy only where a real registry cannot produce the fault."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness.credentials import containers_auth, credential_helper, docker_config
from harness.layout import layout_index_of
from harness.pki import PKI
from harness.proc import skopeo, skopeo_copy, skopeo_inspect
from harness.proxy import FaultProxy
from harness.registry import Registry, RegistryFactory
from harness.runtime import run_image
from harness.tokens import TokenServer
from harness.validate import validate_layout

from ocibuild.errors import RegistryError
from ocibuild.registry import RegistryClient, Repository, RetryPolicy, TLSConfig
from ocibuild.spec import Descriptor, Digest, ImageManifest, MediaType, Reference
from ocibuild.store import ContentStore

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
pytestmark = pytest.mark.slow


def isolated_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No host credentials leak in: private DOCKER_CONFIG, no containers auth files."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR",
                                                             "OCIBUILD_REGISTRY_USERNAME")}
    env.update({"DOCKER_CONFIG": str(tmp / "docker-config"), "XDG_CONFIG_HOME": str(tmp / "xdg"),
                "OCIBUILD_CACHE": str(tmp / "cache"), "SOURCE_DATE_EPOCH": "1700000000"})
    env.update(extra)
    return env


def ocibuild(*args: str | Path, env: dict[str, str], check: bool = True, stdin: str | None = None,
             ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600, input=stdin)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def uploads(reg: Registry, since: int) -> int:
    """Completed blob uploads (the final PUT carries ?digest=)."""
    return reg.count("PUT", r"/blobs/uploads/.*[?&]digest=", since=since)


def enc(digest: Digest) -> str:
    """A digest as it may appear in a query string (':' raw or percent-encoded)."""
    return rf"{digest.algorithm}(?::|%3A){digest.hex}"


def push_busybox(reg: Registry, layout: Path, repo: str, *extra: str) -> str:
    ref = f"docker://{reg.host}/{repo}"
    skopeo_copy(f"oci:{layout}:busybox", ref, *reg.skopeo_args("dest"), *extra)
    return ref


def test_push_then_pull_back_with_skopeo_and_run(tmp_path: Path, plain_registry: Registry,
                                                 busybox_layout: Path) -> None:
    env = isolated_env(tmp_path)
    target = f"{plain_registry.host}/t1/hello:v1"
    out = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--output", f"docker://{target}",
                   "--output", f"oci:{tmp_path / 'local'}:v1", "--digest-file", tmp_path / "digest", env=env)
    digest = out.stdout.strip()
    assert (tmp_path / "digest").read_text().strip() == digest
    local_manifest = (tmp_path / "local" / "blobs" / "sha256" / digest[7:]).read_bytes()
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout.encode()
    assert raw == local_manifest  # the registry holds exactly our bytes
    assert "push" in out.stderr and "uploaded" in out.stderr and f"pushed  {target}@{digest}" in out.stderr

    pulled = tmp_path / "pulled"
    skopeo_copy(f"docker://{target}", f"oci:{pulled}:v1", "--src-tls-verify=false", "--preserve-digests")
    validate_layout(pulled)
    run = run_image(pulled, "v1")
    assert run.returncode == 0 and run.stdout.strip() == "Hello from ocibuild on x86_64", run.stderr


def test_registry_base_is_pulled_built_on_pushed_and_mounted(tmp_path: Path, plain_registry: Registry,
                                                             busybox_layout: Path) -> None:
    reg = plain_registry
    push_busybox(reg, busybox_layout, "base/bb:1")
    base_manifest = ImageManifest.from_json(skopeo("inspect", "--raw", "--tls-verify=false",
                                                   f"docker://{reg.host}/base/bb:1").stdout.encode())
    env = isolated_env(tmp_path)
    mark = reg.mark()
    # no SBOM: it would read the base's layers to list their packages (test_evidence covers it)
    out = ocibuild("build", HELLO, "--sbom", "none", "--base", f"docker://{reg.host}/base/bb:1", "--output",
                   f"docker://{reg.host}/t2/app:1", "--json", env=env)
    result = json.loads(out.stdout)
    base_layer = base_manifest.layers[0].digest
    assert reg.count("GET", rf"/v2/base/bb/blobs/{base_layer}", since=mark) == 0  # lazy: mounted, never pulled
    assert reg.count("POST", rf"/v2/t2/app/blobs/uploads/\?.*mount={enc(base_layer)}", since=mark) == 1
    assert not reg.count("PUT", rf"digest={enc(base_layer)}", since=mark)  # mounted, not uploaded

    pushed = ImageManifest.from_json(skopeo("inspect", "--raw", "--tls-verify=false",
                                            f"docker://{reg.host}/t2/app:1").stdout.encode())
    assert pushed.layers[0].digest == base_layer  # base layers are not re-compressed
    assert pushed.annotations["org.opencontainers.image.base.name"] == f"{reg.host}/base/bb:1"
    assert result["base"]["digest"] == pushed.annotations["org.opencontainers.image.base.digest"]

    # the same push again uploads no blob
    mark = reg.mark()
    again = ocibuild("build", HELLO, "--sbom", "none", "--base", f"docker://{reg.host}/base/bb:1", "--output",
                     f"docker://{reg.host}/t2/app:1", env=env)
    assert again.stdout.strip() == result["digest"]
    assert uploads(reg, mark) == 0 and reg.count("POST", r"/blobs/uploads/", since=mark) == 0
    assert reg.count("GET", r"/blobs/sha256:", since=mark) == 0  # the base's blobs come from the cache

    # a second repository mounts the shared base layer instead of uploading it
    mark = reg.mark()
    ocibuild("build", HELLO, "--base", f"docker://{reg.host}/base/bb:1", "--output",
             f"docker://{reg.host}/t2/other:1", env=env)
    assert reg.count("POST", rf"/v2/t2/other/blobs/uploads/\?.*mount={enc(base_layer)}", since=mark) == 1
    assert not reg.count("PUT", rf"digest={enc(base_layer)}", since=mark)


def test_docker_schema2_base_by_digest(tmp_path: Path, plain_registry: Registry, busybox_layout: Path) -> None:
    """A Docker v2 schema-2 base named by digest with a bare reference; the result is OCI."""
    reg = plain_registry
    push_busybox(reg, busybox_layout, "dock/bb:1", "--format", "v2s2")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/dock/bb:1").stdout.encode()
    assert json.loads(raw)["mediaType"] == MediaType.DOCKER_MANIFEST
    digest = Digest.of(raw)
    out = ocibuild("build", HELLO, "--base", f"{reg.host}/dock/bb@{digest}", "--output",
                   f"oci:{tmp_path / 'o'}:t", env=isolated_env(tmp_path))
    validate_layout(tmp_path / "o")
    manifest = ImageManifest.from_json((tmp_path / "o" / "blobs/sha256" / out.stdout.strip()[7:]).read_bytes())
    assert manifest.layers[0].media_type == MediaType.OCI_LAYER_GZIP
    assert manifest.layers[0].digest == ImageManifest.from_json(raw).layers[0].digest
    assert run_image(tmp_path / "o", "t").stdout.strip() == "Hello from ocibuild on x86_64"


def test_index_base_from_registry_selects_platform(tmp_path: Path, plain_registry: Registry,
                                                   busybox_layout: Path, busybox_arm64_layout: Path) -> None:
    reg = plain_registry
    index = layout_index_of(tmp_path / "multi", "bb", [(busybox_layout, "busybox"), (busybox_arm64_layout, "busybox")])
    skopeo_copy(f"oci:{index}:bb", f"docker://{reg.host}/multi/bb:1", "--all", "--preserve-digests",
                "--dest-tls-verify=false")
    ocibuild("build", HELLO, "--base", f"docker://{reg.host}/multi/bb:1", "--platform", "linux/arm64",
             "--output", f"oci:{tmp_path / 'o'}:t", env=isolated_env(tmp_path))
    run = run_image(tmp_path / "o", "t")
    assert run.returncode == 0 and run.stdout.strip() == "Hello from ocibuild on aarch64", run.stderr
    bad = ocibuild("build", HELLO, "--base", f"docker://{reg.host}/multi/bb:1", "--platform", "linux/ppc64le",
                   "--output", f"oci:{tmp_path / 'x'}:t", env=isolated_env(tmp_path), check=False)
    assert bad.returncode == 1 and "(it has: linux/amd64, linux/arm64/v8)" in bad.stderr


def test_tls_basic_auth_with_every_credential_source(tmp_path: Path, tls_registry: Registry, pki: PKI,
                                                     busybox_layout: Path) -> None:
    reg = tls_registry
    base = ["build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--ca-file", pki.ca_cert]

    anonymous = ocibuild(*base, "--output", f"docker://{reg.host}/auth/anon:1", env=isolated_env(tmp_path),
                         check=False)
    assert anonymous.returncode == 1
    assert "UNAUTHORIZED" in anonymous.stderr and f"ocibuild login {reg.host}" in anonymous.stderr

    no_ca = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--creds", "testuser:testpass",
                     "--output", f"docker://{reg.host}/auth/noca:1", env=isolated_env(tmp_path), check=False)
    assert no_ca.returncode == 1 and "certificate verify failed" in no_ca.stderr and "--ca-file" in no_ca.stderr

    # docker config.json
    env = isolated_env(tmp_path / "a")
    docker_config(Path(env["DOCKER_CONFIG"]), reg.host, "testuser", "testpass")
    ocibuild(*base, "--output", f"docker://{reg.host}/auth/docker:1", env=env)
    # a credential helper on PATH named by credHelpers
    env = isolated_env(tmp_path / "b")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    credential_helper(bin_dir, "ocitest", reg.host, "testuser", "testpass")
    docker_config(Path(env["DOCKER_CONFIG"]), reg.host, None, None, cred_helpers={reg.host: "ocitest"})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    ocibuild(*base, "--output", f"docker://{reg.host}/auth/helper:1", env=env)
    # containers auth.json
    env = isolated_env(tmp_path / "c")
    env["REGISTRY_AUTH_FILE"] = str(containers_auth(tmp_path / "c", reg.host, "testuser", "testpass"))
    ocibuild(*base, "--output", f"docker://{reg.host}/auth/podman:1", env=env)
    # explicit --creds, with --debug: the secret never shows
    env = isolated_env(tmp_path / "d")
    debug = ocibuild(*base, "--creds", "testuser:testpass", "--debug", "--output",
                     f"docker://{reg.host}/auth/flag:1", env=env)
    assert "testpass" not in debug.stdout + debug.stderr and "Authorization" not in debug.stderr
    assert "debug:" in debug.stderr

    for repo in ("docker", "helper", "podman", "flag"):
        skopeo("inspect", *reg.skopeo_args(), f"docker://{reg.host}/auth/{repo}:1")

    wrong = ocibuild(*base, "--creds", "testuser:wrong", "--output", f"docker://{reg.host}/auth/x:1",
                     env=isolated_env(tmp_path / "e"), check=False)
    assert wrong.returncode == 1 and "wrong" not in wrong.stderr and "UNAUTHORIZED" in wrong.stderr


def test_login_then_push(tmp_path: Path, tls_registry: Registry, pki: PKI, busybox_layout: Path) -> None:
    reg = tls_registry
    env = isolated_env(tmp_path)
    bad = ocibuild("login", reg.host, "-u", "testuser", "--password-stdin", "--ca-file", pki.ca_cert,
                   env=env, stdin="nope\n", check=False)
    assert bad.returncode == 1 and "refused" in bad.stderr
    assert not (tmp_path / "docker-config" / "config.json").exists()
    ok = ocibuild("login", reg.host, "-u", "testuser", "--password-stdin", "--ca-file", pki.ca_cert,
                  env=env, stdin="testpass\n")
    assert "Login Succeeded" in ok.stdout and "testpass" not in ok.stdout
    config = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert reg.host in config["auths"]
    ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--ca-file", pki.ca_cert,
             "--output", f"docker://{reg.host}/login/app:1", env=env)
    # skopeo reads what we stored (same file format as docker login)
    skopeo("inspect", "--cert-dir", pki.certs_dir, "--authfile", tmp_path / "docker-config" / "config.json",
           f"docker://{reg.host}/login/app:1")


def test_token_auth_caches_tokens_per_scope(tmp_path: Path, token_registry: tuple[Registry, TokenServer],
                                            pki: PKI, busybox_layout: Path) -> None:
    reg, tokens = token_registry
    env = isolated_env(tmp_path)
    anonymous = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--ca-file", pki.ca_cert,
                         "--output", f"docker://{reg.host}/tok/anon:1", env=env, check=False)
    assert (anonymous.returncode == 1 and "UNAUTHORIZED" in anonymous.stderr) or "DENIED" in anonymous.stderr

    mark = tokens.mark()
    ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--ca-file", pki.ca_cert, "--creds",
             "testuser:testpass", "--output", f"docker://{reg.host}/tok/a:1", env=env)
    first = [r["scopes"] for r in tokens.requests_since(mark) if r["status"] == 200]
    assert ["repository:tok/a:pull,push"] in first
    assert len(first) == 1  # one token for all blobs and manifests of one repository and scope

    # base from repo a (pull scope), pushed to repo b (push,pull on b + pull on a for the mount)
    mark = tokens.mark()
    ocibuild("build", HELLO, "--base", f"docker://{reg.host}/tok/a:1", "--ca-file", pki.ca_cert, "--creds",
             "testuser:testpass", "--env", "X=1", "--output", f"docker://{reg.host}/tok/b:1", env=env)
    scopes = [r["scopes"] for r in tokens.requests_since(mark) if r["status"] == 200]
    assert ["repository:tok/a:pull"] in scopes
    assert ["repository:tok/b:pull,push", "repository:tok/a:pull"] in scopes
    assert reg.count("POST", r"/v2/tok/b/blobs/uploads/\?.*mount=") >= 1
    skopeo("inspect", *reg.skopeo_args(), f"docker://{reg.host}/tok/b:1")


def test_registry_killed_mid_upload_then_rerun_completes(tmp_path: Path, registry_factory: RegistryFactory,
                                                         busybox_layout: Path) -> None:
    reg = registry_factory("plain")
    project = tmp_path / "big"
    shutil.copytree(HELLO, project)
    with (project / "weights.bin").open("wb") as f:
        for _ in range(120):
            f.write(os.urandom(1 << 20))
    env = isolated_env(tmp_path)
    target = f"docker://{reg.host}/big/app:1"
    build = ["build", project, "--base", f"oci:{busybox_layout}:busybox", "--compression", "none"]
    ocibuild(*build, "--output", f"oci:{tmp_path / 'local'}:1", env=env)  # fill the cache first
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", *map(str, build), "--output", target], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    uploads_dir = reg.data_dir / "docker/registry/v2/repositories/big/app/_uploads"
    deadline = time.monotonic() + 120
    killed = False
    while time.monotonic() < deadline and proc.poll() is None:
        sizes = [p.stat().st_size for p in uploads_dir.glob("*/data")] if uploads_dir.exists() else []
        if any(s > 10 << 20 for s in sizes):
            reg.kill()
            killed = True
            break
        time.sleep(0.005)
    assert killed, "the upload finished before the registry could be killed"
    time.sleep(1)
    reg.restart()
    proc.communicate(timeout=300)  # it may finish by retrying, or give up with a clear error
    rerun = ocibuild(*build, "--output", target, env=env)
    digest = rerun.stdout.strip()
    pulled = tmp_path / "pulled"
    skopeo_copy(target, f"oci:{pulled}:1", "--src-tls-verify=false", "--preserve-digests")
    validate_layout(pulled)  # every blob's digest and size checked
    assert skopeo_inspect(target, "--tls-verify=false")["Digest"] == digest


def test_retries_on_503_and_dropped_connections(tmp_path: Path, fault_proxy: FaultProxy,
                                                busybox_layout: Path) -> None:
    proxy = fault_proxy
    fault_proxy.fail_next(3, status=503, retry_after="1", match=r"blobs")
    fault_proxy.drop_next(2, match=r"PUT|HEAD")
    fault_proxy.fail_next(1, status=429, retry_after="1", match=r"manifests")
    out = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--output",
                   f"docker://{proxy.host}/flaky/app:1", env=isolated_env(tmp_path))
    statuses = [r["status"] for r in proxy.requests_log()]
    assert statuses.count(503) == 3 and statuses.count(429) == 1 and statuses.count(None) == 2
    assert fault_proxy.pending() == 0
    assert proxy.registry is not None
    assert skopeo_inspect(f"docker://{proxy.registry.host}/flaky/app:1", "--tls-verify=false")["Digest"] == \
        out.stdout.strip()


def test_retry_budget_ends_with_clear_error(tmp_path: Path, fault_proxy: FaultProxy) -> None:
    fault_proxy.fail_next(1000, status=503, retry_after="1")
    client = RegistryClient(retry=RetryPolicy(attempts=4, budget=5, max_delay=1))
    ref = Reference.parse(f"{fault_proxy.host}/x/y:1")
    with pytest.raises(RegistryError, match=r"HTTP 503"):
        client.get_manifest(ref)
    assert 2 <= sum(1 for r in fault_proxy.requests_log() if r["status"] == 503) <= 4


def test_corrupt_blob_is_rejected_and_nothing_stored(tmp_path: Path, fault_proxy: FaultProxy,
                                                     busybox_layout: Path) -> None:
    assert fault_proxy.registry is not None
    push_busybox(fault_proxy.registry, busybox_layout, "c/bb:1")
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{fault_proxy.registry.host}/c/bb:1")
    layer = ImageManifest.from_json(raw.stdout.encode()).layers[0].digest
    fault_proxy.corrupt_blob(str(layer))
    env = isolated_env(tmp_path)
    out = ocibuild("build", HELLO, "--base", f"docker://{fault_proxy.host}/c/bb:1", "--output",
                   f"oci:{tmp_path / 'o'}:t", env=env, check=False)
    assert out.returncode == 1 and "corrupt" in out.stderr and str(layer) in out.stderr
    cache = Path(env["OCIBUILD_CACHE"])
    assert not (cache / "blobs/sha256" / layer.hex).exists() and not list((cache / "tmp").iterdir())
    assert not (tmp_path / "o").exists()


def test_download_resumes_with_range(tmp_path: Path, fault_proxy: FaultProxy) -> None:
    reg = fault_proxy.registry
    assert reg is not None
    data = os.urandom(3 << 20)
    store = ContentStore(tmp_path / "src")
    digest = store.put_bytes(data)
    desc = Descriptor(media_type=MediaType.OCI_LAYER, digest=digest, size=len(data))
    client = RegistryClient(tls=TLSConfig())
    assert client.push_blob(Repository(host=reg.host, name="r/blob"), desc, store) == "uploaded"
    fault_proxy.truncate_next(1, after=1 << 20, match=r"GET /v2/r/blob/blobs/")
    dest = ContentStore(tmp_path / "dest")
    assert client.fetch_blob(Repository(host=fault_proxy.host, name="r/blob"), desc, dest) == "downloaded"
    assert dest.read_bytes(digest) == data
    gets = [r for r in fault_proxy.requests_log() if r["method"] == "GET" and "/blobs/" in r["path"]]
    assert len(gets) == 2 and gets[1]["status"] == 206


def test_chunked_upload_fallback_path(tmp_path: Path, plain_registry: Registry,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import ocibuild.registry.client as client_module

    monkeypatch.setattr(client_module, "CHUNK_UPLOAD", 1 << 20)
    data = os.urandom((5 << 20) + 123)
    store = ContentStore(tmp_path)
    digest = store.put_bytes(data)
    desc = Descriptor(media_type=MediaType.OCI_LAYER, digest=digest, size=len(data))
    mark = plain_registry.mark()
    client = RegistryClient()
    repo = Repository(host=plain_registry.host, name="chunked/x")
    assert client.push_blob(repo, desc, store, chunked=True) == "uploaded"
    assert plain_registry.count("PATCH", r"/v2/chunked/x/blobs/uploads/", since=mark) == 6
    assert client.push_blob(repo, desc, store) == "exists"
    fetched = ContentStore(tmp_path / "f")
    client.fetch_blob(repo, desc, fetched)
    assert fetched.read_bytes(digest) == data


def test_unknown_repository_and_tag_are_clear_errors(tmp_path: Path, plain_registry: Registry,
                                                     busybox_layout: Path) -> None:
    push_busybox(plain_registry, busybox_layout, "known/bb:1")
    env = isolated_env(tmp_path)
    for ref, fragment in ((f"{plain_registry.host}/nope/bb:1", "manifest '1' of"),
                          (f"{plain_registry.host}/known/bb:2", "manifest '2' of")):
        out = ocibuild("build", HELLO, "--base", ref, "--output", f"oci:{tmp_path / 'o'}:t", env=env, check=False)
        assert out.returncode == 1 and fragment in out.stderr and "MANIFEST_UNKNOWN" in out.stderr, out.stderr
        assert ref.rsplit(":", 1)[0] in out.stderr and "check the tag or digest" in out.stderr
        assert "Traceback" not in out.stderr


def test_certs_d_folder_supplies_the_ca(tmp_path: Path, tls_registry: Registry, pki: PKI) -> None:
    """The per-host certs.d layout (as in /etc/containers/certs.d/HOST:PORT/ca.crt) is honoured."""
    from ocibuild.registry import Credentials, StaticCredentials

    certs = tmp_path / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    shutil.copy(pki.ca_cert, certs / "ca.crt")
    data = os.urandom(1000)
    store = ContentStore(tmp_path / "s")
    desc = Descriptor(media_type=MediaType.OCI_LAYER, digest=store.put_bytes(data), size=len(data))
    creds = StaticCredentials(Credentials(username="testuser", password="testpass"))
    client = RegistryClient(credentials=creds, tls=TLSConfig(certs_dirs=(tmp_path / "certs.d",)))
    repo = Repository(host=tls_registry.host, name="certsd/x")
    assert client.push_blob(repo, desc, store) in ("uploaded", "exists")
    without = RegistryClient(credentials=creds, tls=TLSConfig(certs_dirs=(tmp_path / "nothing",)))
    with pytest.raises(RegistryError, match="certificate verify failed"):
        without.blob_exists(repo, desc.digest)

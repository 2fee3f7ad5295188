"""``--cache-repo``: a registry repository as the cache every machine shares (real distribution
registries on 127.0.0.1, real PyPI wheels, real uv; an in-process server only for a registry that
answers 500 to everything)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.credentials import DEFAULT_PASSWORD, DEFAULT_USER
from harness.pki import PKI
from harness.registry import Registry
from harness.runtime import run_image
from harness.tokens import TokenServer
from harness.validate import validate_layout

from ocibuild.cacherepo import ARTIFACT_TYPE, RECORD_ANNOTATION, cache_tag, parse_cache_repo
from ocibuild.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
APP = Path(__file__).parent / "data" / "sklearn-app"
HELLO = REPO / "examples" / "hello"
PREDICTION = "prediction: 1 proba: 0.997"
pytestmark = pytest.mark.slow


def env_for(tmp: Path, store: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR",
                                                             "OCIBUILD_CACHE_REPO")}
    env.update({"DOCKER_CONFIG": str(tmp / "docker-config"), "XDG_CONFIG_HOME": str(tmp / "xdg"),
                "OCIBUILD_CACHE": str(tmp / store), "SOURCE_DATE_EPOCH": "1700000000"})
    env.update(extra)
    return env


def ocibuild(*args: str | Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning: cache repository" in line]


def cache_records(reg: Registry, repo: str) -> dict[str, dict[str, object]]:
    """tag -> the manifest of every record in the cache repository."""
    http = reg.session()
    tags = http.get(f"{reg.url}/v2/{repo}/tags/list", timeout=30).json()["tags"] or []
    out = {}
    for tag in tags:
        resp = http.get(f"{reg.url}/v2/{repo}/manifests/{tag}", timeout=30,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        out[tag] = resp.json()
    return out


def record_of(manifest: dict[str, object]) -> dict[str, object]:
    value = json.loads(manifest["annotations"][RECORD_ANNOTATION])  # type: ignore[index]
    return value if isinstance(value, dict) else {}


def test_second_worker_builds_nothing_and_gets_the_same_digest(tmp_path: Path, debian_python_layout: Path,
                                                               plain_registry: Registry) -> None:
    reg = plain_registry
    app = shutil.copytree(APP, tmp_path / "app")
    cache = f"{reg.host}/ci/cache"
    args = ["build", app, "--base", f"oci:{debian_python_layout}:bookworm-py", "--json", "--cache-repo", cache]

    first = ocibuild(*args, "--output", f"docker://{reg.host}/team/app:w1", env=env_for(tmp_path, "store1"))
    one = json.loads(first.stdout)
    assert not warnings(first.stderr), first.stderr
    records = cache_records(reg, "ci/cache")
    assert records and all(m["artifactType"] == ARTIFACT_TYPE for m in records.values())
    recorded_layers = {str(x["digest"]) for m in records.values() for x in m["layers"]}  # type: ignore[attr-defined]
    assert {str(x["digest"]) for x in one["layers"]} <= recorded_layers  # every layer the build made is there

    # worker 2: an empty store; another output repository on the same registry
    mark = len(reg.requests_log())
    second = ocibuild(*args, "--output", f"docker://{reg.host}/team/other:w2", env=env_for(tmp_path, "store2"))
    two = json.loads(second.stdout)
    assert two["digest"] == one["digest"]
    assert [x["cached"] for x in two["layers"]] == [True] * len(two["layers"]), two["layers"]
    assert two["python"]["resolved_from_cache"] is True and two["python"]["downloaded"] == 0
    assert not (tmp_path / "store2" / "wheels").exists() or not any((tmp_path / "store2" / "wheels").iterdir())
    log = reg.requests_log()[mark:]
    uploaded = [r for r in log if r["method"] == "PUT" and "/blobs/uploads/" in r["route"]]
    deps = {str(x["digest"]) for x in two["layers"] if str(x["label"]).startswith("py:")}
    assert not [r for r in uploaded if any(d in r["path"].replace("%3A", ":") for d in deps)], uploaded
    mounts = [r for r in log if r["method"] == "POST" and "mount" in r["query"]]
    assert {r["query"]["mount"][0] for r in mounts} >= deps
    assert all(r["query"]["from"] == ["ci/cache"] for r in mounts)

    # the image the second worker pushed runs and predicts
    out = tmp_path / "pulled"
    subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{reg.host}/team/other:w2",
                    f"oci:{out}:v1"], check=True, capture_output=True)
    validate_layout(out)
    run = run_image(out, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == PREDICTION

    # a record pointing at a missing blob is ignored, the layer built again, the record written again
    numpy = next(x for x in two["layers"] if x["label"] == "py:numpy")
    tag, manifest = next((t, m) for t, m in cache_records(reg, "ci/cache").items()
                         if record_of(m).get("digest") == numpy["digest"] and "diff_id" in record_of(m))
    record = json.loads(manifest["annotations"][RECORD_ANNOTATION])  # type: ignore[index]
    record["digest"] = "sha256:" + "0" * 64
    bad = {**manifest, "layers": [manifest["config"]],
           "annotations": {**manifest["annotations"], RECORD_ANNOTATION: json.dumps(record)}}  # type: ignore[dict-item]
    put = reg.session().put(f"{reg.url}/v2/ci/cache/manifests/{tag}", data=json.dumps(bad).encode(), timeout=30,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 201, put.text
    third = ocibuild(*args, "--output", f"oci:{tmp_path / 'w3'}:v1", env=env_for(tmp_path, "store3"))
    three = json.loads(third.stdout)
    assert three["digest"] == one["digest"]
    assert [x["label"] for x in three["layers"] if not x["cached"]] == ["py:numpy"]
    validate_layout(tmp_path / "w3")
    fixed = json.loads(cache_records(reg, "ci/cache")[tag]["annotations"][RECORD_ANNOTATION])  # type: ignore[index]
    assert fixed["digest"] == numpy["digest"]

    # records of the wrong shape (a resolution, wheel choices, the base's interpreter, SBOM listings) are
    # ignored: the fourth worker resolves and downloads again, and still gets the same image
    damaged = 0
    for t, m in cache_records(reg, "ci/cache").items():
        value = json.loads(m["annotations"][RECORD_ANNOTATION])  # type: ignore[index]
        if isinstance(value, list) and value and isinstance(value[0], dict):
            bad_value: object = [1, 2, 3]
        elif isinstance(value, list):
            bad_value = [["x"]]
        elif "filename" in value:
            bad_value = {**value, "filename": "../../evil.whl"}
        elif "interpreter" in value:
            bad_value = {**value, "interpreter": 5}
        else:
            continue
        damaged += 1
        doc = {**m, "annotations": {**m["annotations"], RECORD_ANNOTATION: json.dumps(bad_value)}}  # type: ignore[dict-item]
        put = reg.session().put(f"{reg.url}/v2/ci/cache/manifests/{t}", data=json.dumps(doc).encode(), timeout=30,
                                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assert put.status_code == 201, put.text
    assert damaged >= 8
    fourth = ocibuild(*args, "--output", f"oci:{tmp_path / 'w4'}:v1", env=env_for(tmp_path, "store4"))
    four = json.loads(fourth.stdout)
    assert four["digest"] == one["digest"] and "Traceback" not in fourth.stderr
    assert four["python"]["resolved_from_cache"] is False and four["python"]["downloaded"] > 0
    assert not list((tmp_path / "store4").rglob("evil.whl")) and not (tmp_path / "evil.whl").exists()


def test_the_cache_repo_from_the_build_file_and_the_environment(tmp_path: Path, busybox_layout: Path,
                                                                plain_registry: Registry) -> None:
    reg = plain_registry
    project = shutil.copytree(HELLO, tmp_path / "hello")
    toml = project / "ocibuild.toml"
    toml.write_text(toml.read_text() + f'\ncache_repo = "{reg.host}/file/cache"\n')
    base = ["build", project, "--base", f"oci:{busybox_layout}:busybox", "--json"]
    ocibuild(*base, "--output", f"oci:{tmp_path / 'a'}:v1", env=env_for(tmp_path, "s1"))
    assert cache_records(reg, "file/cache")
    # the environment wins over the build file, the flag over both; "none" turns it off
    ocibuild(*base, "--output", f"oci:{tmp_path / 'b'}:v1",
             env=env_for(tmp_path, "s2", OCIBUILD_CACHE_REPO=f"{reg.host}/env/cache"))
    assert cache_records(reg, "env/cache")
    plan = json.loads(ocibuild(*base[:-1], "--print-plan", "--cache-repo", f"{reg.host}/flag/cache",
                               env=env_for(tmp_path, "s3", OCIBUILD_CACHE_REPO=f"{reg.host}/env/cache")).stdout)
    assert plan["cache_repo"] == f"{reg.host}/flag/cache"
    off = json.loads(ocibuild(*base[:-1], "--print-plan", "--cache-repo", "none", env=env_for(tmp_path, "s3")).stdout)
    assert off["cache_repo"] is None
    # a build from another empty store takes the app layer from the cache (the env's repository)
    again = json.loads(ocibuild(*base, "--output", f"oci:{tmp_path / 'c'}:v1",
                                env=env_for(tmp_path, "s4", OCIBUILD_CACHE_REPO=f"{reg.host}/env/cache")).stdout)
    assert all(x["cached"] for x in again["layers"])
    validate_layout(tmp_path / "c")  # the layer was fetched from the cache repository into the layout


def test_the_default_debian_base_comes_from_the_cache_with_its_lock(tmp_path: Path,
                                                                   plain_registry: Registry) -> None:
    """The implicit Debian base: the second worker resolves no package and downloads no .deb."""
    import re

    project = tmp_path / "py"
    project.mkdir()
    (project / "main.py").write_text("print('hello from the cache')\n")
    (project / "ocibuild.toml").write_text('entrypoint = ["python3", "/app/main.py"]\n')
    cache = f"{plain_registry.host}/deb/cache"
    args = ["build", project, "--json", "--cache-repo", cache]
    one = json.loads(ocibuild(*args, "--output", f"oci:{tmp_path / 'one'}:v1", env=env_for(tmp_path, "d1")).stdout)
    two = json.loads(ocibuild(*args, "--output", f"oci:{tmp_path / 'two'}:v1", env=env_for(tmp_path, "d2")).stdout)
    assert two["digest"] == one["digest"] and two["base"] == one["base"]
    (lock,) = (tmp_path / "d2" / "debian").glob("*.lock")
    assert lock.read_text() == next((tmp_path / "d1" / "debian").glob("*.lock")).read_text()
    debs = re.findall(r'sha256 = "([0-9a-f]{64})"', lock.read_text())
    assert len(debs) > 10
    assert not [d for d in debs if (tmp_path / "d2" / "blobs" / "sha256" / d).exists()]  # no .deb fetched
    assert [d for d in debs if (tmp_path / "d1" / "blobs" / "sha256" / d).exists()]  # (the first worker did)
    validate_layout(tmp_path / "two")
    run = run_image(tmp_path / "two", "v1")
    assert run.returncode == 0 and run.stdout.strip() == "hello from the cache", run.stderr


def test_a_record_too_large_to_share_is_kept_local_and_writes_go_on(tmp_path: Path, busybox_layout: Path,
                                                                     plain_registry: Registry) -> None:
    """The SBOM's file listing of a 30,000-file layer is over the 1 MiB a shared record may have: it
    stays in the local store, and the other records (the layer itself) are written without a warning."""
    project = tmp_path / "many"
    files = project / "files"
    files.mkdir(parents=True)
    for i in range(30_000):
        (files / f"f{i:05d}.txt").write_bytes(b"")
    (project / "ocibuild.toml").write_text('[[layers]]\nsrc = "files"\ndest = "/data"\n')
    cache = f"{plain_registry.host}/big/cache"
    args = ["build", project, "--base", f"oci:{busybox_layout}:busybox", "--json", "--cache-repo", cache]
    first = ocibuild(*args, "--output", f"oci:{tmp_path / 'a'}:v1", env=env_for(tmp_path, "s1"))
    assert not warnings(first.stderr), first.stderr
    local = [p for p in (tmp_path / "s1" / "selectors").glob("imagefs-walk-*") if p.stat().st_size > 1 << 20]
    assert local  # the listing exists locally and is over the limit
    assert all(len(m["annotations"][RECORD_ANNOTATION]) <= 1 << 20  # type: ignore[index]
               for m in cache_records(plain_registry, "big/cache").values())
    second = json.loads(ocibuild(*args, "--output", f"oci:{tmp_path / 'b'}:v1", env=env_for(tmp_path, "s2")).stdout)
    assert all(x["cached"] for x in second["layers"])


def test_a_batch_project_without_a_cache_repo_shares_nothing(tmp_path: Path, busybox_layout: Path,
                                                               plain_registry: Registry) -> None:
    """In one batch (one store), a project's cache_repo is its own: a project without one neither reads
    from nor writes to another project's cache."""
    projects = []
    for name, cache in (("with", f'cache_repo = "{plain_registry.host}/team-a/cache"\n'), ("without", "")):
        project = tmp_path / name
        project.mkdir()
        (project / "secret.txt").write_text(f"only {name}\n")
        (project / "ocibuild.toml").write_text(cache + '[[layers]]\nsrc = "secret.txt"\ndest = "/secret.txt"\n')
        projects.append(project)
    result = json.loads(ocibuild("build", *projects, "--base", f"oci:{busybox_layout}:busybox", "--json", "--output",
                                 f"oci:{tmp_path}/out/{{name}}:v1", env=env_for(tmp_path, "s")).stdout)
    layers = {r["name"]: {x["digest"] for x in r["layers"]} for r in result["results"]}
    shared = {str(x["digest"]) for m in cache_records(plain_registry, "team-a/cache").values()
              for x in m["layers"]}  # type: ignore[attr-defined]
    assert layers["with"] <= shared
    assert not layers["without"] & shared


@pytest.mark.parametrize("text, message", [
    ("cache", "name the registry too"),
    ("127.0.0.1:5000/cache:v1", "without a tag or digest"),
    ("127.0.0.1:5000/Cache", "127.0.0.1:5000/Cache"),
])
def test_bad_cache_repo_is_one_error_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"name|without|invalid|must"):
        parse_cache_repo(text)
    proc = ocibuild("build", HELLO, "--base", "scratch", "--output", f"oci:{tmp_path / 'o'}:v1", "--cache-repo",
                    text, env=env_for(tmp_path, "s"), check=False)
    assert proc.returncode == 2 or proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "--cache-repo" in lines[0] and message in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


class _Broken(http.server.BaseHTTPRequestHandler):
    """A registry that answers every request with HTTP 500."""

    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        body = b'{"errors":[{"code":"UNKNOWN","message":"internal error"}]}'
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = _fail

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def broken_registry() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("kind", ["down", "500"])
def test_an_unusable_cache_repo_is_one_warning_and_the_build_succeeds(tmp_path: Path, busybox_layout: Path,
                                                                       broken_registry: str, kind: str) -> None:
    host = f"127.0.0.1:{_free_port()}" if kind == "down" else broken_registry
    proc = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--json", "--cache-repo",
                    f"{host}/cache", "--output", f"oci:{tmp_path / 'out'}:v1", env=env_for(tmp_path, "s"))
    result = json.loads(proc.stdout)
    assert len(warnings(proc.stderr)) == 1, proc.stderr
    assert f"{host}/cache" in warnings(proc.stderr)[0] and "building without it" in warnings(proc.stderr)[0]
    assert not [x for x in result["layers"] if x["cached"]]
    validate_layout(tmp_path / "out")
    # the same build without a cache gives the same image
    plain = json.loads(ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--json",
                                "--output", f"oci:{tmp_path / 'ref'}:v1", env=env_for(tmp_path, "s0")).stdout)
    assert plain["digest"] == result["digest"]


def test_pull_only_credentials_read_the_cache_and_skip_writes(tmp_path: Path, busybox_layout: Path,
                                                              token_registry: tuple[Registry, TokenServer],
                                                              pki: PKI) -> None:
    reg, tokens = token_registry
    tokens.add_user("reader", "reader-pass", ["pull"])
    project = tmp_path / "two-layers"
    (project / "static").mkdir(parents=True)
    (project / "static" / "index.html").write_text("<p>hello</p>\n")
    (project / "app.sh").write_text("echo hello\n")
    (project / "ocibuild.toml").write_text('entrypoint = ["/bin/sh", "/app/app.sh"]\n'
                                           '[[layers]]\nsrc = "static"\ndest = "/app/static"\n'
                                           '[[layers]]\nsrc = "app.sh"\ndest = "/app/app.sh"\n')
    cache = f"{reg.host}/pull/cache"
    common = ["--base", f"oci:{busybox_layout}:busybox", "--json", "--cache-repo", cache, "--ca-file", pki.ca_cert]
    writer = ocibuild("build", project, *common, "--creds", f"{DEFAULT_USER}:{DEFAULT_PASSWORD}",
                      "--output", f"oci:{tmp_path / 'w'}:v1", env=env_for(tmp_path, "s1"))
    assert not warnings(writer.stderr), writer.stderr
    before = tags_of(reg, tokens, pki, "pull/cache")
    assert before
    (project / "app.sh").write_text("echo hello again\n")  # a new layer for app.sh; static/ is unchanged
    reader = ocibuild("build", project, *common, "--creds", "reader:reader-pass",
                      "--output", f"oci:{tmp_path / 'r'}:v1", env=env_for(tmp_path, "s2"))
    result = json.loads(reader.stdout)
    found = warnings(reader.stderr)
    assert len(found) == 1 and "allow pulls only" in found[0], reader.stderr
    assert "reader-pass" not in reader.stderr
    validate_layout(tmp_path / "r")
    # reads worked: the unchanged layer came from the cache, the changed one was built
    assert {x["label"]: x["cached"] for x in result["layers"]} == {"/app/static": True, "/app/app.sh": False}
    # and nothing was written: the cache holds the writer's records only
    assert tags_of(reg, tokens, pki, "pull/cache") == before


def tags_of(reg: Registry, tokens: TokenServer, pki: PKI, repo: str) -> list[str]:
    http = reg.session()
    token = http.get(tokens.realm, verify=reg.verify, auth=(DEFAULT_USER, DEFAULT_PASSWORD), timeout=30,
                     params={"service": "test-registry", "scope": f"repository:{repo}:pull"}).json()
    http.headers["Authorization"] = f"Bearer {token.get('token') or token.get('access_token')}"
    return sorted(http.get(f"{reg.url}/v2/{repo}/tags/list", timeout=30, verify=reg.verify).json()["tags"])


def test_cache_tags_are_valid_tags() -> None:
    import re

    for key in ("resolve-" + "a" * 64, "x" * 1000, "wheel-é"):
        assert re.fullmatch(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", cache_tag(key))

"""`ocibuild resolve` against a real registry, checked by skopeo and run by podman (`run --mount
type=image` and `kube play`), on the examples/model-server project."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from harness.cli import ocibuild
from harness.net import free_port
from harness.proc import run, skopeo
from harness.registry import Registry
from harness.runtime import podman, podman_env
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "model-server"
ENV = {"SOURCE_DATE_EPOCH": "1700000000"}
pytestmark = pytest.mark.slow

EXTRA_POD = """\
# a second file naming the same project: it is built once
apiVersion: v1
kind: Pod
metadata:
  name: model-server-check   # kept as written
spec:
  containers:
    - name: check
      image: "ocibuild://../.."
      args: ["--check"]
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store for the module: the example's Debian base is assembled once."""
    return tmp_path_factory.mktemp("resolve-cache")


def copy_example(root: Path) -> Path:
    project = root / "model-server"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("weights", "weights.lock", "__pycache__"))
    run([sys.executable, "make_weights.py"], cwd=project, what="make_weights.py")
    return project


def host_digest(folder: Path) -> tuple[str, dict[str, str]]:
    """What the server's /healthz reports for ``folder``: per-file sha256 and the digest of the listing."""
    files = {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(folder.rglob("*")) if p.is_file()}
    listing = "".join(f"{sha}  {path}\n" for path, sha in sorted(files.items()))
    return hashlib.sha256(listing.encode()).hexdigest(), files


@pytest.fixture
def podman_state(tmp_path: Path) -> Iterator[dict[str, str]]:
    """podman with its state under tmp_path; kube play's network config there too (not in /etc)."""
    state = tmp_path / "podman"
    env = podman_env(state)
    conf = Path(env["CONTAINERS_CONF"])
    conf.write_text(conf.read_text() + f'[network]\nnetwork_config_dir = "{state / "cni"}"\n')
    yield env
    podman(env, "pod", "rm", "-f", "-a", check=False, timeout=120)
    podman(env, "rm", "-f", "-a", check=False, timeout=120)
    podman(env, "volume", "rm", "-f", "-a", check=False)
    podman(env, "network", "rm", "-f", "podman-default-kube-network", check=False)
    podman(env, "system", "reset", "--force", check=False, timeout=300)


def wait_healthz(port: int, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if answer.status_code == 200:
                body: dict[str, Any] = answer.json()
                return body
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"no answer on 127.0.0.1:{port}/healthz within {timeout}s: {last}")


def for_podman_43(text: str, env: dict[str, str], port: int) -> tuple[str, list[str]]:
    """podman 4.3's kube play refuses Kubernetes image volumes (supported from podman 5.3): each becomes a
    claim on a podman volume of the ``image`` driver over the same model image; the pod's port goes to
    ``port`` on the host. Returns the YAML and the volumes made."""
    yaml = YAML(typ="safe")
    docs = [d for d in yaml.load_all(text) if d]
    volumes = []
    for doc in docs:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") if doc["kind"] == "Deployment" else spec
        for volume in pod.get("volumes", []) if doc["kind"] in ("Deployment", "Pod") else []:
            if "image" in volume:
                ref = volume.pop("image")["reference"]
                name = "model-" + hashlib.sha256(ref.encode()).hexdigest()[:12]
                podman(env, "pull", "-q", "--tls-verify=false", ref)
                podman(env, "volume", "create", "--driver", "image", "--opt", f"image={ref}", name)
                volume["persistentVolumeClaim"] = {"claimName": name, "readOnly": True}
                volumes.append(name)
        for container in pod.get("containers", []) if doc["kind"] in ("Deployment", "Pod") else []:
            for p in container.get("ports", []):
                p["hostPort"] = port
    out = io.StringIO()
    yaml.dump_all([d for d in docs if d["kind"] in ("Deployment", "Pod")], out)
    return out.getvalue(), volumes


def test_resolve_builds_once_pushes_and_runs_under_podman(tmp_path: Path, cache: Path, plain_registry: Registry,
                                                           podman_state: dict[str, str]) -> None:
    reg, env = plain_registry, podman_state
    project = copy_example(tmp_path)
    (project / "k8s" / "extra").mkdir()
    (project / "k8s" / "extra" / "pod.yaml").write_text(EXTRA_POD)
    prefix = f"{reg.host}/team{os.getpid()}"
    lock, result = tmp_path / "images.lock", tmp_path / "result.json"
    proc = ocibuild("resolve", "-f", project / "k8s", "--images-lock", lock, "--result-json", result,
                    cache=cache, env={**ENV, "OCIBUILD_REPO": prefix})

    # one build of the project, though three references name it (its app twice, its model once)
    builds = [line for line in proc.stderr.splitlines() if line.startswith("build ")]
    assert builds == [f"build   {project} -> {prefix}/model-server"], proc.stderr
    images = json.loads(lock.read_text())["images"]
    assert json.loads(result.read_text()) == json.loads(lock.read_text())
    app = next(i["image"] for i in images if i["kind"] == "app")
    model = next(i["image"] for i in images if i["kind"] == "model")
    assert re.fullmatch(rf"{re.escape(prefix)}/model-server@sha256:[0-9a-f]{{64}}", app)
    assert re.fullmatch(rf"{re.escape(prefix)}/model-server-weights@sha256:[0-9a-f]{{64}}", model)

    # stdout is exactly the YAML as written, each reference replaced by its digest reference
    deployment = (project / "k8s" / "deployment.yaml").read_text()
    assert deployment.count("image: ocibuild://..\n") == 1 and deployment.count("reference: ocibuild-model://") == 1
    expected = [deployment.replace("image: ocibuild://..\n", f"image: {app}\n")
                .replace("reference: ocibuild-model://../weights", f"reference: {model}"),
                EXTRA_POD.replace("ocibuild://../..", app)]
    assert proc.stdout == "---\n".join(expected)
    assert "# The model server on Kubernetes" in proc.stdout  # comments kept (references in them too)
    assert not re.search(r"^[^#]*ocibuild(-model)?://", proc.stdout, re.MULTILINE)

    # what it names exists: skopeo resolves both, and the app's annotation names the same model image
    for ref in (app, model):
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{app}").stdout)
    assert manifest["annotations"]["org.ocibuild.model.weights"] == model

    # podman run --mount type=image: the app sees the model's files with the right bytes
    digest, files = host_digest(project / "weights")
    port = free_port()
    podman(env, "pull", "-q", "--tls-verify=false", model)
    podman(env, "run", "-d", "--name", "srv", "--network", "host", "-e", f"PORT={port}", "--tls-verify=false",
           "--mount", f"type=image,source={model},destination=/mnt/models/weights", app)
    try:
        health = wait_healthz(port)
        assert health["model"] == digest and health["files"] == files, health  # hashed inside the container
        answer = requests.post(f"http://127.0.0.1:{port}/predict", json={"instances": ["great, I love it"]},
                               timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        podman(env, "stop", "-t", "20", "srv", check=False)
    state = podman(env, "inspect", "srv", "--format", "{{.State.ExitCode}}").stdout.strip()
    assert state == "0"  # SIGTERM: a clean exit
    podman(env, "rm", "-f", "srv")

    # podman kube play of the resolved Deployment starts the app, which answers over HTTP
    played = tmp_path / "played.yaml"
    port = free_port()
    text, volumes = for_podman_43(proc.stdout, env, port)
    played.write_text(text)
    podman(env, "kube", "play", "--tls-verify=false", str(played), timeout=300)
    try:
        health = wait_healthz(port)
        assert health["model"] == digest, health
    finally:
        podman(env, "pod", "stop", "-t", "30", "-a", check=False, timeout=120)
        podman(env, "pod", "rm", "-f", "-a", check=False, timeout=120)
    for name in volumes:
        podman(env, "volume", "rm", name)


def scratch_project(root: Path, name: str = "svc") -> Path:
    project = root / name
    (project / "weights").mkdir(parents=True)
    (project / "weights" / "w.bin").write_bytes(b"\x00" * 4096)
    (project / "app.sh").write_text("echo hi\n")
    (project / "ocibuild.toml").write_text(
        'base = "scratch"\n[[layers]]\nsrc = "app.sh"\ndest = "/app/app.sh"\n'
        '[[models]]\nname = "weights"\nsrc = "weights"\n')
    return project


def test_resolve_output_dir_and_kserve_storage_uri(tmp_path: Path, plain_registry: Registry) -> None:
    reg = plain_registry
    project = scratch_project(tmp_path)
    k8s = project / "k8s"
    (k8s / "serving").mkdir(parents=True)
    (k8s / "job.yml").write_text("kind: Job  # a job\nspec: {template: {spec: {containers: [{image: 'ocibuild://..'}]}}}\n")
    isvc = ("apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\nspec:\n  predictor:\n    model:\n"
            "      storageUri: ocibuild-model://../../weights   # the modelcar\n")
    (k8s / "serving" / "isvc.yaml").write_text(isvc)
    out = tmp_path / "deploy"
    prefix = f"{reg.host}/only-models{os.getpid()}"
    proc = ocibuild("resolve", "-f", k8s, "--repo", prefix, "--output-dir", out, cache=tmp_path / "cache", env=ENV)
    assert proc.stdout == ""
    resolved = (out / "serving" / "isvc.yaml").read_text()
    match = re.search(rf"storageUri: oci://({re.escape(prefix)}/svc-weights@sha256:[0-9a-f]{{64}})   # the modelcar",
                      resolved)
    assert match, resolved
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{match.group(1)}").stdout)
    assert raw["layers"][0]["annotations"]["org.cncf.model.filepath"] == "w.bin"
    job = (out / "job.yml").read_text()
    assert re.fullmatch(rf"kind: Job  # a job\nspec: {{template: {{spec: {{containers: \[{{image: "
                        rf"'{re.escape(prefix)}/svc@sha256:[0-9a-f]{{64}}'}}\]}}}}}}\n", job), job


@pytest.mark.parametrize(("yaml_text", "extra", "fragment"), [
    ("image: ocibuild://..\n", [], "no registry to push to"),
    ("image: ocibuild-model://../nope\n", ["--repo", "127.0.0.1:1/x"], "has no model 'nope'"),
    ("image: ocibuild://../missing\n", ["--repo", "127.0.0.1:1/x"], "missing"),
    ("a: [unclosed\n", ["--repo", "127.0.0.1:1/x"], "k8s.yaml"),
    ("image: ocibuild://..\n", ["--repo", "not a repo"], "--repo"),
])
def test_resolve_errors_are_one_line(tmp_path: Path, yaml_text: str, extra: list[str], fragment: str) -> None:
    project = scratch_project(tmp_path)
    (project / "k8s").mkdir()
    (project / "k8s" / "k8s.yaml").write_text(yaml_text)
    env = {k: v for k, v in os.environ.items() if k != "OCIBUILD_REPO"}
    env.update(ENV)
    os.environ.pop("OCIBUILD_REPO", None)
    proc = ocibuild("resolve", "-f", project / "k8s", *extra, cache=tmp_path / "cache", env=env, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and lines and lines[-1].startswith("ocibuild: error: "), proc.stderr
    assert fragment in lines[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""

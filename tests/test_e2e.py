"""End to end for ML deployment: the iris model server pushed to a real registry, pulled and run by podman,
answering over HTTP; a code edit re-uploads only the code layer, never a 1 GB weights file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from harness.cli import ocibuild as run_cli
from harness.files import dist_infos, image_paths
from harness.net import wait_http
from harness.registry import Registry
from harness.runtime import podman as run_podman

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris-server"
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iris(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example with its model trained (scikit-learn on this machine, data set bundled)."""
    app = Path(shutil.copytree(IRIS, tmp_path_factory.mktemp("iris") / "app"))
    subprocess.run([sys.executable, str(app / "train.py")], check=True, capture_output=True, timeout=300)
    assert (app / "model" / "model.joblib").is_file()
    return app


def ocibuild(*args: str | Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000"}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    return proc


def test_pushed_image_pulled_and_run_by_podman(tmp_path: Path, iris: Path, plain_registry: Registry,
                                               podman: dict[str, str]) -> None:
    target = f"{plain_registry.host}/e2e/iris:1"
    ocibuild("build", iris, "--platform", "linux/amd64", "--output", f"docker://{target}", cache=tmp_path / "c")
    name = f"iris-e2e-{os.getpid()}"
    run_podman(podman, "run", "-d", "--name", name, "--network", "host", "--tls-verify=false",
               "-e", "PORT=18080", target)
    try:
        assert json.loads(wait_http("http://127.0.0.1:18080/healthz"))["status"] == "ok"
        req = urllib.request.Request("http://127.0.0.1:18080/predict", method="POST",
                                     data=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}).encode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read()) == {"predictions": ["setosa"]}
        user = run_podman(podman, "inspect", "--format", "{{.Config.User}}", name).stdout.strip()
        assert user == "65532"  # non-root, from the Debian base
        run_podman(podman, "stop", "-t", "20", name)  # SIGTERM: the server exits by itself, with code 0
        code = run_podman(podman, "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        assert code == "0"
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=podman, capture_output=True, check=False)


def test_code_edit_reuploads_only_code_never_the_weights(tmp_path: Path, iris: Path,
                                                         plain_registry: Registry) -> None:
    app = Path(shutil.copytree(iris, tmp_path / "app"))
    with (app / "model" / "weights.safetensors").open("wb") as f:
        f.truncate(1 << 30)  # 1 GB (sparse): its own layer
    reg = plain_registry
    target = f"docker://{reg.host}/e2e/weights:1"
    first = ocibuild("build", app, "--platform", "linux/amd64", "--output", target, cache=tmp_path / "c").stdout
    assert re.search(r"^layer\s+model:weights.safetensors\s+built", first, re.MULTILINE), first
    (app / "server.py").write_text((app / "server.py").read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    mark = reg.mark()
    second = ocibuild("build", app, "--platform", "linux/amd64", "--output", target, cache=tmp_path / "c").stdout
    assert re.search(r"^layer\s+model:weights.safetensors\s+cached", second, re.MULTILINE)
    assert re.search(r"^layer\s+code\s+built", second, re.MULTILINE)
    uploads = reg.count("PUT", r"/blobs/uploads/.*[?&]digest=", since=mark)
    # the code layer and the config, and the new SBOM and provenance (they name the new code layer);
    # the weights and everything else: HEAD says exists
    assert uploads == 4
    assert len(re.findall(r"^push\s+\w+\s+uploaded", second, re.MULTILINE)) == 4


def test_iris_sbom_lists_what_is_installed_and_the_image_rebuilds_offline(tmp_path: Path, iris: Path) -> None:
    """The SBOM names exactly the distributions whose dist-info are in the image and every Debian package
    of the base; `verify --rebuild` reproduces the image in a fresh store from another working folder,
    the wheels only from a wheelhouse."""
    from urllib.parse import unquote

    from packaging.utils import canonicalize_name

    layout, cache = tmp_path / "out", tmp_path / "c"
    run_cli("build", iris, "--platform", "linux/amd64", "--output", f"oci:{layout}:v1", cache=cache, env=EPOCH)
    sbom = json.loads(run_cli("sbom", f"oci:{layout}:v1", cache=cache).stdout)
    purls = [ref["referenceLocator"] for p in sbom["packages"] for ref in p.get("externalRefs", [])
             if ref.get("referenceType") == "purl"]
    pypi = {(canonicalize_name(p.split("/", 1)[1].split("@")[0]), p.split("@")[1].split("?")[0])
            for p in purls if p.startswith("pkg:pypi/")}
    paths = image_paths(layout, "v1")["amd64"]
    installed = {(canonicalize_name(d.removesuffix(".dist-info").rsplit("-", 1)[0]),
                  d.removesuffix(".dist-info").rsplit("-", 1)[1]) for d in dist_infos(paths)}
    assert pypi == installed and {n for n, _ in pypi} >= {"numpy", "scikit-learn", "scipy"}
    debs = {unquote(p.split("/")[2].split("@")[0]) for p in purls if p.startswith("pkg:deb/debian/")}
    status = {p.rsplit("/", 1)[1] for p in paths if p.startswith("var/lib/dpkg/status.d/") and p.count("/") == 4
              and not p.endswith(".md5sums")}  # NAME is the record; NAME.md5sums its file list
    assert debs == status and "python3.13-minimal" in debs, (debs ^ status)
    assert all("arch=" in p for p in purls if p.startswith("pkg:deb/"))

    wheels, elsewhere = tmp_path / "wheels", tmp_path / "elsewhere"
    run_cli("fetch", iris, "--dest", wheels, "--platform", "linux/amd64", cache=cache)
    elsewhere.mkdir()
    shutil.copytree(iris, elsewhere / "src")
    proc = run_cli("verify", f"oci:{layout}:v1", "--rebuild", "--project", "src", "--offline-from", wheels,
                   cache=elsewhere / "fresh", cwd=elsewhere, env={**EPOCH, "UV_INDEX_URL": "http://127.0.0.1:9/simple",
                                                                "PIP_INDEX_URL": "http://127.0.0.1:9/simple"})
    digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    assert proc.stdout.strip() == f"reproduced {digest}", proc.stdout + proc.stderr

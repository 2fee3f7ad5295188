"""One build, one index, every CPU: amd64 + arm64 images of a numpy + scikit-learn app on a two-platform
Debian python3 base index, pushed to a real registry, checked with skopeo and podman, run with runc
(arm64 under qemu-user binfmt)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness.bases import make_debian_python_layout
from harness.cli import ocibuild as run_cli
from harness.layout import layout_index_of
from harness.proc import skopeo, skopeo_copy
from harness.registry import Registry
from harness.runtime import podman as run_podman
from harness.runtime import run_image
from harness.validate import validate_layout

from ocibuild.spec import Digest, ImageIndex, ImageManifest, MediaType

APP = Path(__file__).parent / "data" / "sklearn-app"
PREDICTION = "prediction: 1 proba: 0.997"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def py_index(tmp_path_factory: pytest.TempPathFactory, debian_python_layout: Path) -> Path:
    """A two-platform (amd64, arm64) Debian python3 base index as an OCI layout, tag ``py``."""
    arm = make_debian_python_layout(tmp_path_factory.mktemp("arm") / "layout", "bookworm-py", "arm64")
    return layout_index_of(tmp_path_factory.mktemp("pyidx") / "layout", "py",
                           [(debian_python_layout, "bookworm-py"), (arm, "bookworm-py")])


def ocibuild(*args: str | Path, cache: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, cache=cache, check=check, env={"DOCKER_CONFIG": str(cache / "docker")})


def test_two_platform_app_pushed_as_index(tmp_path: Path, py_index: Path, plain_registry: Registry,
                                          podman: dict[str, str]) -> None:
    reg = plain_registry
    skopeo_copy(f"oci:{py_index}:py", f"docker://{reg.host}/base/py:bookworm", "--all", "--preserve-digests",
                "--dest-tls-verify=false")
    target = f"{reg.host}/multi/app:1.0"
    mark = reg.mark()
    out = ocibuild("build", APP, "--base", f"docker://{reg.host}/base/py:bookworm", "--platform",
                   "linux/amd64,linux/arm64", "--output", f"docker://{target}", "--json", cache=tmp_path / "c")
    result = json.loads(out.stdout)

    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout.encode()
    index = ImageIndex.from_json(raw)
    assert index.media_type == MediaType.OCI_INDEX and result["digest"] == str(Digest.of(raw))
    assert sorted(str(d.platform) for d in index.manifests) == ["linux/amd64", "linux/arm64/v8"]

    # the app layer is the same blob in both manifests, and it was uploaded once
    manifests = [ImageManifest.from_json(skopeo("inspect", "--raw", "--tls-verify=false",
                                                f"docker://{reg.host}/multi/app@{d.digest}").stdout.encode())
                 for d in index.manifests]
    app_layers = {m.layers[-1].digest for m in manifests}
    assert len(app_layers) == 1
    (app_layer,) = app_layers
    assert reg.count("PUT", rf"digest=sha256(?::|%3A){app_layer.hex}", since=mark) == 1
    amd, arm = ({d.digest for d in m.layers} for m in manifests)
    assert amd - arm and arm - amd  # numpy, scipy... differ per CPU
    assert len(amd & arm) >= 3  # the app layer and pure-Python dependency layers are shared

    # skopeo copy --all round-trips the index with digests preserved; each platform runs
    copied = tmp_path / "copied"
    skopeo_copy(f"docker://{target}", f"oci:{copied}:1.0", "--all", "--preserve-digests", "--src-tls-verify=false")
    validate_layout(copied)
    assert json.loads((copied / "index.json").read_text())["manifests"][0]["digest"] == result["digest"]
    for arch in ("amd64", "arm64"):
        run = run_image(copied, "1.0", arch=arch)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == PREDICTION

    pulled = run_podman(podman, "run", "--rm", "--tls-verify=false", "--platform", "linux/arm64", target)
    assert pulled.stdout.strip() == PREDICTION


def test_index_written_to_layout_and_archive(tmp_path: Path, py_index: Path) -> None:
    out = ocibuild("build", APP, "--base", f"oci:{py_index}:py", "--platform", "all",
                   "--output", f"oci:{tmp_path / 'layout'}:v1", "--output", f"oci-archive:{tmp_path / 'a.tar'}:v1",
                   cache=tmp_path / "c")
    digest = out.stdout.strip()
    validate_layout(tmp_path / "layout")
    entry = json.loads((tmp_path / "layout" / "index.json").read_text())["manifests"][0]
    assert entry["mediaType"] == MediaType.OCI_INDEX and entry["digest"] == digest
    assert "linux/amd64, linux/arm64/v8 (all the base offers)" in out.stderr
    info = json.loads(skopeo("inspect", "--raw", f"oci-archive:{tmp_path / 'a.tar'}:v1").stdout)
    assert len(info["manifests"]) == 2
    run = run_image(tmp_path / "layout", "v1", arch="arm64")
    assert run.stdout.strip() == PREDICTION


def test_platform_all_drops_platforms_without_wheels(tmp_path: Path, py_index: Path) -> None:
    from test_python_deps import _fake_wheel

    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "onlyx86", "1.0", "cp311-cp311-manylinux_2_17_x86_64")
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("onlyx86==1.0\n")
    (app / "ocibuild.toml").write_text('[python]\nrequirements = "requirements.txt"\n')
    out = ocibuild("build", app, "--base", f"oci:{py_index}:py", "--platform", "all", "--find-links", wheels,
                   "--no-index", "--output", f"oci:{tmp_path / 'o'}:t", cache=tmp_path / "c")
    assert "skip    linux/arm64/v8" in out.stderr and "onlyx86==1.0" in out.stderr
    entry = json.loads((tmp_path / "o" / "index.json").read_text())["manifests"][0]
    assert entry["mediaType"] == MediaType.OCI_MANIFEST  # one platform left: a plain image

    both = ocibuild("build", app, "--base", f"oci:{py_index}:py", "--platform", "linux/amd64,linux/arm64",
                    "--find-links", wheels, "--no-index", "--output", f"oci:{tmp_path / 'x'}:t", cache=tmp_path / "c",
                    check=False)
    assert both.returncode == 1 and "onlyx86==1.0" in both.stderr and "linux/arm64/v8" in both.stderr


@pytest.mark.parametrize(("args", "fragment"), [
    (["--platform", "linux/sparc9"], "unknown architecture 'sparc9'"),
    (["--platform", "linux/amd64,linux/s390x"], "has no image for linux/s390x (it has: linux/amd64, linux/arm64/v8)"),
    (["--platform", "linux/amd64,linux/arm64", "--output", "docker-archive:{tmp}/d.tar"],
     "a docker archive holds one platform"),
])
def test_bad_platform_input(tmp_path: Path, py_index: Path, args: list[str], fragment: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    outputs = [] if "--output" in args else ["--output", f"oci:{tmp_path / 'o'}:t"]
    proc = ocibuild("build", APP, "--base", f"oci:{py_index}:py", *args, *outputs, cache=tmp_path / "c",
                    check=False)
    assert proc.returncode == 1 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "d.tar").exists()


def test_base_per_platform_table(tmp_path: Path, debian_python_layout: Path, busybox_arm64_layout: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "hello.sh").write_text('echo "hi from $(uname -m)"\n')
    (app / "ocibuild.toml").write_text(
        f'entrypoint = ["/bin/sh", "/app/hello.sh"]\n[base]\n"linux/amd64" = "oci:{debian_python_layout}:bookworm-py"\n'
        f'"linux/arm64" = "oci:{busybox_arm64_layout}:busybox"\n')
    ocibuild("build", app, "--output", f"oci:{tmp_path / 'o'}:t", cache=tmp_path / "c")
    assert run_image(tmp_path / "o", "t", arch="amd64").stdout.strip() == "hi from x86_64"
    assert run_image(tmp_path / "o", "t", arch="arm64").stdout.strip() == "hi from aarch64"

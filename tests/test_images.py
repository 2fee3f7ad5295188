"""Built images checked by tools nobody here wrote (oci-image-tool, the OCI JSON schemas, umoci,
skopeo, podman) and run by a real runtime (runc), on bases made by the tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from harness.cli import ocibuild
from harness.layout import image_config, images_of_index, layout_index_of
from harness.proc import skopeo_inspect, skopeo_inspect_raw
from harness.runtime import podman as run_podman
from harness.runtime import run_image, umoci_unpack
from harness.validate import oci_image_tool_validate, validate_layout

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"

pytestmark = pytest.mark.slow


def test_hello_on_busybox_every_output_validates_and_runs(tmp_path: Path, busybox_layout: Path,
                                                          podman: dict[str, str]) -> None:
    out = tmp_path / "out"
    proc = ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox",
                    "--output", f"oci:{out / 'hello'}:v1", "--output", f"oci-archive:{out / 'hello.tar'}:v1",
                    "--output", f"docker-archive:{out / 'hello-docker.tar'}:hello:v1", cache=tmp_path / "cache")
    digest = proc.stdout.strip()
    assert digest.startswith("sha256:")

    layout = out / "hello"
    validate_layout(layout)
    oci_image_tool_validate(layout, "v1")
    umoci_unpack(layout, "v1", tmp_path / "bundle")
    assert (tmp_path / "bundle" / "rootfs" / "app" / "hello.sh").is_file()
    assert (tmp_path / "bundle" / "rootfs" / "bin" / "busybox").is_file()
    info = skopeo_inspect(f"oci:{layout}:v1")
    assert info["Digest"] == digest and info["Architecture"] == "amd64"
    assert skopeo_inspect_raw(f"oci:{layout}:v1") == (layout / "blobs" / "sha256" / digest[7:]).read_bytes()

    run = run_image(layout, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Hello from ocibuild on x86_64"

    # oci-archive: same manifest; skopeo reads it and it unpacks to a layout that validates
    assert skopeo_inspect(f"oci-archive:{out / 'hello.tar'}:v1")["Digest"] == digest
    extracted = tmp_path / "from-archive"
    extracted.mkdir()
    subprocess.run(["tar", "-xf", out / "hello.tar", "-C", extracted], check=True)
    validate_layout(extracted)
    oci_image_tool_validate(extracted, "v1")

    # docker-archive: skopeo reads it, podman loads it and runs it
    docker_info = skopeo_inspect(f"docker-archive:{out / 'hello-docker.tar'}")
    assert docker_info["Layers"] and docker_info["Architecture"] == "amd64"
    loaded = run_podman(podman, "load", "-i", str(out / "hello-docker.tar"))
    assert "hello:v1" in loaded.stdout + loaded.stderr
    ran = run_podman(podman, "run", "--rm", "localhost/hello:v1")
    assert ran.stdout.strip() == "Hello from ocibuild on x86_64"


def test_python_app_on_debian_base_runs(tmp_path: Path, debian_python_layout: Path) -> None:
    out = tmp_path / "py"
    ocibuild("build", HELLO, "--base", f"oci:{debian_python_layout}:bookworm-py",
             "--entrypoint", '["python3", "/app/hello.py"]', "--output", f"oci:{out}:py", cache=tmp_path / "c")
    validate_layout(out)
    oci_image_tool_validate(out, "py")
    run = run_image(out, "py")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Hello from ocibuild: Python 3.11 on x86_64"
    env = image_config(out, "py")["config"]["Env"]
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in env  # inherited from the base

def test_archives_as_bases(tmp_path: Path, busybox_layout: Path) -> None:
    """oci-archive and docker-archive bases (written by skopeo, not by us) build and run."""
    oci_tar, docker_tar = tmp_path / "bb-oci.tar", tmp_path / "bb-docker.tar"
    subprocess.run(["skopeo", "copy", "-q", f"oci:{busybox_layout}:busybox", f"oci-archive:{oci_tar}:bb"],
                   check=True)
    subprocess.run(["skopeo", "copy", "-q", f"oci:{busybox_layout}:busybox",
                    f"docker-archive:{docker_tar}:busybox:1"], check=True)
    for base in (f"oci-archive:{oci_tar}:bb", f"docker-archive:{docker_tar}", f"docker-archive:{docker_tar}:busybox:1"):
        out = tmp_path / "o" / base.split(":")[0]
        ocibuild("build", HELLO, "--base", base, "--output", f"oci:{out}:t", cache=tmp_path / "c")
        validate_layout(out)
        run = run_image(out, "t")
        assert run.stdout.strip() == "Hello from ocibuild on x86_64", (base, run.stderr)


def test_index_base_picks_platform_and_arm64_runs_under_qemu(tmp_path: Path, busybox_layout: Path,
                                                             busybox_arm64_layout: Path) -> None:
    """A multi-platform base (an index made with skopeo + jq-free JSON) -> --platform selects one."""
    index = layout_index_of(tmp_path / "multi", "bb", [(busybox_layout, "busybox"), (busybox_arm64_layout, "busybox")])
    for platform, machine in (("linux/arm64", "aarch64"), ("linux/amd64", "x86_64")):
        out = tmp_path / platform.replace("/", "-")
        ocibuild("build", HELLO, "--base", f"oci:{index}:bb", "--platform", platform, "--output", f"oci:{out}:t",
                 cache=tmp_path / "c")
        validate_layout(out)
        assert skopeo_inspect(f"oci:{out}:t")["Architecture"] == platform.split("/")[1]
        run = run_image(out, "t")
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == f"Hello from ocibuild on {machine}"
    bad = ocibuild("build", HELLO, "--base", f"oci:{index}:bb", "--platform", "linux/s390x",
                   "--output", f"oci:{tmp_path / 'x'}:t", cache=tmp_path / "c", check=False)
    assert bad.returncode == 1
    assert "has no image for linux/s390x (it has: linux/amd64, linux/arm64/v8)" in bad.stderr


def test_output_layout_keeps_other_tags(tmp_path: Path, busybox_layout: Path) -> None:
    out = tmp_path / "shared"
    ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--output", f"oci:{out}:one",
             cache=tmp_path / "c")
    ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--env", "X=1",
             "--output", f"oci:{out}:two", cache=tmp_path / "c")
    ocibuild("build", HELLO, "--base", f"oci:{busybox_layout}:busybox", "--env", "X=2",
             "--output", f"oci:{out}:two", cache=tmp_path / "c")
    tags = sorted(m["annotations"]["org.opencontainers.image.ref.name"]
                  for m in images_of_index(json.loads((out / "index.json").read_text())))
    assert tags == ["one", "two"]
    validate_layout(out)
    for tag in tags:
        oci_image_tool_validate(out, tag)
        assert run_image(out, tag).stdout.strip() == "Hello from ocibuild on x86_64"

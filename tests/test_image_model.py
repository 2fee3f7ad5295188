"""The image model end to end, against a real registry: lazy remote images (inspect and
``--platform all`` download no layer), layers mounted through the ``Mountable`` wrapper (also for a
per-platform base table), build separate from publish, and the library API a build system uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import requests
from harness.proc import skopeo
from harness.registry import Registry
from harness.runtime import run_image
from harness.validate import validate_layout
from test_multiarch import py_index  # noqa: F401 - the two-platform Debian python3 base fixture
from test_python_deps import _fake_wheel

import ocibuild

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
pytestmark = pytest.mark.slow


def ocibuild_cli(*args: str | Path, tmp: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp / "cache"), "SOURCE_DATE_EPOCH": "1700000000",
           "DOCKER_CONFIG": str(tmp / "docker")}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def layer_digests(reg: Registry, ref: str) -> list[str]:
    """Every layer digest of ``ref`` (all platforms of an index)."""
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{ref}").stdout)
    if "manifests" in raw:
        repo = ref.rsplit(":", 1)[0]
        return [d for m in raw["manifests"] for d in layer_digests(reg, f"{repo}@{m['digest']}")]
    return [layer["digest"] for layer in raw["layers"]]


def blob_gets(reg: Registry, digests: list[str], since: int) -> int:
    return sum(reg.count("GET", rf"/blobs/{d}", since=since) for d in digests)


def test_inspect_of_a_big_registry_image_downloads_no_layer(tmp_path: Path, plain_registry: Registry,
                                                             busybox_layout: Path) -> None:
    reg = plain_registry
    project = tmp_path / "big"
    (project / "models").mkdir(parents=True)
    with (project / "models" / "weights.bin").open("wb") as f:  # incompressible: its own, uncompressed layer
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    (project / "app.py").write_text("print('big')\n")
    ref = f"{reg.host}/model/big:1"
    ocibuild_cli("build", project, "--base", f"oci:{busybox_layout}:busybox", "--output", f"docker://{ref}",
                 tmp=tmp_path / "builder")
    layers = layer_digests(reg, "model/big:1")
    mark = reg.mark()
    out = ocibuild_cli("inspect", f"docker://{ref}", "--json", tmp=tmp_path / "fresh")
    info = json.loads(out.stdout)
    assert [x["digest"] for x in info["layers"]] == layers and info["total_size"] > 96 << 20
    assert any("weights.bin" in x["created_by"] for x in info["layers"])
    assert blob_gets(reg, layers, mark) == 0  # no layer blob was downloaded
    assert reg.count("GET", r"/v2/model/big/blobs/", since=mark) == 1  # only the config
    assert not list((tmp_path / "fresh" / "cache" / "blobs" / "sha256").glob("*")) or all(
        p.stat().st_size < 1 << 20 for p in (tmp_path / "fresh" / "cache" / "blobs" / "sha256").iterdir())


def test_platform_all_from_a_registry_reads_no_layer_and_mounts_them(tmp_path: Path, plain_registry: Registry,
                                                                      busybox_layout: Path,
                                                                      busybox_arm64_layout: Path) -> None:
    reg = plain_registry
    for arch, layout in (("amd64", busybox_layout), ("arm64", busybox_arm64_layout)):
        skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:busybox", f"docker://{reg.host}/bases/bb-{arch}:1")
    # a two-platform base index in the registry, made from the two per-platform images
    idx = tmp_path / "idx"
    (idx / "ocibuild.toml").parent.mkdir()
    (idx / "ocibuild.toml").write_text(
        f'platforms = "all"\n[base]\n"linux/amd64" = "docker://{reg.host}/bases/bb-amd64:1"\n'
        f'"linux/arm64" = "docker://{reg.host}/bases/bb-arm64:1"\n[[layers]]\nsrc = "x"\ndest = "/x"\n')
    (idx / "x").write_text("x")
    mark = reg.mark()
    # no SBOM here: it reads the base's layers to list their packages (what test_evidence checks)
    ocibuild_cli("build", idx, "--sbom", "none", "--output", f"docker://{reg.host}/bases/bb:multi",
                 tmp=tmp_path / "a")
    base_layers = layer_digests(reg, "bases/bb-amd64:1") + layer_digests(reg, "bases/bb-arm64:1")
    # the per-platform base table: every base layer is mounted from its own repository, none uploaded
    assert blob_gets(reg, base_layers, mark) == 0
    for d in base_layers:
        assert reg.count("POST", rf"/v2/bases/bb/blobs/uploads/\?.*mount={d.replace(':', '(?::|%3A)')}",
                         since=mark) == 1, d
        assert not reg.count("PUT", rf"digest={d.replace(':', '(?::|%3A)')}", since=mark), d

    # --platform all against that index: only the index, the manifests and the configs are read
    mark = reg.mark()
    out = ocibuild_cli("build", HELLO, "--sbom", "none", "--base", f"docker://{reg.host}/bases/bb:multi",
                       "--platform", "all", "--output", f"docker://{reg.host}/apps/hello:1", "--json",
                       tmp=tmp_path / "b")
    result = json.loads(out.stdout)
    assert {p["platform"] for p in result["platforms"]} == {"linux/amd64", "linux/arm64/v8"}
    multi_layers = layer_digests(reg, "bases/bb:multi")
    assert blob_gets(reg, multi_layers, mark) == 0
    assert reg.count("GET", r"/v2/bases/bb/blobs/", since=mark) == 2  # the two configs
    assert not reg.count("PUT", rf"digest={multi_layers[0].replace(':', '(?::|%3A)')}", since=mark)
    pulled = tmp_path / "pulled"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{reg.host}/apps/hello:1", f"oci:{pulled}:v1")
    validate_layout(pulled)
    run = run_image(pulled, "v1", arch="arm64")
    assert run.returncode == 0 and "aarch64" in run.stdout, run.stderr


LIBRARY_EXAMPLE = '''
from pathlib import Path
import requests
import ocibuild

def build_and_publish(app: Path, base: str, wheels: Path, cache: Path, layout: Path, registry_ref: str,
                      session: requests.Session) -> ocibuild.BuildResult:
    plan = ocibuild.BuildPlan(
        project_dir=app,
        base=ocibuild.parse_location(base),
        platforms=(ocibuild.Platform.parse("linux/arm64"),),
        python=ocibuild.PythonSpec(requirements=app / "requirements.txt", find_links=(str(wheels),), no_index=True),
        layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),),
        settings=ocibuild.ImageSettings(entrypoint=("/opt/venv/bin/python", "/app/main.py")),
    )
    result = ocibuild.build(plan, store=ocibuild.ContentStore(cache))   # in memory: nothing written yet
    assert not layout.exists()
    return ocibuild.publish(result, [ocibuild.sink_for(f"oci:{layout}:v1"),
                                     ocibuild.sink_for(f"docker://{registry_ref}", session=session)])
'''


def test_library_build_into_memory_then_publish(tmp_path: Path, plain_registry: Registry,
                                                py_index: Path) -> None:  # noqa: F811 - the imported fixture
    """What docs/guides/library.md shows: names from ``ocibuild.__all__`` only, a session of the caller's own."""
    namespace: dict[str, object] = {}
    exec(compile(LIBRARY_EXAMPLE, "library_example", "exec"), namespace)  # the docs' code, run as written
    wheels = tmp_path / "wheels"
    _fake_wheel(wheels, "purelib", "1.0", "py3-none-any")
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("purelib==1.0\n")
    (app / "main.py").write_text("import platform, purelib\nprint(platform.machine(), purelib.X)\n")
    session = requests.Session()
    sent: list[str] = []
    session.hooks["response"].append(lambda resp, *a, **k: sent.append(resp.request.method))
    ref = f"{plain_registry.host}/lib/app:v1"
    result = namespace["build_and_publish"](app, f"oci:{py_index}:py", wheels, tmp_path / "cache",
                                            tmp_path / "layout", ref, session)
    assert isinstance(result, ocibuild.BuildResult)
    assert str(result.image.config.platform).startswith("linux/arm64")
    assert result.outputs == (f"oci:{tmp_path / 'layout'}:v1", f"docker://{ref}")
    assert "PUT" in sent  # the push went through the caller's session
    validate_layout(tmp_path / "layout")
    run = run_image(tmp_path / "layout", "v1", arch="arm64")
    assert run.stdout.split() == ["aarch64", "1"], run.stderr
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()
    assert raw == result.image.manifest_bytes


def test_compose_with_mutate_append_and_publish(tmp_path: Path, busybox_layout: Path) -> None:
    store = ocibuild.ContentStore(tmp_path / "cache")
    base = ocibuild.resolve_base(ocibuild.parse_location(f"oci:{busybox_layout}:busybox"), store)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "hi.sh").write_text("echo composed\n")
    own = ocibuild.build(ocibuild.BuildPlan(project_dir=tree, layers=(ocibuild.LayerSpec(src=Path("."),
                                                                                           dest="/srv"),)),
                         store=store).image.layers[-1]
    image = ocibuild.mutate.append(base, ocibuild.mutate.Addendum(layer=own, created_by="COPY tree /srv"))
    image = ocibuild.mutate.with_settings(image, ocibuild.ImageSettings(entrypoint=("/bin/sh", "/srv/hi.sh")))
    image = ocibuild.mutate.with_created(image, 1700000000)
    assert image.layers[: len(base.layers)] == base.layers and image.layers[-1] is own
    assert image.config.history[-1].created_by == "COPY tree /srv"
    archive = ocibuild.OciArchiveSink(path=tmp_path / "out.tar", tag="v1", mtime=1700000000)
    written = ocibuild.publish(image, [f"oci:{tmp_path / 'out'}:v1", archive])
    assert written == (f"oci:{tmp_path / 'out'}:v1", f"oci-archive:{tmp_path / 'out.tar'}:v1")
    validate_layout(tmp_path / "out")
    run = run_image(tmp_path / "out", "v1")
    assert run.returncode == 0 and run.stdout.strip() == "composed", run.stderr
    index = ocibuild.mutate.index_of([image], created=1700000000)
    assert index.index.annotations["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    with tarfile.open(tmp_path / "out.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {1700000000}

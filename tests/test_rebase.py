"""``ocibuild rebase``: the iris server built on a Debian base is moved onto the same base rebuilt with
one more package (tzdata) without rebuilding anything. The result runs under runc and predicts, only
the changed base layer, the config and the manifest are new, and it is byte for byte the image a
build on the new base gives. A wrong or unknown old base is a one-line error and writes nothing.
Also: the old base found in a registry (``base.name``), every platform of an index, and the config
rules (``rebase_config``) on their own."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from harness.cli import ocibuild as run_cli
from harness.registry import Registry
from harness.runtime import run_image

import ocibuild
from ocibuild import mutate
from ocibuild.image import store_layer
from ocibuild.layers import TarEntry, build_layer
from ocibuild.rebase import keep_base, rebase_config
from ocibuild.sources import scratch
from ocibuild.spec import ContainerConfig, Platform
from ocibuild.spec.annotations import BASE_DIGEST, BASE_NAME

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris-server"
PACKAGES = "python3,ca-certificates,libstdc++6,libgomp1"
PREDICT = ("import joblib, os; m = joblib.load('/app/model/model.joblib'); "
           "print(m['classes'][int(m['model'].predict([[5.1, 3.5, 1.4, 0.2]])[0])], "
           "os.path.exists('/usr/share/zoneinfo/UTC'))")


def layout_image(layout: Path, tag: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """(manifest, config) of ``layout:tag``, read from the files."""
    index = json.loads((layout / "index.json").read_text())
    desc = next(d for d in index["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name")
                == tag)
    manifest = json.loads((layout / "blobs" / "sha256" / desc["digest"][7:]).read_text())
    manifest["digest"] = desc["digest"]
    config = json.loads((layout / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_text())
    return manifest, config


def layer_digests(layout: Path, tag: str) -> list[str]:
    return [d["digest"] for d in layout_image(layout, tag)[0]["layers"]]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's folder: ``cache`` (one content store: .debs and wheels downloaded once), ``bases``
    (``v1:py`` the Debian base, ``v2:py`` the same with tzdata), ``iris`` (trained) and ``app`` (the
    iris image built on ``v1``, ``oci:app:v1``)."""
    work = tmp_path_factory.mktemp("rebase")
    cache = work / "cache"
    for tag, packages in (("v1", PACKAGES), ("v2", PACKAGES + ",tzdata")):
        run_cli("base", "debian", "--suite", "bookworm", "--packages", packages, "--platform", "linux/amd64",
                "--output", f"oci:{work / 'bases'}:{tag}", cache=cache, timeout=900)
    iris = Path(shutil.copytree(IRIS, work / "iris"))
    subprocess.run([sys.executable, str(iris / "train.py")], check=True, capture_output=True, timeout=300)
    run_cli("build", iris, "--base", f"oci:{work / 'bases'}:v1", "--platform", "linux/amd64", "--sbom", "none",
            "--output", f"oci:{work / 'app'}:v1", cache=cache)
    return work


def test_rebase_onto_base_with_one_more_package_runs_and_only_that_layer_is_new(work: Path, tmp_path: Path) -> None:
    bases, app, out = work / "bases", work / "app", tmp_path / "out"
    proc = run_cli("rebase", f"oci:{app}:v1", "--base", f"oci:{bases}:v2", "--output", f"oci:{out}:v1", "--json",
                   "--digest-file", tmp_path / "digest", cache=work / "cache")  # the old base: from the store
    result = json.loads(proc.stdout)
    manifest, config = layout_image(out, "v1")
    assert result["digest"] == manifest["digest"] == (tmp_path / "digest").read_text().strip()
    assert result["outputs"] == [f"oci:{out}:v1"]

    old_base, new_base = layer_digests(bases, "v1"), layer_digests(bases, "v2")
    changed = [d for d in new_base if d not in old_base]
    assert len(changed) == 1 and len(new_base) == len(old_base)  # tzdata went into the "other packages" layer
    before, after = layer_digests(app, "v1"), layer_digests(out, "v1")
    assert after == new_base + before[len(old_base):]  # the image's own layers: the same blobs
    assert set(after) - set(before) == set(changed)  # nothing else is a new layer
    original, original_config = layout_image(app, "v1")
    assert manifest["config"]["digest"] != original["config"]["digest"] and manifest["digest"] != original["digest"]
    assert result["platforms"][0]["new_layers"] == changed and result["platforms"][0]["own_layers"] == 8

    _, base_config = layout_image(bases, "v2")
    assert config["rootfs"]["diff_ids"][:len(new_base)] == base_config["rootfs"]["diff_ids"]
    assert config["history"][:len(base_config["history"])] == base_config["history"]
    assert config["created"] == original_config["created"] and config["config"] == original_config["config"]
    assert manifest["annotations"][BASE_DIGEST] == layout_image(bases, "v2")[0]["digest"]
    assert BASE_NAME not in manifest["annotations"]

    # exactly the image a build on the new base makes (the build reuses every layer it already has)
    build = run_cli("build", work / "iris", "--base", f"oci:{bases}:v2", "--platform", "linux/amd64", "--sbom", "none",
                    "--output", f"oci:{tmp_path / 'built'}:v1", "-q", cache=work / "cache")
    assert build.stdout.strip() == result["digest"]

    run = run_image(out, "v1", args=["python", "-c", PREDICT])
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["setosa", "True"]  # the model predicts; tzdata (not in v1) is there

    # like a build, the rebase attached an SBOM (walked from its layers: the new base's packages) and a
    # provenance of the rebase; verify --rebuild says what it is instead of failing on it
    sbom = json.loads(run_cli("sbom", f"oci:{out}:v1", cache=work / "cache").stdout)
    names = {p["name"] for p in sbom["packages"]}
    assert {"tzdata", "python3", "scikit-learn", "joblib"} <= names, sorted(names)
    statement = json.loads(run_cli("provenance", f"oci:{out}:v1", cache=work / "cache").stdout)
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == "https://ocibuild.dev/buildtypes/rebase/v1"
    assert definition["externalParameters"] == {"image": f"oci:{app}:v1", "base": f"oci:{bases}:v2", "oldBase": None}
    kinds = {d["annotations"]["kind"]: d["digest"]["sha256"] for d in definition["resolvedDependencies"]}
    assert kinds == {"image": original["digest"][7:], "old-base": layout_image(bases, "v1")[0]["digest"][7:],
                     "base-image": layout_image(bases, "v2")[0]["digest"][7:]}
    assert [x["digest"]["sha256"] for x in statement["subject"]] == [result["digest"][7:]]
    verify = run_cli("verify", f"oci:{out}:v1", "--rebuild", cache=work / "cache", check=False)
    assert verify.returncode != 0 and "made by 'ocibuild rebase'" in verify.stderr and "Traceback" not in verify.stderr

    # rebasing the result back onto v1 (its old base v2 now found in the store) gives the original
    back = run_cli("rebase", f"oci:{out}:v1", "--base", f"oci:{bases}:v1", "--output", f"oci:{tmp_path / 'back'}:v1",
                   "-q", cache=work / "cache")
    assert back.stdout.strip() == original["digest"]


def test_old_base_named_with_old_base_or_an_error_asks_for_it(work: Path, tmp_path: Path) -> None:
    """A fresh content store does not hold the base the image was built on."""
    bases, app, out = work / "bases", work / "app", tmp_path / "out"
    fresh = tmp_path / "fresh-cache"
    bad = run_cli("rebase", f"oci:{app}:v1", "--base", f"oci:{bases}:v2", "--output", f"oci:{out}:v1",
                  cache=fresh, check=False)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocibuild: error: oci:"), bad.stderr
    assert "not in the content store" in lines[0] and "--old-base" in lines[0]
    assert not out.exists()

    ok = run_cli("rebase", f"oci:{app}:v1", "--base", f"oci:{bases}:v2", "--old-base", f"oci:{bases}:v1",
                 "--output", f"oci:{out}:v1", "-q", cache=fresh)
    expected = run_cli("rebase", f"oci:{app}:v1", "--base", f"oci:{bases}:v2", "--output",
                       f"oci-archive:{tmp_path / 'app.tar'}:v1", "-q", cache=work / "cache")
    assert ok.stdout.strip() == expected.stdout.strip() == layout_image(out, "v1")[0]["digest"]


def test_a_base_that_is_not_a_prefix_fails_and_writes_nothing(work: Path, tmp_path: Path) -> None:
    bases, app = work / "bases", work / "app"
    out, other = tmp_path / "out", tmp_path / "other"
    bad = run_cli("rebase", f"oci:{app}:v1", "--base", f"oci:{bases}:v2", "--old-base", f"oci:{bases}:v2",
                  "--output", f"oci:{out}:v1", cache=work / "cache", check=False)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "is not a prefix of the image (layer 3 is" in bad.stderr and "--old-base" in bad.stderr
    assert not out.exists()

    # several images: the second cannot be rebased, so the first is not written either
    (tmp_path / "scratch-app").mkdir()
    (tmp_path / "scratch-app" / "a.txt").write_text("a\n")
    run_cli("build", ".", "--base", "scratch", "--layer", "a.txt:/a.txt", "--sbom", "none",
            "--output", f"oci:{tmp_path / 'plain'}:v1", cache=work / "cache", cwd=tmp_path / "scratch-app")
    bad = run_cli("rebase", f"oci:{app}:v1", f"oci:{tmp_path / 'plain'}:v1", "--base", f"oci:{bases}:v2",
                  "--output", f"oci:{out}:v1", "--output", f"oci:{other}:v1", cache=work / "cache", check=False)
    assert bad.returncode == 1
    assert f"oci:{tmp_path / 'plain'}:v1 does not say which base it was built on" in bad.stderr, bad.stderr
    assert not out.exists() and not other.exists()

    bad = run_cli("rebase", f"oci:{app}:v1", f"oci:{tmp_path / 'plain'}:v1", "--base", f"oci:{bases}:v2",
                  "--output", f"oci:{out}:v1", cache=work / "cache", check=False)
    assert bad.returncode == 1 and "2 images but 1 --output" in bad.stderr


def test_several_images_are_paired_with_their_outputs(work: Path, tmp_path: Path) -> None:
    bases, app = work / "bases", work / "app"
    shutil.copytree(app, tmp_path / "copy")
    proc = run_cli("rebase", f"oci:{app}:v1", f"oci:{tmp_path / 'copy'}:v1", "--base", f"oci:{bases}:v2",
                   "--output", f"oci:{tmp_path / 'a'}:v1", "--output", f"docker-archive:{tmp_path / 'b.tar'}:b:1",
                   "--json", cache=work / "cache")
    images = json.loads(proc.stdout)["images"]
    assert [i["outputs"] for i in images] == [[f"oci:{tmp_path / 'a'}:v1"],
                                              [f"docker-archive:{tmp_path / 'b.tar'}:b:1"]]
    assert images[0]["digest"] == images[1]["digest"] == layout_image(tmp_path / "a", "v1")[0]["digest"]


def test_registry_old_base_found_by_base_name_and_layers_mounted(work: Path, tmp_path: Path,
                                                                  plain_registry: Registry) -> None:
    """The app is built on a registry base; a rebase with an empty content store fetches the old base's
    manifest by digest from ``base.name``'s repository, uploads only the new config and mounts the new
    base's layers (the app's own layers are already in its repository): no layer is downloaded."""
    reg, bases, cache = plain_registry, work / "bases", work / "cache"
    store = ocibuild.ContentStore(cache)
    for tag in ("v1", "v2"):
        base = ocibuild.resolve_base(ocibuild.parse_location(f"oci:{bases}:{tag}"), store)
        ocibuild.publish(base, [f"docker://{reg.host}/rebase/base:{tag}"])
    run_cli("build", work / "iris", "--base", f"docker://{reg.host}/rebase/base:v1", "--platform", "linux/amd64",
            "--sbom", "none", "--output", f"docker://{reg.host}/rebase/app:1", cache=cache)
    mark = reg.mark()
    proc = run_cli("rebase", f"docker://{reg.host}/rebase/app:1", "--base", f"docker://{reg.host}/rebase/base:v2",
                   "--output", f"docker://{reg.host}/rebase/app:2", "--json", "--sbom", "none",
                   cache=tmp_path / "empty")
    result = json.loads(proc.stdout)
    assert reg.count("GET", r"/rebase/base/manifests/sha256:", since=mark) >= 1  # the old base, by digest
    assert reg.count("GET", r"/blobs/sha256:", since=mark) <= 4  # configs only, never a layer
    uploads = reg.count("PUT", r"/blobs/uploads/.*[?&]digest=", since=mark)
    mounts = reg.count("POST", r"/rebase/app/blobs/uploads/\?.*mount=", since=mark)
    assert uploads == 1 and mounts == 1, (uploads, mounts)  # the config; the one changed base layer
    assert run_cli("inspect", f"docker://{reg.host}/rebase/app:2", "--json", cache=tmp_path / "empty").stdout
    manifest = json.loads(reg.session().get(f"http://{reg.host}/v2/rebase/app/manifests/2", headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=30).text)
    assert manifest["annotations"][BASE_NAME] == f"{reg.host}/rebase/base:v2"
    assert manifest["annotations"][BASE_DIGEST] == result["platforms"][0]["new_base"]["digest"]


# --------------------------------------------------------------------------------------------------
# the library: an index, and the config rules
# --------------------------------------------------------------------------------------------------


def _layer(store: ocibuild.ContentStore, name: str, text: str) -> ocibuild.Layer:
    built = build_layer([TarEntry(path=name, kind="file", mode=0o644, size=len(text), data=text.encode())], store)
    return store_layer(store, built.descriptor, built.diff_id)


def _base(store: ocibuild.ContentStore, platform: str, version: str, env: tuple[str, ...]) -> ocibuild.MemoryImage:
    image = mutate.append(scratch(Platform.parse(platform)), mutate.Addendum(
        layer=_layer(store, "etc/os", f"{platform} {version}\n"), created_by=f"base {version}"))
    config = replace(image.config, config=replace(image.config.config, env=env, cmd=("sh",)))
    return ocibuild.MemoryImage.assemble(config, image.layers)


def test_every_platform_of_an_index_gets_its_own_new_base(tmp_path: Path) -> None:
    store = ocibuild.ContentStore(tmp_path / "cache")
    platforms = ("linux/amd64", "linux/arm64")
    old = [_base(store, p, "1", ("PATH=/bin",)) for p in platforms]
    new = [_base(store, p, "2", ("PATH=/usr/bin:/bin", "LANG=C.UTF-8")) for p in platforms]
    ocibuild.publish(mutate.index_of(new), [f"oci:{tmp_path / 'new'}:2"])
    apps = []
    for base in old:
        keep_base(base, store)
        app = mutate.append(base, mutate.Addendum(layer=_layer(store, "app/main", "hi\n"), created_by="COPY app"))
        app = mutate.with_settings(app, ocibuild.ImageSettings(env={"PATH": "/opt/venv/bin:/bin"},
                                                               entrypoint=("python", "/app/main")))
        apps.append(mutate.with_annotations(app, {BASE_DIGEST: str(base.digest)}))
    result = ocibuild.rebase(mutate.index_of(apps, created=0), f"oci:{tmp_path / 'new'}:2", store=store)
    assert isinstance(result.artifact, ocibuild.Index)
    assert result.artifact.index.annotations == {"org.opencontainers.image.created": "1970-01-01T00:00:00Z"}
    for image, base, app in zip(result.artifact.images, new, apps, strict=True):
        assert image.config.platform == base.config.platform
        assert [layer.digest for layer in image.layers] == [base.layers[0].digest, app.layers[1].digest]
        assert image.config.config.env == ("PATH=/opt/venv/bin:/usr/bin:/bin", "LANG=C.UTF-8")
        assert (image.config.config.entrypoint, image.config.config.cmd) == (("python", "/app/main"), None)
        assert [h.created_by for h in image.config.history] == ["base 2", "COPY app"]
        assert image.manifest.annotations[BASE_DIGEST] == str(base.digest)
    assert ocibuild.publish(result.artifact, [f"oci:{tmp_path / 'out'}:v1"])
    again = ocibuild.rebase(f"oci:{tmp_path / 'out'}:v1", f"oci:{tmp_path / 'new'}:2", store=store)
    assert again.digest == result.digest  # the new bases were kept in the store: found as the old ones


def test_config_rules_follow_the_new_base_where_the_image_took_the_old_ones() -> None:
    old = ContainerConfig(env=("PATH=/usr/bin:/bin", "LANG=C", "OLDONLY=1", "TZ=UTC"), entrypoint=("/init",),
                          cmd=("sh",), user="65532", working_dir="/home", labels={"vendor": "a", "v": "1"},
                          exposed_ports=("22/tcp",))
    new = ContainerConfig(env=("PATH=/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "TZ=UTC"), entrypoint=("/init2",),
                          cmd=("bash",), user="1000", working_dir="/root", labels={"vendor": "b", "v": "2"},
                          exposed_ports=("23/tcp",))
    own = ContainerConfig(env=("PATH=/opt/venv/bin:/usr/bin:/bin", "LANG=C", "OLDONLY=1", "TZ=Europe/Paris",
                               "APP=1"), entrypoint=("/init",), cmd=("serve",), user="65532", working_dir="/app",
                          labels={"vendor": "a", "v": "1", "title": "app"}, exposed_ports=("22/tcp", "8080/tcp"))
    got = rebase_config(own, old, new)
    assert got.env == ("PATH=/opt/venv/bin:/usr/local/bin:/usr/bin", "LANG=C.UTF-8", "TZ=Europe/Paris", "APP=1")
    assert (got.entrypoint, got.cmd) == (("/init2",), ("serve",))  # only a cmd of its own: the new entrypoint
    assert (got.user, got.working_dir) == ("1000", "/app")
    assert got.labels == {"vendor": "b", "v": "2", "title": "app"}
    assert got.exposed_ports == ("23/tcp", "8080/tcp")
    assert rebase_config(own, old, old) == own  # onto the same base: nothing changes
    mine = replace(own, entrypoint=("python",), cmd=None)
    assert (rebase_config(mine, old, new).entrypoint, rebase_config(mine, old, new).cmd) == (("python",), None)
    inherited = replace(own, entrypoint=old.entrypoint, cmd=old.cmd)
    assert (rebase_config(inherited, old, new).entrypoint, rebase_config(inherited, old, new).cmd) == \
        (("/init2",), ("bash",))

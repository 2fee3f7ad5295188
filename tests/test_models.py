"""Model images (`ocibuild model`, `[[models]]`), weights.lock and app images that refer to their models.

Checked with tools nobody here wrote (oci-image-tool, skopeo, the OCI schemas through the conformance
checker, podman) and a real registry whose access log shows what each build uploaded."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from harness.cli import ocibuild
from harness.hostile import run_measured
from harness.layout import images_of_index, read_blob, tag_descriptor
from harness.proc import run, skopeo
from harness.registry import Registry

EPOCH = "1700000000"
ENV = {"SOURCE_DATE_EPOCH": EPOCH}


def write_file(path: Path, size: int, seed: int = 0) -> str:
    """``size`` pseudo-random bytes (a 1 MiB block varied per MiB, so no two MiB are equal); returns sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(f"{seed}".encode()).digest() * (1 << 15)
    h = hashlib.sha256()
    with path.open("wb") as f:
        done = 0
        while done < size:
            chunk = (done.to_bytes(8, "big") + block[8:])[: min(len(block), size - done)]
            f.write(chunk)
            h.update(chunk)
            done += len(chunk)
    return h.hexdigest()


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def manifest_of(layout: Path, tag: str) -> dict[str, Any]:
    return json.loads(read_blob(layout, tag_descriptor(layout, tag)["digest"]))


def small_model(folder: Path, seed: int = 0) -> dict[str, str]:
    """A small model: one 2 MB weight file (its own layer by suffix) and three small files."""
    shas = {"model.safetensors": write_file(folder / "model.safetensors", 2_000_000, seed)}
    for name, text in (("config.json", '{"hidden": 8}\n'), ("tokenizer.json", '{"vocab": ["a", "b"]}\n'),
                       ("sub/vocab.txt", "a\nb\n")):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
        shas[name] = hashlib.sha256(text.encode()).hexdigest()
    return shas


def app_project(root: Path, *, base: str = "scratch", code: str = "print('v1')\n") -> Path:
    project = root / "proj"
    project.mkdir(parents=True, exist_ok=True)
    (project / "app.py").write_text(code)
    (project / "ocibuild.toml").write_text(
        f'base = "{base}"\nentrypoint = ["/bin/sh", "-c", "ls $OCIBUILD_MODEL_WEIGHTS"]\n'
        '[[layers]]\nname = "code"\nsrc = "app.py"\ndest = "/app/app.py"\n'
        '[[models]]\nname = "weights"\nsrc = "weights"\n')
    return project


# ---------------------------------------------------------------------------------------------------
# the model image itself
# ---------------------------------------------------------------------------------------------------


def test_model_image_layers_are_uncompressed_valid_and_reproducible(tmp_path: Path) -> None:
    src = tmp_path / "model"
    shas = {"big.safetensors": write_file(src / "big.safetensors", 1 << 30, 1),
            "shard-2.bin": write_file(src / "shard-2.bin", 70_000_000, 2)}
    shas.update({k: v for k, v in small_model(tmp_path / "small").items() if k != "model.safetensors"})
    for name in ("config.json", "tokenizer.json", "sub/vocab.txt"):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes((tmp_path / "small" / name).read_bytes())
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    shas["run.sh"] = sha_file(src / "run.sh")
    layout, lock = tmp_path / "out" / "model", tmp_path / "weights.lock"
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp_path / "cache"), **ENV}
    measured = run_measured([sys.executable, "-m", "ocibuild", "model", src, "--output", f"oci:{layout}:v1",
                             "--lock", lock, "--result-json", tmp_path / "result.json"], env=env, timeout=600)
    assert measured.returncode == 0, measured.stderr
    digest = measured.stdout.strip()
    # memory stays flat: a 1 GiB file streams through (the interpreter alone is ~40 MB)
    assert measured.max_rss < 150 << 20, f"peak RSS {measured.max_rss >> 20} MiB for a 1 GiB weight file"

    manifest = manifest_of(layout, "v1")
    assert tag_descriptor(layout, "v1")["digest"] == digest
    assert "artifactType" not in manifest
    layers = manifest["layers"]
    assert [(x["mediaType"], x["annotations"]["org.cncf.model.filepath"]) for x in layers] == [
        ("application/vnd.oci.image.layer.v1.tar", "big.safetensors"),
        ("application/vnd.oci.image.layer.v1.tar", "shard-2.bin"),
        ("application/vnd.oci.image.layer.v1.tar+gzip", "."),
    ]
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    assert config["os"] == "linux" and config["architecture"]
    assert "Entrypoint" not in config.get("config", {}) and "Cmd" not in config.get("config", {})
    # rootfs.diff_ids: the sha256 of each decompressed layer (containerd mounts only such images)
    diff_ids = []
    seen: dict[str, tuple[str, int, int, int]] = {}
    for layer in layers:
        blob = layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
        with blob.open("rb") as raw:
            stream = gzip.open(raw) if layer["mediaType"].endswith("+gzip") else raw
            h = hashlib.sha256()
            while chunk := stream.read(1 << 20):
                h.update(chunk)
            diff_ids.append(f"sha256:{h.hexdigest()}")
        with tarfile.open(blob) as tar:  # transparent gzip
            for member in tar:
                assert member.name.startswith("models"), member.name
                assert (member.uid, member.gid, member.mtime) == (0, 0, int(EPOCH)), member.name
                if member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None
                    h = hashlib.sha256()
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                    seen[member.name] = (h.hexdigest(), member.size, member.mode, layers.index(layer))
    assert config["rootfs"]["diff_ids"] == diff_ids
    assert layers[0]["digest"] == diff_ids[0] and layers[1]["digest"] == diff_ids[1]  # uncompressed: the same
    assert {name.removeprefix("models/"): sha for name, (sha, _, _, _) in seen.items()} == shas
    assert seen["models/run.sh"][2] == 0o755 and seen["models/config.json"][2] == 0o644
    assert {seen[f"models/{n}"][3] for n in ("config.json", "tokenizer.json", "sub/vocab.txt", "run.sh")} == {2}
    run(["oci-image-tool", "validate", "--type", "image", layout], what="oci-image-tool validate")

    # the lock names every file with its size and sha256, and the image
    locked = json.loads(lock.read_text())
    assert locked["models"]["model"]["image"] == digest
    assert {p: v["sha256"] for p, v in locked["models"]["model"]["files"].items()} == shas
    assert locked["models"]["model"]["files"]["big.safetensors"]["size"] == 1 << 30
    assert json.loads((tmp_path / "result.json").read_text())["digest"] == digest

    # a fresh store gives the same digest
    again = ocibuild("model", src, "--output", f"oci:{tmp_path / 'out' / 'again'}:v1", "--lock", lock,
                     cache=tmp_path / "cache2", env=ENV)
    assert again.stdout.strip() == digest


AUDIT = """
import os, sys
import ocibuild.cli
watched = os.path.realpath(sys.argv[1])
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)) and os.path.realpath(args[0]) == watched:
        print("opened " + watched, file=sys.stderr)
        os._exit(3)
sys.addaudithook(hook)
sys.exit(ocibuild.cli.main(sys.argv[2:]))
"""


def test_a_file_recognised_by_stat_is_not_read_again(tmp_path: Path) -> None:
    src = tmp_path / "model"
    write_file(src / "w.safetensors", 8 << 20)
    args = ["model", str(src), "--output", f"oci:{tmp_path / 'out'}:v1", "--json"]
    env = {**os.environ, "OCIBUILD_CACHE": str(tmp_path / "cache"), **ENV}
    audited = [sys.executable, "-c", AUDIT, str(src / "w.safetensors"), *args]
    # the audit hook sees every open() of the weight file: the first build reads it ...
    first = run(audited, env=env, check=False, text=True)
    assert first.returncode == 3 and "opened" in first.stderr
    built = json.loads(ocibuild(*args, cache=tmp_path / "cache", env=ENV).stdout)
    assert [x["cached"] for x in built["layers"]] == [False]
    # ... a build that recognises it by size, mtime, inode and ctime opens it not at all
    second = run(audited, env=env, text=True)
    again = json.loads(second.stdout)
    assert again["digest"] == built["digest"] and [x["cached"] for x in again["layers"]] == [True]


# ---------------------------------------------------------------------------------------------------
# apps that refer to their models
# ---------------------------------------------------------------------------------------------------


def _blob_uploads(reg: Registry, repo: str, since: int) -> int:
    return reg.count("POST", rf"^/v2/{repo}/blobs/uploads/", since=since)


def test_code_edit_and_weight_change_move_only_their_own_image(tmp_path: Path, plain_registry: Registry) -> None:
    reg = plain_registry
    project = app_project(tmp_path)
    small_model(project / "weights")
    repo = f"models/app-{os.getpid()}"
    out = f"docker://{reg.host}/{repo}:v1"
    result = tmp_path / "result.json"

    def push() -> dict[str, Any]:
        ocibuild("build", project, "--output", out, "--result-json", result, cache=tmp_path / "cache", env=ENV)
        doc: dict[str, Any] = json.loads(result.read_text())
        return doc

    first = push()
    model_digest = first["models"][0]["digest"]
    reference = f"{reg.host}/{repo}-weights@{model_digest}"
    assert first["models"][0]["reference"] == reference
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{repo}:v1").stdout)
    assert raw["annotations"]["org.ocibuild.model.weights"] == reference
    cfg = json.loads(skopeo("inspect", "--config", "--tls-verify=false", f"docker://{reg.host}/{repo}:v1").stdout)
    assert "OCIBUILD_MODEL_WEIGHTS=/mnt/models/weights/models" in cfg["config"]["Env"]
    # the model is not in the app image: its layers are the code only
    assert len(raw["layers"]) == 1
    model_raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reference}").stdout)
    assert [x["annotations"]["org.cncf.model.filepath"] for x in model_raw["layers"]] == ["model.safetensors", "."]

    # a code edit: a new app image, the same model, nothing uploaded to the model's repository
    (project / "app.py").write_text("print('v2')\n")
    mark = reg.mark()
    second = push()
    assert second["digest"] != first["digest"]
    assert second["models"][0]["digest"] == model_digest
    assert _blob_uploads(reg, f"{repo}-weights", mark) == 0
    assert _blob_uploads(reg, repo, mark) == 4  # the code layer, the app's config, its new SBOM and provenance

    # one weight file replaced: a new model image whose only new layer is that file's (+ its config);
    # the app's layers and config stay, only its manifest (the annotation naming the model) is new
    write_file(project / "weights" / "model.safetensors", 2_000_000, seed=7)
    mark = reg.mark()
    failed = ocibuild("build", project, "--output", out, cache=tmp_path / "cache", env=ENV, check=False)
    assert failed.returncode == 1 and "model.safetensors changed" in failed.stderr  # the lock says so first
    third_proc = ocibuild("build", project, "--output", out, "--update-lock", "--result-json", result,
                          cache=tmp_path / "cache", env=ENV)
    assert third_proc.returncode == 0
    third = json.loads(result.read_text())
    assert third["models"][0]["digest"] != model_digest
    new_layers = {x["digest"] for x in third["models"][0]["layers"]} - {x["digest"] for x in
                                                                       second["models"][0]["layers"]}
    assert len(new_layers) == 1
    uploads = [r["path"] for r in reg.requests_since(mark) if r["method"] == "PUT" and "/blobs/uploads/" in r["path"]
               and r["path"].startswith(f"/v2/{repo}-weights/")]
    assert len(uploads) == 2 and any(d.split(":")[1] in p for p in uploads for d in new_layers), uploads
    # the app: no layer, no config; only its evidence (SBOM and provenance name the new model)
    assert _blob_uploads(reg, repo, mark) == 2
    # the app's one new manifest, pushed by digest and by tag (beside its evidence, by digest, listed in the
    # referrers fallback tag of the new manifest)
    puts = {r["path"].rsplit("/", 1)[1] for r in reg.requests_since(mark) if r["method"] == "PUT"
            and r["path"].startswith(f"/v2/{repo}/manifests/")}
    assert third["digest"] in puts
    assert {p for p in puts if not p.startswith("sha256:")} == {"v1", "sha256-" + third["digest"].split(":")[1]}
    assert third["config"]["digest"] == second["config"]["digest"]
    assert [x["digest"] for x in third["layers"]] == [x["digest"] for x in second["layers"]]


def test_stale_weights_lock_fails_naming_the_file_and_pushes_nothing(tmp_path: Path,
                                                                      plain_registry: Registry) -> None:
    reg = plain_registry
    project = app_project(tmp_path)
    small_model(project / "weights")
    repo = f"models/stale-{os.getpid()}"
    ocibuild("build", project, "--output", f"docker://{reg.host}/{repo}:v1", cache=tmp_path / "cache", env=ENV)
    lock = (project / "weights.lock").read_text()
    assert '"config.json"' in lock and '"model.safetensors"' in lock

    cases = [("config.json", lambda: (project / "weights" / "config.json").write_text('{"hidden": 9}\n'),
              "file config.json changed"),
             ("new.txt", lambda: (project / "weights" / "new.txt").write_text("x"), "file new.txt is new"),
             ("tokenizer.json", lambda: (project / "weights" / "tokenizer.json").unlink(),
              "file tokenizer.json is in the lock but no longer in the model folder")]
    shutil.copytree(project / "weights", tmp_path / "pristine")
    for _name, change, fragment in cases:
        shutil.rmtree(project / "weights")
        shutil.copytree(tmp_path / "pristine", project / "weights")
        change()
        mark = reg.mark()
        proc = ocibuild("build", project, "--output", f"docker://{reg.host}/{repo}:v2", cache=tmp_path / "cache",
                        env=ENV, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and lines[-1].startswith("ocibuild: error: "), proc.stderr
        assert fragment in lines[-1] and "--update-lock" in lines[-1] and "Traceback" not in proc.stderr
        assert [r for r in reg.requests_since(mark) if r["method"] in ("PUT", "POST", "PATCH")] == []
        assert (project / "weights.lock").read_text() == lock  # the lock is left as it was
    (project / "weights" / "new.txt").write_text("x")
    fixed = ocibuild("build", project, "--output", f"docker://{reg.host}/{repo}:v2", "--update-lock",
                     cache=tmp_path / "cache", env=ENV)
    assert fixed.returncode == 0
    updated = json.loads((project / "weights.lock").read_text())["models"]["weights"]
    assert sorted(updated["files"]) == ["config.json", "model.safetensors", "new.txt", "sub/vocab.txt"]
    ocibuild("build", project, "--output", f"docker://{reg.host}/{repo}:v2", cache=tmp_path / "cache", env=ENV)


def test_embed_models_puts_the_files_in_the_app_image(tmp_path: Path) -> None:
    project = app_project(tmp_path)
    shas = small_model(project / "weights")
    layout = tmp_path / "out"
    ocibuild("build", project, "--embed-models", "--output", f"oci:{layout}:v1", cache=tmp_path / "cache", env=ENV)
    index = json.loads((layout / "index.json").read_text())
    assert [m["annotations"]["org.opencontainers.image.ref.name"] for m in images_of_index(index)] == ["v1"]
    manifest = manifest_of(layout, "v1")
    assert not any(k.startswith("org.ocibuild.model.") for k in manifest.get("annotations", {}))
    found = {}
    for layer in manifest["layers"]:
        with tarfile.open(layout / "blobs" / "sha256" / layer["digest"].split(":")[1]) as tar:
            for member in tar:
                if member.isfile():
                    f = tar.extractfile(member)
                    assert f is not None
                    found[member.name] = hashlib.sha256(f.read()).hexdigest()
    prefix = "mnt/models/weights/models/"
    assert {k.removeprefix(prefix): v for k, v in found.items() if k.startswith(prefix)} == shas
    assert "app/app.py" in found and not any("weights.lock" in k for k in found)
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    assert "OCIBUILD_MODEL_WEIGHTS=/mnt/models/weights/models" in config["config"]["Env"]


def test_model_images_go_beside_layout_and_archive_outputs(tmp_path: Path) -> None:
    project = app_project(tmp_path)
    small_model(project / "weights")
    layout, archive = tmp_path / "out" / "layout", tmp_path / "out" / "app.tar"
    proc = ocibuild("build", project, "--output", f"oci:{layout}:v1", "--output", f"oci-archive:{archive}:v1",
                    "--json", cache=tmp_path / "cache", env=ENV)
    doc = json.loads(proc.stdout)
    model = doc["models"][0]
    assert model["reference"] == f"proj-weights@{model['digest']}"  # no registry output: the folder's name
    assert tag_descriptor(layout, "v1-weights")["digest"] == model["digest"]
    assert (tmp_path / "out" / "app-weights.tar").is_file()
    inspected = json.loads(skopeo("inspect", "--raw", f"oci-archive:{tmp_path / 'out' / 'app-weights.tar'}:v1").stdout)
    assert inspected["layers"][0]["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
    assert doc["outputs"][-1] == f"oci-archive:{archive}:v1"  # the app is written after its models


# ---------------------------------------------------------------------------------------------------
# bad input: one error line, nothing written
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("models", "fragment"), [
    ('[[models]]\nname = "Weights"\nsrc = "weights"\n', "model name 'Weights' must be lowercase"),
    ('[[models]]\nname = "weights"\n', "needs both 'name'"),
    ('[[models]]\nname = "weights"\nsrc = "nope"\n', "model 'weights': src nope does not exist"),
    ('[[models]]\nname = "weights"\nsrc = "weights"\nfiles = ["x"]\n', "unknown key 'files'"),
    ('[[models]]\nname = "weights"\nsrc = "weights"\n[[models]]\nname = "weights"\nsrc = "weights"\n',
     "two [[models]] are named 'weights'"),
    ('[[models]]\nname = "weights"\nsrc = "weights"\ninclude = ["*.gguf"]\n', "holds no files that match"),
    ('[[models]]\nname = "weights"\nsrc = "../outside"\n', "outside the project folder"),
    ('models = "weights"\n', "models must be an array of tables"),
])
def test_bad_models_table_is_one_error_line(tmp_path: Path, models: str, fragment: str) -> None:
    project = tmp_path / "proj"
    small_model(project / "weights")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.bin").write_text("x")
    (project / "ocibuild.toml").write_text('base = "scratch"\n' + models)
    proc = ocibuild("build", project, "--output", f"oci:{tmp_path / 'out'}:v1", cache=tmp_path / "cache", env=ENV,
                    check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) >= 1 and lines[-1].startswith("ocibuild: error: "), proc.stderr
    assert fragment in lines[-1], lines[-1]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists() and not (project / "weights.lock").exists()


@pytest.mark.parametrize(("lock_text", "fragment"), [
    ("{not json", "not a valid weights lock"),
    ('{"version": 2, "models": {}}', "not a version 1 weights lock"),
    ('{"version": 1, "models": {"weights": {"files": {"a": {"size": "1"}}}}}', "has no valid 'files' table"),
    ("[" * 100000 + "]" * 100000, "not a valid weights lock"),
], ids=["not-json", "version", "files", "deep"])
def test_malformed_weights_lock_is_one_error_line(tmp_path: Path, lock_text: str, fragment: str) -> None:
    project = app_project(tmp_path)
    small_model(project / "weights")
    (project / "weights.lock").write_text(lock_text)
    proc = ocibuild("build", project, "--output", f"oci:{tmp_path / 'out'}:v1", cache=tmp_path / "cache", env=ENV,
                    check=False)
    assert proc.returncode == 1 and fragment in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "fragment"), [
    (["missing-folder"], "src"),
    (["model", "--name", "Bad Name"], "--name 'Bad Name'"),
    (["model", "--output", "oci:out:v1", "--output", "docker://"], "invalid"),
])
def test_model_command_errors(tmp_path: Path, args: list[str], fragment: str) -> None:
    small_model(tmp_path / "model")
    full = [args[0], "--output", f"oci:{tmp_path / 'out'}:v1", *args[1:]] if "--output" not in args else args
    proc = ocibuild("model", *full, cache=tmp_path / "cache", cwd=tmp_path, env=ENV, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode in (1, 2) and lines and fragment in lines[-1] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()

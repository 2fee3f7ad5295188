"""Batch builds (``ocibuild build A B ...``, ``--workspace``): real registry (its access log), real uv over a
local wheelhouse, a Debian python base; shared layers built once and uploaded once."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness.registry import Registry
from test_python_deps import _fake_wheel

REPO = Path(__file__).resolve().parents[1]
SHARED = {"alpha": "1.0", "beta": "1.0", "gamma": "1.0", "delta": "1.0"}


def ocibuild(*args: str | Path, cache: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000",
           "PYTHONPATH": str(REPO), "DOCKER_CONFIG": str(cache.parent / "no-docker-config")}
    return subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900, cwd=cwd)


def fake_wheel(directory: Path, name: str, version: str) -> Path:
    """A minimal valid pure-Python wheel with a RECORD."""
    return _fake_wheel(directory, name, version, "py3-none-any")


def make_project(folder: Path, base: str, wheels: Path, pins: dict[str, str], *, weights: bool = True) -> Path:
    """A model-server project: the shared dependencies, app.py, and a small weights file of its own."""
    folder.mkdir(parents=True)
    (folder / "app.py").write_text("import alpha\nprint('serving', open('/app/weights.bin', 'rb').read()[:8])\n")
    if weights:
        (folder / "weights.bin").write_bytes(hashlib.sha256(folder.name.encode()).digest() * 64)
    (folder / "requirements.txt").write_text("".join(f"{k}=={v}\n" for k, v in pins.items()))
    (folder / "ocibuild.toml").write_text(
        f'base = "{base}"\nentrypoint = ["python3", "/app/app.py"]\n'
        f'[python]\nrequirements = "requirements.txt"\nfind_links = ["{wheels}"]\nno_index = true\nbytecode = false\n')
    return folder


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    wheels = tmp_path / "wheels"
    for name, version in SHARED.items():
        fake_wheel(wheels, name, version)
    fake_wheel(wheels, "beta", "1.1")
    return wheels


def uploads(log: list[dict[str, Any]]) -> Counter[str]:
    """Digest -> blob uploads finished (``PUT`` of an upload session with ``?digest=``, answered 201)."""
    return Counter(r["query"]["digest"][0] for r in log
                   if r["method"] == "PUT" and "/blobs/uploads/" in r["route"] and r["status"] == 201
                   and "digest" in r["query"])


def mounts(log: list[dict[str, Any]]) -> Counter[str]:
    return Counter(r["query"]["mount"][0] for r in log
                   if r["method"] == "POST" and "mount" in r["query"] and r["status"] == 201)


def layer_digests(result: dict[str, Any], prefix: str = "") -> dict[str, str]:
    return {x["label"]: x["digest"] for x in result["layers"] if x["label"].startswith(prefix)}


def test_workspace_of_ten_uploads_each_shared_layer_once(tmp_path: Path, debian_python_layout: Path,
                                                         wheelhouse: Path, plain_registry: Registry) -> None:
    """The issue's acceptance: 10 model servers sharing their dependencies, cold, then one dependency bumped."""
    base = f"oci:{debian_python_layout}:bookworm-py"
    names = [f"server{i:02d}" for i in range(10)]
    for name in names:
        make_project(tmp_path / "ws" / "models" / name, base, wheelhouse, SHARED)
    repo = f"batch-{tmp_path.name.lower()[-20:].strip('_')}"
    (tmp_path / "ws" / "ocibuild-workspace.toml").write_text(
        f'[workspace]\nprojects = ["models/*"]\noutput = "docker://{plain_registry.host}/{repo}/{{name}}:latest"\n')
    cache = tmp_path / "cache"

    mark = plain_registry.mark()
    proc = ocibuild("build", "--workspace", tmp_path / "ws" / "ocibuild-workspace.toml", "--json", "--jobs", "4",
                    "--insecure-registry", plain_registry.host, cache=cache)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["failed"] == []
    results = {r["name"]: r for r in doc["results"]}
    assert sorted(results) == names
    assert {r["project"] for r in doc["results"]} == {str(tmp_path / "ws" / "models" / n) for n in names}
    # the summary table on stderr: one row per project and the total
    assert "PROJECT" in proc.stderr and "CACHED" in proc.stderr and "10 images;" in proc.stderr

    deps = {label: d for label, d in layer_digests(results[names[0]], "py:").items()}
    assert len(deps) >= 2  # the venv and at least one bucket of the shared wheels
    for r in results.values():
        assert layer_digests(r, "py:") == deps  # the same dependency layers in every image
        assert r["outputs"] == [f"docker://{plain_registry.host}/{repo}/{r['name']}:latest"]
    # built once: exactly one project built each shared layer, the others found it in the store
    for digest in deps.values():
        built = [r["name"] for r in results.values() for x in r["layers"] if x["digest"] == digest and not x["cached"]]
        assert len(built) == 1, (digest, built)
    # pushed once: each layer two or more images share (dependencies and base) is uploaded once, mounted 9 times
    log = plain_registry.requests_since(mark)
    up, mounted = uploads(log), mounts(log)
    session = plain_registry.session()
    manifests = [session.get(f"{plain_registry.url}/v2/{repo}/{r['name']}/manifests/{r['digest']}",
                             headers={"Accept": r["manifest"]["mediaType"]}).json() for r in results.values()]
    shared = {d for d, n in Counter(x["digest"] for m in manifests for x in m["layers"]).items() if n > 1}
    assert set(deps.values()) <= shared
    for digest in shared:
        assert up[digest] == 1, (digest, up[digest], mounted[digest])
        assert mounted[digest] == 9, (digest, mounted[digest])
    for r in results.values():  # and each image is in its repository, by tag
        pulled = session.get(f"{plain_registry.url}/v2/{repo}/{r['name']}/manifests/latest",
                                              headers={"Accept": r["manifest"]["mediaType"]})
        assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == r["digest"]
    pushed = sum(r["pushed"]["bytes"] for r in results.values())
    one_image = sum(x["size"] for x in manifests[0]["layers"])  # the base (~45 MB) and the added layers
    assert one_image <= pushed < one_image + 10 * sum(x["size"] for x in results[names[0]]["layers"]) + 1_000_000

    # one shared dependency bumped in every project: that one layer is uploaded once, and 10 new manifests
    for name in names:
        req = tmp_path / "ws" / "models" / name / "requirements.txt"
        req.write_text(req.read_text().replace("beta==1.0", "beta==1.1"))
    mark = plain_registry.mark()
    proc = ocibuild("build", "--workspace", tmp_path / "ws" / "ocibuild-workspace.toml", "--json",
                    "--insecure-registry", plain_registry.host, cache=cache)
    assert proc.returncode == 0, proc.stderr
    again = {r["name"]: r for r in json.loads(proc.stdout)["results"]}
    new_deps = layer_digests(again[names[0]], "py:")
    changed = {label for label in deps if new_deps[label] != deps[label]}
    assert len(changed) == 1, changed  # beta's bucket
    (label,) = changed
    fresh = new_deps[label]
    log = plain_registry.requests_since(mark)
    up, mounted = uploads(log), mounts(log)
    assert up[fresh] == 1 and mounted[fresh] == 9, (up[fresh], mounted[fresh])
    for old in shared:
        assert up[old] == 0 and mounted[old] == 0  # unchanged layers: no upload, no mount
    for r in again.values():
        assert r["digest"] != results[r["name"]]["digest"]
        assert [x["cached"] for x in r["layers"] if x["digest"] == fresh].count(False) <= 1
    image_puts = [x for x in log if x["method"] == "PUT" and "/manifests/" in x["route"]
                  and x["route"].rsplit("/", 1)[1] in {r["digest"] for r in again.values()}]
    assert len(image_puts) == 10 and all(x["status"] == 201 for x in image_puts)
    assert sum(1 for r in again.values() for x in r["layers"] if x["digest"] == fresh and not x["cached"]) == 1


def test_projects_on_the_command_line(tmp_path: Path, debian_python_layout: Path, wheelhouse: Path) -> None:
    """Several PROJECTs, an --output template, --json's shape; each image as the single build makes it."""
    base = f"oci:{debian_python_layout}:bookworm-py"
    projects = [make_project(tmp_path / name, base, wheelhouse, SHARED) for name in ("api", "worker", "Scorer_V2")]
    cache = tmp_path / "cache"
    proc = ocibuild("build", *projects, "--output", f"oci:{tmp_path / 'out' / '{name}'}:v1", "--json", cache=cache)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"results", "failed", "seconds"} and doc["failed"] == []
    assert [r["name"] for r in doc["results"]] == ["api", "worker", "scorer_v2"]
    for r, project in zip(doc["results"], projects, strict=True):
        assert r["project"] == str(project)
        assert r["outputs"] == [f"oci:{tmp_path / 'out' / r['name']}:v1"]
        assert r["digest"].startswith("sha256:") and r["layers"] and r["pushed"]["bytes"] == 0
        index = json.loads((tmp_path / "out" / r["name"] / "index.json").read_text())
        assert r["digest"] in {m["digest"] for m in index["manifests"]}
    # the batch's image is the single build's, byte for byte
    single = ocibuild("build", projects[1], "--output", f"oci:{tmp_path / 'single'}:v1", "--quiet",
                      cache=tmp_path / "cache2")
    assert single.returncode == 0, single.stderr
    assert single.stdout.strip() == doc["results"][1]["digest"]
    # --quiet: one digest per line, nothing on stderr
    quiet = ocibuild("build", *projects, "--output", f"oci:{tmp_path / 'out' / '{name}'}:v1", "-q", cache=cache)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.split() == [r["digest"] for r in doc["results"]] and quiet.stderr == ""


def test_a_failing_project_fails_the_batch_after_the_others(tmp_path: Path, debian_python_layout: Path,
                                                            wheelhouse: Path, plain_registry: Registry) -> None:
    base = f"oci:{debian_python_layout}:bookworm-py"
    good = [make_project(tmp_path / n, base, wheelhouse, SHARED) for n in ("one", "two", "four")]
    bad = make_project(tmp_path / "three", base, wheelhouse, {**SHARED, "nosuchthing": "9.9"})
    repo = f"fail-{tmp_path.name.lower()[-20:].strip('_')}"
    out = f"docker://{plain_registry.host}/{repo}/{{name}}:v1"
    proc = ocibuild("build", good[0], good[1], bad, good[2], "--output", out, "--jobs", "2", "--json",
                    "--insecure-registry", plain_registry.host, cache=tmp_path / "cache")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["name"] for r in doc["results"]] == ["one", "two", "four"]
    assert [(f["name"], f["project"]) for f in doc["failed"]] == [("three", str(bad))]
    assert "nosuchthing" in doc["failed"][0]["error"]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ocibuild: error:")]
    assert len(errors) == 1 and errors[0].startswith(f"ocibuild: error: three ({bad}): ") and "nosuchthing" in errors[0]
    assert "Traceback" not in proc.stderr
    session = plain_registry.session()
    for r in doc["results"]:
        got = session.head(f"{plain_registry.url}/v2/{repo}/{r['name']}/manifests/v1",
                           headers={"Accept": r["manifest"]["mediaType"]})
        assert got.status_code == 200 and got.headers["Docker-Content-Digest"] == r["digest"]
    assert session.head(f"{plain_registry.url}/v2/{repo}/three/manifests/v1").status_code == 404


def _scratch_project(folder: Path, output: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "hello.txt").write_text(folder.name + "\n")
    outputs = f'outputs = ["{output}"]\n' if output else ""
    (folder / "ocibuild.toml").write_text(f'base = "scratch"\n{outputs}')
    return folder


def test_workspace_folders_per_project_outputs_and_missing_output(tmp_path: Path) -> None:
    """A folder stands for every project below it; [[project]] outputs win; a project without one fails
    alone, named."""
    ws = tmp_path / "ws"
    _scratch_project(ws / "fleet" / "a")
    _scratch_project(ws / "fleet" / "deep" / "b")
    (ws / "fleet" / "deep" / "b" / "sub").mkdir()
    _scratch_project(ws / "fleet" / "deep" / "b" / "sub" / "ignored")  # inside a project: not one of its own
    (ws / "fleet" / "notes").mkdir()
    _scratch_project(ws / "api", output=f"oci:{tmp_path / 'from-build-file'}:api")
    _scratch_project(ws / "lonely")
    (ws / "ocibuild-workspace.toml").write_text(
        '[workspace]\nprojects = ["fleet"]\noutput = "oci:out/{name}:latest"\n'
        '[[project]]\npath = "api"\nname = "front"\noutput = ["oci:out/api:v2"]\n'
        '[[project]]\npath = "lonely"\n')
    from ocibuild import load_workspace

    projects = load_workspace(ws / "ocibuild-workspace.toml")
    assert [(p.name, p.path.relative_to(ws).as_posix(), p.outputs) for p in projects] == [
        ("a", "fleet/a", ("oci:out/{name}:latest",)), ("b", "fleet/deep/b", ("oci:out/{name}:latest",)),
        ("front", "api", ("oci:out/api:v2",)), ("lonely", "lonely", ("oci:out/{name}:latest",))]
    (ws / "ocibuild-workspace.toml").write_text(
        '[workspace]\nprojects = ["fleet"]\noutput = "oci:' + str(tmp_path / "out") + '/{name}:latest"\n'
        '[[project]]\npath = "api"\nname = "front"\n'
        '[[project]]\npath = "lonely"\noutput = "oci:' + str(tmp_path / "out") + '/b:latest"\n')
    proc = ocibuild("build", "--workspace", ws / "ocibuild-workspace.toml", "--json", cache=tmp_path / "cache")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert [r["name"] for r in doc["results"]] == ["a", "b", "front"]
    assert doc["results"][2]["outputs"] == [f"oci:{tmp_path / 'out'}/front:latest"]
    assert [f["name"] for f in doc["failed"]] == ["lonely"]
    assert "is also project b's" in doc["failed"][0]["error"]
    # without a workspace default, a project with no output at all is named
    proc = ocibuild("build", ws / "fleet" / "a", ws / "lonely", "--json", cache=tmp_path / "cache")
    assert proc.returncode == 1
    failed = json.loads(proc.stdout)["failed"]
    assert [f["name"] for f in failed] == ["a", "lonely"]
    assert "project a (" in failed[0]["error"] and "has no output" in failed[0]["error"]


@pytest.mark.parametrize(("text", "fragments"), [
    ("[workspace\n", ("invalid TOML",)),
    ('[workspace]\nprojcts = ["x"]\n', ("[workspace]", "unknown key 'projcts'", "did you mean 'projects'")),
    ('[workspace]\nprojects = "nothing/*"\n', ("workspace.projects", "'nothing/*' matches no project folder")),
    ("[workspace]\nprojects = [1]\n", ("workspace.projects must be a list",)),
    ('[workspace]\nprojects = ["p"]\noutput = 3\n', ("workspace.output must be a location",)),
    ('[[project]]\npath = "missing"\n', ("project[0].path", "no such folder")),
    ('[[project]]\npath = "p"\ntag = "x"\n', ("project[0]", "unknown key 'tag'")),
    ('[[project]]\npath = "p"\nname = "Not Valid"\n', ("project[0].name",)),
    ("[workspace]\n", ("no projects",)),
    ('[tool]\nx = 1\n', ("unknown key 'tool'",)),
])
def test_bad_workspace_file(tmp_path: Path, text: str, fragments: tuple[str, ...]) -> None:
    _scratch_project(tmp_path / "p")
    ws = tmp_path / "ocibuild-workspace.toml"
    ws.write_text(text)
    proc = ocibuild("build", "--workspace", ws, "--output", f"oci:{tmp_path / 'out'}/{{name}}:v1",
                    cache=tmp_path / "cache")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith((f"ocibuild: error: {ws}", f"ocibuild: error: workspace file {ws}")), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "out").exists() and proc.stdout == ""


def test_bad_batch_command_lines(tmp_path: Path) -> None:
    a, b = _scratch_project(tmp_path / "a"), _scratch_project(tmp_path / "b")
    cache = tmp_path / "cache"
    cases = [
        ((a, b, "--output", f"oci:{tmp_path / 'out'}:v1"), "put {name}"),
        ((a, b, "--output", "oci:x/{name}:v1", "--print-plan"), "--print-plan is for one project"),
        ((a, b, "--output", "oci:x/{name}:v1", "--jobs", "0"), "--jobs 0"),
        ((a, "--workspace", tmp_path / "w.toml", "--output", "oci:x/{name}:v1"), "not both"),
        (("--workspace", tmp_path / "none.toml"), "workspace file"),
    ]
    for args, fragment in cases:
        proc = ocibuild("build", *args, cache=cache, cwd=tmp_path)
        assert proc.returncode == 1 and fragment in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "out").exists() and not (tmp_path / "x").exists()
    # dev still takes one project
    proc = ocibuild("dev", a, b, cache=cache)
    assert proc.returncode == 2 and "unrecognized arguments" in proc.stderr
    # a single project keeps the single build's output: the digest alone
    proc = ocibuild("build", a, "--output", f"oci:{tmp_path / 'one'}:v1", cache=cache)
    assert proc.returncode == 0 and proc.stdout.count("\n") == 1 and proc.stdout.startswith("sha256:")


def test_library_build_many_counts_and_orders(tmp_path: Path) -> None:
    """The library face: plans in, results in the order given; the same files twice: built once."""
    from ocibuild import BatchProject, ContentStore, Overrides, build_many, plan_projects

    for name in ("x", "y"):
        _scratch_project(tmp_path / name)
        (tmp_path / name / "hello.txt").write_text("the same in both\n")
    plans = plan_projects([BatchProject.at(tmp_path / n) for n in ("y", "x")],
                          overrides=Overrides(outputs=(f"oci:{tmp_path / 'o'}:{{name}}",)))
    batch = build_many(plans, store=ContentStore(tmp_path / "store"), jobs=2)
    assert batch.ok and [r.name for r in batch.results] == ["y", "x"]
    assert batch.results[0].digest == batch.results[1].digest
    assert sorted((r.built, r.cached) for r in batch.results) == [(0, 1), (1, 0)]


def test_name_in_the_output_of_one_project_is_its_folder_name(tmp_path: Path) -> None:
    """``{name}`` means the same with one project as with several (the single build path expands it)."""
    project = _scratch_project(tmp_path / "My_Model")
    one = ocibuild("build", project, "--output", f"oci:{tmp_path}/out/{{name}}:v1", cache=tmp_path / "c")
    assert one.returncode == 0, one.stderr
    assert (tmp_path / "out" / "my_model" / "index.json").is_file()
    two = ocibuild("build", project, _scratch_project(tmp_path / "other"), "--output",
                   f"oci:{tmp_path}/out/{{name}}:v1", cache=tmp_path / "c")
    assert two.returncode == 0, two.stderr
    assert one.stdout.split()[0] in two.stdout  # the same image either way

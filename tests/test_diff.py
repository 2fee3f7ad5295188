"""``ocibuild diff A B`` and ``ocibuild build --explain``, on real builds of the iris server (real PyPI
wheels, a Debian python base) in one content store: a one-line edit names exactly the one changed file
in the one changed layer and why; a numpy bump names numpy's layer and the version change; unrelated
images list layers only; layouts, archives and registry references compare alike."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness.cli import ocibuild
from harness.registry import Registry

from ocibuild import mutate
from ocibuild.build import build
from ocibuild.config import Overrides, load_plan
from ocibuild.diff import diff_images, render
from ocibuild.errors import SourceError
from ocibuild.events import Event, LayerExplained
from ocibuild.explain import causes, recall
from ocibuild.image import Image, Layer, store_layer
from ocibuild.layers import TarEntry, build_layer
from ocibuild.sources.base import scratch
from ocibuild.spec.annotations import BASE_DIGEST
from ocibuild.store import ContentStore

REPO = Path(__file__).resolve().parents[1]
IRIS = REPO / "examples" / "iris-server"
pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Builds:
    app: Path
    cache: Path
    out: Path
    base: str
    explain_edit: str  # stderr of the build after the edit, with --explain
    explain_bump: str  # stderr of the build after the numpy bump, with --explain
    registry: Registry


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory, debian_python_layout: Path, plain_registry: Registry) -> Builds:
    """v1: the iris server; v2: one line of server.py changed; v3: numpy 2.2.6 -> 2.2.5 — one store."""
    root = tmp_path_factory.mktemp("diff")
    app = Path(shutil.copytree(IRIS, root / "iris"))
    (app / "model" / "model.joblib").write_bytes(b"not a real model: the diff tests never run the server")
    cache, out = root / "cache", root / "out"
    base = f"oci:{debian_python_layout}:bookworm-py"

    def run(tag: str, *extra: str) -> str:
        return ocibuild("build", app, "--base", base, "--platform", "linux/amd64", "--sbom", "none",
                        "--output", f"oci:{out}:{tag}", *extra, cache=cache).stderr

    run("v1", "--output", f"docker://{plain_registry.host}/diff/iris:v1")
    server = app / "server.py"
    text = server.read_text()
    assert 'VERSION = "1"' in text
    server.write_text(text.replace('VERSION = "1"', 'VERSION = "2"'))
    edit = run("v2", "--explain", "--output", f"oci-archive:{root / 'v2.tar'}:v2")
    reqs = app / "requirements.txt"
    assert "numpy==2.2.6" in reqs.read_text()
    reqs.write_text(reqs.read_text().replace("numpy==2.2.6", "numpy==2.2.5"))
    bump = run("v3", "--explain")
    return Builds(app=app, cache=cache, out=out, base=base, explain_edit=edit, explain_bump=bump,
                  registry=plain_registry)


def _diff(b: Builds, *args: str) -> dict[str, Any]:
    proc = ocibuild("diff", *args, "--json", cache=b.cache)
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def _changed(data: dict[str, Any]) -> list[dict[str, Any]]:
    [image] = data["images"]
    return [layer for layer in image["layers"] if layer["status"] != "unchanged"]


def test_one_line_edit_names_the_one_file_in_the_one_layer(builds: Builds) -> None:
    data = _diff(builds, f"oci:{builds.out}:v1", f"oci:{builds.out}:v2")
    [layer] = _changed(data)
    assert layer["status"] == "changed" and layer["created_by"] == "ocibuild: COPY server.py /app/server.py", layer
    assert layer["files"] == [{"path": "/app/server.py", "change": "changed", "what": ["content"]}]
    [cause] = layer["cause"]
    assert cause.startswith("/app/server.py: content changed (sha256 "), cause
    unchanged = [x for x in data["images"][0]["layers"] if x["status"] == "unchanged"]
    assert len(unchanged) >= 8  # the base's and every dependency layer
    assert data["images"][0]["config"] == [] and not data["identical"]
    human = ocibuild("diff", f"oci:{builds.out}:v1", f"oci:{builds.out}:v2", cache=builds.cache).stdout
    assert re.search(r"^\s+~ /app/server\.py \(content\)$", human, re.MULTILINE), human
    assert re.search(r"^\s+why: /app/server\.py: content changed", human, re.MULTILINE), human
    assert "1 changed, 0 added, 0 removed" in human


def test_numpy_bump_names_numpys_layer_and_the_version_change(builds: Builds) -> None:
    data = _diff(builds, f"oci:{builds.out}:v2", f"oci:{builds.out}:v3")
    [layer] = _changed(data)
    assert layer["created_by"].startswith("ocibuild: python numpy"), layer["created_by"]
    assert layer["cause"] and layer["cause"][0].startswith("numpy 2.2.6 -> 2.2.5 (sha256 "), layer["cause"]
    paths = {f["path"] for f in layer["files"]}
    assert any("numpy-2.2.5.dist-info" in p for p in paths) and any("numpy-2.2.6.dist-info" in p for p in paths)
    human = ocibuild("diff", f"oci:{builds.out}:v2", f"oci:{builds.out}:v3", cache=builds.cache).stdout
    assert "why: numpy 2.2.6 -> 2.2.5" in human and "more files (--json lists them all)" in human


def test_build_explain_says_why_each_built_layer_was_built(builds: Builds) -> None:
    assert re.search(r"why: /app/server\.py: content changed", builds.explain_edit), builds.explain_edit
    assert re.search(r"why: numpy 2\.2\.6 -> 2\.2\.5", builds.explain_bump), builds.explain_bump
    # only the layers that were built are explained: the edit rebuilt the code layer only
    assert len(re.findall(r"why: ", builds.explain_edit)) == 1, builds.explain_edit
    assert re.search(r"^layer\s+py:numpy\s+cached", builds.explain_edit, re.MULTILINE), builds.explain_edit
    assert re.search(r"^layer\s+code\s+built.*\n\s+why: /app/server\.py", builds.explain_edit, re.MULTILINE)


def test_explain_events_from_the_library(builds: Builds, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A library caller gets LayerExplained events; a layer taken from the cache gets none."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # as the CLI builds had it: else mtime is a cause
    plan = load_plan(builds.app, overrides=Overrides(base=builds.base, platform="linux/amd64",
                                                     outputs=(f"oci:{tmp_path / 'o'}:x",)))
    store = ContentStore(builds.cache)
    (builds.app / "server.py").write_text((builds.app / "server.py").read_text() + "# one more line\n")
    events: list[Event] = []
    result = build(plan, store=store, on_event=events.append, explain=True)
    explained = [e for e in events if isinstance(e, LayerExplained)]
    assert [e.label for e in explained] == ["code"], explained
    assert explained[0].causes[0].startswith("/app/server.py: content changed")
    built = {r.label for r in result.layers if not r.cached}
    assert built == {"code"}
    # the inputs noted for the new code layer are what a diff compares
    code = next(r for r in result.layers if r.label == "code")
    noted = recall(store, code.layer.digest)
    assert noted is not None and noted["files"]["app/server.py"][0] == "file"
    assert causes(noted, noted) == ("the same inputs (the layer was made by another version of ocibuild)",)


def test_registry_and_archive_compare_like_layouts(builds: Builds) -> None:
    ref = f"docker://{builds.registry.host}/diff/iris:v1"
    data = _diff(builds, ref, f"oci-archive:{builds.out.parent / 'v2.tar'}:v2")
    [layer] = _changed(data)
    assert [f["path"] for f in layer["files"]] == ["/app/server.py"]
    assert data["a"] == ref


def test_unrelated_images_list_layers_only(builds: Builds, busybox_layout: Path) -> None:
    proc = ocibuild("diff", f"oci:{busybox_layout}:busybox", f"oci:{builds.out}:v1", "--json", cache=builds.cache)
    data = json.loads(proc.stdout)
    layers = data["images"][0]["layers"]
    assert {x["status"] for x in layers} == {"added", "removed"}
    assert all(x["files"] == [] and x["cause"] == [] for x in layers)
    assert sum(x["status"] == "removed" for x in layers) == 1  # busybox's one layer
    human = ocibuild("diff", f"oci:{busybox_layout}:busybox", f"oci:{builds.out}:v1", cache=builds.cache)
    assert human.returncode == 0 and "why:" not in human.stdout and "0 changed" in human.stdout
    assert any(c.startswith("entrypoint:") for c in data["images"][0]["config"])


def test_another_project_on_the_same_base_is_not_compared_layer_by_layer(builds: Builds, tmp_path: Path) -> None:
    """Another app with the same step (``COPY server.py /app/server.py``) on the same base: its layers are
    listed, never paired with iris's (known by this store as another project's; elsewhere, by its title)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "server.py").write_text("print('another server')\n")
    (other / "ocibuild.toml").write_text('entrypoint = ["python3", "/app/server.py"]\n'
                                         'labels = { "org.opencontainers.image.title" = "other" }\n'
                                         '[[layers]]\nname = "code"\nsrc = "server.py"\ndest = "/app/server.py"\n')
    ocibuild("build", other, "--base", builds.base, "--sbom", "none", "--output", f"oci:{tmp_path / 'o'}:x",
             cache=builds.cache)
    for cache in (builds.cache, tmp_path / "empty-store"):
        data = _diff(Builds(**{**builds.__dict__, "cache": cache}), f"oci:{builds.out}:v1", f"oci:{tmp_path / 'o'}:x")
        statuses = {x["status"] for x in data["images"][0]["layers"]}
        assert statuses == {"unchanged", "added", "removed"}, data  # the base's layers are the same
        assert all(x["cause"] == [] for x in data["images"][0]["layers"])


def test_identical_images(builds: Builds) -> None:
    data = _diff(builds, f"oci:{builds.out}:v1", f"docker://{builds.registry.host}/diff/iris:v1")
    assert data["identical"] and _changed(data) == []


@pytest.mark.parametrize(("args", "message"), [
    (["oci:/nonexistent/layout:v1", "oci:/nonexistent/other:v1"], "/nonexistent/layout"),
    (["oci-archive:/nonexistent/a.tar", "oci:{out}:v1"], "/nonexistent/a.tar"),
    (["docker://127.0.0.1:1/UPPER:x", "oci:{out}:v1"], "UPPER"),
    (["oci:{out}:v1", "oci:{out}:v1", "--platform", "linux/"], "--platform"),
    (["oci:{out}:v1", "oci:{out}:nosuchtag"], "nosuchtag"),
])
def test_bad_input_is_one_clear_error(builds: Builds, args: list[str], message: str) -> None:
    proc = ocibuild("diff", *[a.format(out=builds.out) for a in args], cache=builds.cache, check=False)
    assert proc.returncode in (1, 2), proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_two_platform_indexes_compare_platform_by_platform(tmp_path: Path) -> None:
    """Scratch-based two-platform builds of the hello example: each platform's image shows the edit."""
    app = Path(shutil.copytree(REPO / "examples" / "hello", tmp_path / "hello"))
    cache = tmp_path / "cache"
    args = ["--base", "scratch", "--platform", "linux/amd64,linux/arm64"]
    ocibuild("build", app, *args, "--output", f"oci:{tmp_path / 'o'}:a", cache=cache)
    (app / "hello.py").write_text((app / "hello.py").read_text() + "# edited\n")
    ocibuild("build", app, *args, "--output", f"oci:{tmp_path / 'o'}:b", cache=cache)
    data = json.loads(ocibuild("diff", f"oci:{tmp_path / 'o'}:a", f"oci:{tmp_path / 'o'}:b", "--json",
                               cache=cache).stdout)
    assert [i["platform"].split("/")[:2] for i in data["images"]] == [["linux", "amd64"], ["linux", "arm64"]]
    for image in data["images"]:
        [layer] = [x for x in image["layers"] if x["status"] == "changed"]
        assert [f["path"] for f in layer["files"]] == ["/app/hello.py"]
    one = json.loads(ocibuild("diff", f"oci:{tmp_path / 'o'}:a", f"oci:{tmp_path / 'o'}:b", "--json",
                              "--platform", "linux/arm64", cache=cache).stdout)
    assert [i["platform"].split("/")[:2] for i in one["images"]] == [["linux", "arm64"]]


# --- in process: pairing, hostile layers, escaping (no build) ------------------------------------------

def _layer(store: ContentStore, files: dict[str, bytes]) -> Layer:
    built = build_layer([TarEntry.file(p, d) for p, d in files.items()], store)
    return store_layer(store, built.descriptor, built.diff_id)


def _img(*layers: tuple[Layer, str], notes: dict[str, str] | None = None) -> Image:
    image = mutate.append(scratch(None), *(mutate.Addendum(layer=layer, created_by=by) for layer, by in layers))
    return mutate.with_annotations(image, notes or {})


def test_images_sharing_nothing_are_not_paired_by_role(tmp_path: Path) -> None:
    """Two different projects both have an ``ocibuild: COPY . /app`` layer: listed, not compared."""
    store = ContentStore(tmp_path / "s")
    a = _img((_layer(store, {"app/a.py": b"a"}), "ocibuild: COPY . /app"),
             (_layer(store, {"app/m": b"m"}), "ocibuild: COPY model /app/model"))
    b = _img((_layer(store, {"app/b.py": b"b"}), "ocibuild: COPY . /app"))
    assert [c.status for c in diff_images(a, b, store).layers] == ["removed", "removed", "added"]
    # made by the same steps (a scratch-based app before and after an edit): compared
    one = _img((_layer(store, {"app/b.py": b"B"}), "ocibuild: COPY . /app (app)"))
    assert [c.status for c in diff_images(b, one, store).layers] == ["changed"]
    shared = _layer(store, {"lib/x": b"x"})
    a2 = _img((shared, "base"), (_layer(store, {"app/a.py": b"a"}), "ocibuild: COPY . /app (code)"))
    b2 = _img((shared, "base"), (_layer(store, {"app/a.py": b"A"}), "ocibuild: COPY . /app (code)"))
    result = diff_images(a2, b2, store)
    assert [c.status for c in result.layers] == ["unchanged", "changed"]
    assert [str(f) for f in result.layers[1].files] == ["~ /app/a.py (content)"]
    assert result.layers[1].cause == ("/app/a.py: content changed (sha256 ca978112ca1b -> 559aead08264)",)
    same_base = {BASE_DIGEST: "sha256:" + "1" * 64}
    a3 = _img((_layer(store, {"app/a.py": b"1"}), "ocibuild: COPY . /app"), notes=same_base)
    b3 = _img((_layer(store, {"app/a.py": b"2"}), "ocibuild: COPY . /app"), notes=same_base)
    assert [c.status for c in diff_images(a3, b3, store).layers] == ["changed"]


def test_hostile_layers_are_refused_not_held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Too many entries, or a name longer than PATH_MAX: one clear SourceError, memory stays bounded."""
    import ocibuild.rebuild as rebuild

    store = ContentStore(tmp_path / "s")
    shared = _layer(store, {"x": b"x"})
    many = _img((shared, "base"), (_layer(store, {f"f{i}": b"" for i in range(50)}), "ocibuild: COPY . /app"))
    few = _img((shared, "base"), (_layer(store, {"f0": b"1"}), "ocibuild: COPY . /app"))
    monkeypatch.setattr(rebuild, "MAX_ENTRIES", 20)
    with pytest.raises(SourceError, match="more than 20 entries"):
        diff_images(few, many, store)
    long_name = _img((shared, "base"), (_layer(store, {"d/" + "n" * 5000: b""}), "ocibuild: COPY . /app"))
    with pytest.raises(SourceError, match="longer than 4096"):
        diff_images(few, long_name, store)


def test_text_from_images_is_escaped_and_roles_are_linear() -> None:
    from ocibuild.diff import DiffResult, FileChange, ImageDiff, LayerChange, LayerSide, _role

    side = LayerSide(index=1, digest="sha256:" + "a" * 64, size=1, created_by="evil\x1b[2J\nline")
    change = LayerChange(status="changed", a=side, b=side, files=(FileChange(path="/x\x07", change="added"),))
    lines = render(DiffResult(a="a", b="b", images=(ImageDiff(platform="linux/amd64", a_digest="x", b_digest="y",
                                                              layers=(change,)),)))
    assert not any(ch in "\n".join(lines) for ch in "\x1b\x07") and "evil\\x1b[2J\\nline" in "\n".join(lines)
    # a history line of 200k spaces: the regex this replaced took minutes on it (quadratic), now linear
    assert _role("x" + " " * 200_000 + "(y) ") == "x"
    assert _role("x" + " " * 200_000 + "(") == "x" + " " * 200_000 + "("

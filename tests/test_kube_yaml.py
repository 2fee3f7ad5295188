"""The YAML half of ``ocibuild resolve`` (ocibuild/kube.py): references found in every kind of
manifest and style, replaced with every other byte kept, deduplicated across files, and each bad
input one ConfigError line naming the file and line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from ocibuild.errors import ConfigError
from ocibuild.kube import KubeFile, KubeRef, read_kube_file, read_kube_files, references, render, where

APP = "reg.example:5000/app@sha256:" + "a" * 64
WEIGHTS = "reg.example:5000/srv-weights@sha256:" + "b" * 64


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp_path/app (a project), tmp_path/srv (a project with a model), tmp_path/k8s (the YAML)."""
    for folder in ("app", "srv", "k8s"):
        (tmp_path / folder).mkdir()
    return tmp_path


def _refs(root: Path) -> dict[KubeRef, str]:
    """The resolved reference of the app and of the srv model ``weights`` under ``root``."""
    return {
        KubeRef(kind="app", project=(root / "app").resolve()): APP,
        KubeRef(kind="model", project=(root / "srv").resolve(), model="weights"): WEIGHTS,
    }


def _swap(data: Any) -> Any:
    """Loaded YAML data with the references replaced as render should replace them."""
    if isinstance(data, dict):
        return {k: (f"oci://{_swap(v)}" if k == "storageUri" else _swap(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_swap(v) for v in data]
    if isinstance(data, str) and data.startswith("ocibuild-model://"):
        return WEIGHTS
    return APP if isinstance(data, str) and data.startswith("ocibuild://") else data


def _load(text: str) -> list[Any]:
    """Every document of ``text`` as plain data."""
    return list(YAML(typ="safe", pure=True).load_all(io.StringIO(text)))


MULTI_DOC = """\
# the app and its model server
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # keep me
spec:
  template:
    spec:
      containers:
        - name: web
          image: ocibuild://../app   # built by ocibuild
          args: ["--port", "8080"]
---
---
# an empty document above, a Pod with an image volume below
apiVersion: v1
kind: Pod
metadata: {name: srv}
spec:
  initContainers:
  - name: warm
    image: 'ocibuild://../app/'
  containers:
  - {name: srv, image: "ocibuild://../app"}
  volumes: [{name: weights, image: {reference: "ocibuild-model://../srv/weights", pullPolicy: IfNotPresent}}]
...
"""

CRONJOB = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: nightly
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: job
            image: &img ocibuild://../app
          - name: again
            image: *img
"""

INFERENCE_SERVICE = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: iris
spec:
  predictor:
    model:
      modelFormat: {name: sklearn}
      storageUri: ocibuild-model://../srv/weights
    containers:
      - name: kserve-container
        image: ocibuild://../app
  transformer: {containers: [{name: t, image: ocibuild://../app}], storageUri: 'ocibuild-model://../srv/weights'}
"""

JSON_LIST = """\
{
\t"apiVersion": "v1",
\t"kind": "List",
\t"items": [{"kind": "Pod", "spec": {"containers": [{"name": "a", "image": "ocibuild://../app"}]}}]
}
"""

CRLF = "\ufeffkind: Pod\r\nspec:\r\n  containers:\r\n  - image: ocibuild://../app\r\n    name: a # c\r\n"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        pytest.param(
            "multi.yaml",
            MULTI_DOC,
            MULTI_DOC.replace("ocibuild://../app/", "$APP")
            .replace("ocibuild://../app", "$APP")
            .replace("ocibuild-model://../srv/weights", "$WEIGHTS"),
            id="deployment-pod-image-volume",
        ),
        pytest.param(
            "cron.yml",
            CRONJOB,
            CRONJOB.replace("&img ocibuild://../app", "&img $APP"),
            id="cronjob-anchor-alias",
        ),
        pytest.param(
            "isvc.yaml",
            INFERENCE_SERVICE,
            INFERENCE_SERVICE.replace("storageUri: ocibuild-model://../srv/weights", "storageUri: oci://$WEIGHTS")
            .replace("storageUri: 'ocibuild-model://../srv/weights'", "storageUri: 'oci://$WEIGHTS'")
            .replace("ocibuild://../app", "$APP"),
            id="inferenceservice-storageuri",
        ),
        pytest.param("list.json", JSON_LIST, JSON_LIST.replace("ocibuild://../app", "$APP"), id="json"),
        pytest.param("crlf.yaml", CRLF, CRLF.replace("ocibuild://../app", "$APP"), id="crlf-bom"),
        pytest.param("empty.yaml", "", "", id="empty-file"),
        pytest.param("none.yaml", "---\n# nothing\n---\n", "---\n# nothing\n---\n", id="empty-documents"),
    ],
)
def test_render_changes_only_the_references(tree: Path, name: str, text: str, expected: str) -> None:
    path = tree / "k8s" / name
    path.write_bytes(text.encode())
    [file] = read_kube_files([path])
    out = render(file, _refs(tree))
    assert out == expected.replace("$APP", APP).replace("$WEIGHTS", WEIGHTS)
    assert _load(out) == _swap(_load(text))


def test_spans_name_the_references_and_their_lines(tree: Path) -> None:
    path = tree / "k8s" / "isvc.yaml"
    path.write_text(INFERENCE_SERVICE)
    [file] = read_kube_files([path])
    app, weights = _refs(tree)
    assert [(s.line, s.ref, s.storage_uri) for s in file.spans] == [
        (9, weights, True), (12, app, False), (13, app, False), (13, weights, True)
    ]
    assert [file.text[s.start : s.end] for s in file.spans] == [
        "ocibuild-model://../srv/weights", "ocibuild://../app", "ocibuild://../app", "ocibuild-model://../srv/weights"
    ]
    assert references([file]) == [weights, app]
    assert where([file], app) == f"{path}:12"
    assert str(app) == f"ocibuild://{tree.resolve()}/app"
    assert str(weights) == f"ocibuild-model://{tree.resolve()}/srv/weights"


def test_one_reference_per_folder_across_files_and_spellings(tree: Path) -> None:
    (tree / "k8s" / "sub").mkdir()
    (tree / "applink").symlink_to(tree / "app")
    a = tree / "k8s" / "a.yaml"
    b = tree / "k8s" / "sub" / "b.yaml"
    a.write_text("image: ocibuild://../app\nweights: ocibuild-model://../srv/weights\n")
    b.write_text(
        "- ocibuild://../../app/\n- ocibuild://../../applink\n- ocibuild-model://../../srv/other\n"
        "- ocibuild-model://../../srv/./weights\n- ocibuild://../../srv\n"
    )
    files = read_kube_files([a, b])
    app, weights = _refs(tree)
    other = KubeRef(kind="model", project=(tree / "srv").resolve(), model="other")
    srv = KubeRef(kind="app", project=(tree / "srv").resolve())
    assert references(files) == [app, weights, other, srv]
    resolved = {**_refs(tree), other: "r/o@sha256:" + "c" * 64, srv: "r/s@sha256:" + "d" * 64}
    assert render(files[1], resolved) == (
        f"- {APP}\n- {APP}\n- r/o@sha256:{'c' * 64}\n- {WEIGHTS}\n- r/s@sha256:{'d' * 64}\n"
    )


def test_folder_argument_reads_yaml_recursively_sorted(tree: Path) -> None:
    k8s = tree / "k8s"
    (k8s / "sub").mkdir()
    for rel in ("b.yaml", "a.yml", "sub/d.json", "sub/c.yaml", "notes.txt", "README.md", "sub/x.yaml.bak"):
        (k8s / rel).write_text("{}\n")
    (k8s / "dir.yaml").mkdir()  # a folder named like a file is not read
    files = read_kube_files([k8s, k8s / "a.yml"])
    names = [f.path.relative_to(k8s).as_posix() for f in files]
    assert names == ["a.yml", "b.yaml", "sub/c.yaml", "sub/d.json", "a.yml"]


def test_alias_bomb_is_not_expanded(tree: Path) -> None:
    lines = ['a: &a ["ocibuild://../app", "ocibuild-model://../srv/weights", x, y, z, w, v, u, t, s]']
    for prev, cur in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join([f'*{prev}'] * 10)}]")
    lines.append("spec: {containers: [{name: x, image: *i}]}")
    path = tree / "k8s" / "lol.yaml"
    path.write_text("\n".join(lines) + "\n")
    [file] = read_kube_files([path])
    assert references([file]) == list(_refs(tree))
    out = render(file, _refs(tree))
    assert out.splitlines()[0] == f'a: &a ["{APP}", "{WEIGHTS}", x, y, z, w, v, u, t, s]'
    assert out.splitlines()[1:] == lines[1:]


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        pytest.param("a: b\n c: [\n", 2, "not valid YAML: mapping values are not allowed here", id="bad-yaml"),
        pytest.param("a: [1, 2\n", 2, "not valid YAML", id="unclosed-flow"),
        pytest.param("a: 'x\0'\n", 1, "not valid YAML: character #x0000 is not allowed", id="nul"),
        pytest.param("a: 1\nb: *nope\n", 2, "alias *nope has no anchor &nope before it", id="undefined-alias"),
        pytest.param("a: &x 1\n---\nb: *x\n", 3, "alias *x has no anchor", id="anchor-of-another-document"),
        pytest.param("image: ocibuild://\n", 1, "project folder is empty; write ocibuild://PROJECT_DIR", id="empty"),
        pytest.param("image: 'ocibuild://'\n", 1, "the project folder is empty", id="empty-quoted"),
        pytest.param("x: ocibuild-model://weights\n", 1, "write ocibuild-model://PROJECT_DIR/NAME", id="no-name"),
        pytest.param("x: ocibuild-model:///w\n", 1, "write ocibuild-model://PROJECT_DIR/NAME", id="no-project"),
        pytest.param("x: ocibuild-model://../srv/\n", 1, "the model name after the last / is empty", id="empty-name"),
        pytest.param(
            "a: 1\nimage: ocibuild://../nope\n", 2, "ocibuild://../nope: no folder {root}/nope (PROJECT_DIR is "
            "relative to the YAML file's folder {root}/k8s)", id="missing-folder",
        ),
        pytest.param("image: ocibuild://../app/x.txt\n", 1, "no folder {root}/app/x.txt", id="file-not-folder"),
        pytest.param("image: |\n  ocibuild://../app\n", 1, "write the reference 'ocibuild://../app\\n' on one line",
                     id="block-scalar"),
        pytest.param('image: "ocibuild:\\x2f/../app"\n', 1, "on one line, plain or in quotes, with no escapes",
                     id="escaped"),
        pytest.param("image: ocibuild://../app\n  continued\n", 1, "on one line", id="multi-line-plain"),
        pytest.param("image: \"ocibuild://../app\\\"\"\n", 1, "with no escapes, quote marks", id="quote-mark"),
    ],
)
def test_bad_file_is_one_config_error_naming_file_and_line(tree: Path, content: str, line: int, message: str) -> None:
    (tree / "app" / "x.txt").write_text("")
    path = tree / "k8s" / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        read_kube_files([tree / "k8s"])
    text = str(info.value)
    assert text.startswith(f"{path}:{line}:"), text
    assert message.format(root=tree.resolve()) in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b"a: 1\n" + b"#" * (4 << 20), "larger than 4 MiB; split it into smaller files", id="too-big"),
        pytest.param(b"a: \xff\n", "not UTF-8 text (byte 3); save it as UTF-8", id="not-utf8"),
    ],
)
def test_unreadable_file(tree: Path, data: bytes, message: str) -> None:
    path = tree / "k8s" / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        read_kube_file(path)
    assert str(info.value) == f"{path}: {message}"


def test_bad_f_arguments(tree: Path) -> None:
    (tree / "k8s" / "notes.txt").write_text("image: ocibuild://../app\n")
    with pytest.raises(ConfigError) as info:
        read_kube_files([tree / "k8s"])
    assert str(info.value) == f"-f {tree / 'k8s'}: no .yaml, .yml or .json files in this folder (or below it)"
    with pytest.raises(ConfigError) as info:
        read_kube_files([tree / "nope.yaml"])
    assert str(info.value) == f"-f {tree / 'nope.yaml'}: no such file or folder"


def test_render_refuses_a_value_that_would_need_quoting(tree: Path) -> None:
    path = tree / "k8s" / "a.yaml"
    path.write_text("image: ocibuild://../app\n")
    [file] = read_kube_files([path])
    with pytest.raises(ValueError, match="not an image reference"):
        render(file, {next(iter(_refs(tree))): "x: y # z"})
    with pytest.raises(KeyError):
        render(file, {})
    assert isinstance(file, KubeFile)

"""Kubernetes YAML for ``ocibuild resolve``: find the ``ocibuild://PROJECT_DIR`` and
``ocibuild-model://PROJECT_DIR/NAME`` references and put resolved image references in their place.

Only the references' characters change: comments, quoting, indentation and key order are kept byte
for byte, because the output is the input text with a few spans replaced, not a re-serialization.
The files are read as a stream of parser events (ruamel.yaml), so memory stays proportional to the
nesting depth and aliases are never expanded (a "billion laughs" file costs what its text costs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    NodeEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

from ocibuild.errors import ConfigError

APP_SCHEME = "ocibuild://"
MODEL_SCHEME = "ocibuild-model://"
MAX_FILE_BYTES = 4 * 1024 * 1024  # Kubernetes stores objects of at most ~1.5 MB; parsing is ~4 s per MiB
SUFFIXES = (".yaml", ".yml", ".json")
STORAGE_URI_KEY = "storageUri"  # KServe: its value becomes oci://REGISTRY/REPO@sha256:... (a modelcar)
_NOT_IN_REFERENCE = frozenset("\"'\\\r\n")
_RESOLVED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]*")  # needs no quoting in any scalar style


@dataclass(frozen=True, kw_only=True, slots=True)
class KubeRef:
    """One distinct thing to build: an app image, or a model image, of a project folder."""

    kind: Literal["app", "model"]
    project: Path  # absolute and resolved, so two spellings of one folder are one KubeRef
    model: str | None = None  # the model name, for kind == "model"

    def __str__(self) -> str:
        """The reference spelled with the absolute project folder, for messages."""
        if self.kind == "model":
            return f"{MODEL_SCHEME}{self.project}/{self.model}"
        return f"{APP_SCHEME}{self.project}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Span:
    """Where one reference stands: ``text[start:end]`` is its characters (inside any quotes)."""

    start: int
    end: int
    line: int  # 1-based, for messages
    ref: KubeRef
    storage_uri: bool  # the value of a ``storageUri`` key: written as ``oci://`` + the resolved reference


@dataclass(frozen=True, kw_only=True, slots=True)
class KubeFile:
    """One YAML (or JSON) file: its text and where its references stand, in text order."""

    path: Path
    text: str
    spans: tuple[Span, ...]


@dataclass(slots=True)
class _Level:
    """One open collection while walking the events (mutable: the walk's own bookkeeping)."""

    mapping: bool
    want_key: bool = True
    key: str | None = None


def read_kube_files(paths: Sequence[Path]) -> list[KubeFile]:
    """Read each ``-f`` FILE, or each DIR's *.yaml / *.yml / *.json (recursively, sorted), and find the references."""
    files: list[KubeFile] = []
    for given in paths:
        if given.is_dir():
            found = sorted(p for p in given.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
            if not found:
                raise ConfigError(f"-f {given}: no .yaml, .yml or .json files in this folder (or below it)")
        elif given.exists():
            found = [given]
        else:
            raise ConfigError(f"-f {given}: no such file or folder")
        files.extend(read_kube_file(path) for path in found)
    return files


def read_kube_file(path: Path) -> KubeFile:
    """Read and parse one file (at most 4 MiB of UTF-8) and find where its references stand."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB; split it into smaller files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return KubeFile(path=path, text=text, spans=_find_spans(path, text))


def references(files: Sequence[KubeFile]) -> list[KubeRef]:
    """The distinct references of all files, in order of first appearance."""
    return list(dict.fromkeys(span.ref for file in files for span in file.spans))


def where(files: Sequence[KubeFile], ref: KubeRef) -> str:
    """``FILE:LINE`` of the first use of ``ref``, for messages about it (e.g. an unknown model name)."""
    for file in files:
        for span in file.spans:
            if span.ref == ref:
                return f"{file.path}:{span.line}"
    raise KeyError(ref)


def render(file: KubeFile, resolved: Mapping[KubeRef, str]) -> str:
    """The file's text with every reference replaced by ``resolved[ref]`` (``oci://`` + it for a storageUri)."""
    out: list[str] = []
    pos = 0
    for span in file.spans:
        new = resolved[span.ref]
        if not _RESOLVED.fullmatch(new):
            raise ValueError(f"{new!r} is not an image reference (REGISTRY/REPO@sha256:...)")
        out += [file.text[pos : span.start], f"oci://{new}" if span.storage_uri else new]
        pos = span.end
    out.append(file.text[pos:])
    return "".join(out)


def _find_spans(path: Path, text: str) -> tuple[Span, ...]:
    """Walk the parser events of every document and note each scalar that is a reference."""
    spans: list[Span] = []
    stack: list[_Level] = []
    anchors: set[str] = set()
    event: Any = None
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, DocumentStartEvent):
                anchors.clear()  # an anchor is only known inside its own document
            if not isinstance(event, NodeEvent):
                if isinstance(event, CollectionEndEvent):
                    stack.pop()
                continue
            line = event.start_mark.line + 1
            if isinstance(event, AliasEvent) and event.anchor not in anchors:
                raise ConfigError(f"{path}:{line}: alias *{event.anchor} has no anchor &{event.anchor} before it")
            if event.anchor is not None:
                anchors.add(event.anchor)
            storage_uri = False
            if stack and stack[-1].mapping:
                top = stack[-1]
                if top.want_key:
                    top.key = event.value if isinstance(event, ScalarEvent) else None
                else:
                    storage_uri = top.key == STORAGE_URI_KEY
                top.want_key = not top.want_key
            if isinstance(event, MappingStartEvent | SequenceStartEvent):
                stack.append(_Level(mapping=isinstance(event, MappingStartEvent)))
            elif isinstance(event, ScalarEvent) and event.value.startswith((APP_SCHEME, MODEL_SCHEME)):
                spans.append(_span(path, text, event, storage_uri))
    except ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        raise ConfigError(f"{path}:{line}: not valid YAML: character #x{exc.character:04x} is not allowed") from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f"{mark.line + 1}:{mark.column + 1}" if mark is not None else "1"
        problem = " ".join(str(exc.problem or exc.context).split())
        raise ConfigError(f"{path}:{at}: not valid YAML: {problem}; fix the file") from None
    except YAMLError as exc:  # any other parser complaint, still one line
        line = event.start_mark.line + 1 if event is not None and event.start_mark is not None else 1
        raise ConfigError(f"{path}:{line}: not valid YAML: {' '.join(str(exc).split())}") from None
    return tuple(spans)


def _span(path: Path, text: str, event: Any, storage_uri: bool) -> Span:
    """Where the reference of one scalar event stands, checked against the text, and what it names."""
    value: str = event.value
    line = event.start_mark.line + 1
    end = event.end_mark.index - (1 if event.style in ('"', "'") else 0)
    start = end - len(value)
    if (
        event.style not in (None, '"', "'")
        or _NOT_IN_REFERENCE.intersection(value)
        or text[start:end] != value
        or (event.style is not None and text[start - 1] != event.style)
    ):
        raise ConfigError(
            f"{path}:{line}: write the reference {value!r} on one line, plain or in quotes, "
            "with no escapes, quote marks or block style (| or >)"
        )
    return Span(start=start, end=end, line=line, ref=_parse_ref(value, path, line), storage_uri=storage_uri)


def _parse_ref(value: str, path: Path, line: int) -> KubeRef:
    """The KubeRef a reference string names; its PROJECT_DIR is relative to the YAML file's folder."""
    at = f"{path}:{line}: {value}"
    model: str | None = None
    if value.startswith(MODEL_SCHEME):
        project, slash, model = value[len(MODEL_SCHEME) :].rpartition("/")
        if not slash or not project:
            raise ConfigError(f"{at}: write ocibuild-model://PROJECT_DIR/NAME, e.g. ocibuild-model://../server/weights")
        if not model:
            raise ConfigError(f"{at}: the model name after the last / is empty; name a model of the build file")
    else:
        project = value[len(APP_SCHEME) :]
        if not project:
            raise ConfigError(f"{at}: the project folder is empty; write ocibuild://PROJECT_DIR, e.g. ocibuild://../app")
    folder = (path.parent / project).resolve()
    if not folder.is_dir():
        raise ConfigError(
            f"{at}: no folder {folder} (PROJECT_DIR is relative to the YAML file's folder {path.parent.resolve()})"
        )
    return KubeRef(kind="app" if model is None else "model", project=folder, model=model)

"""``ocibuild diff A B``: what differs between two images, layer by layer, and why.

Layers are paired in order: the same blob on both sides is *unchanged*; of the rest, two layers added
the same way (their history line, without its trailing ``(...)`` detail, e.g. ``ocibuild: python
numpy``) are one layer *changed*, the others are *removed* (only in A) or *added* (only in B). For a
changed layer the files that differ are listed, read from both layer tars (added, removed, content,
mode, owner, type or link target changed). When both layers were built with this content store, the
*cause* comes from what each was built from (``explain``): which source file, which wheel or Debian
package (name, version, sha256), which setting. Images with nothing in common list their layers
only. The runtime config (entrypoint, env, user, ports, labels ...) is compared too.

>>> result = diff_locations("oci:out/iris:v1", "oci:out/iris:v2", store=ContentStore.default())  # doctest: +SKIP
>>> print("\\n".join(render(result)))  # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import OcibuildError
from .events import human_size
from .explain import causes, project_of, recall
from .spec import Digest, Platform
from .spec.annotations import BASE_DIGEST, BASE_NAME
from .store import ContentStore
from .transports import Location, parse_location

if TYPE_CHECKING:
    from .image import Image, Layer
    from .registry import RegistryClient

TITLE = "org.opencontainers.image.title"

__all__ = ["DiffResult", "FileChange", "ImageDiff", "LayerChange", "diff_images", "diff_locations", "render"]

MAX_FILES_SHOWN = 20
"""The human output lists at most this many files per changed layer (``--json`` lists them all)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class FileChange:
    """One path of a changed layer: ``added``, ``removed`` or ``changed`` (``what``: content, mode ...)."""

    path: str
    change: str
    what: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "what": list(self.what)}

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-"}.get(self.change, "~")
        return f"{mark} {self.path}" + (f" ({', '.join(self.what)})" if self.what else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerSide:
    """A layer as one image lists it: its place (1-based), digest, size and history line."""

    index: int
    digest: str
    size: int
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "digest": self.digest, "size": self.size, "created_by": self.created_by}


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerChange:
    """A layer of the comparison: ``unchanged``, ``changed``, ``added`` (B only) or ``removed`` (A only)."""

    status: str
    a: LayerSide | None
    b: LayerSide | None
    files: tuple[FileChange, ...] = ()
    cause: tuple[str, ...] = ()

    @property
    def created_by(self) -> str:
        side = self.b or self.a
        return side.created_by if side is not None else ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "created_by": self.created_by,
                "a": self.a.to_dict() if self.a else None, "b": self.b.to_dict() if self.b else None,
                "files": [f.to_dict() for f in self.files], "cause": list(self.cause)}


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageDiff:
    """Two single-platform images compared."""

    platform: str
    a_digest: str
    b_digest: str
    layers: tuple[LayerChange, ...]
    config: tuple[str, ...] = ()

    @property
    def identical(self) -> bool:
        return self.a_digest == self.b_digest

    def count(self, status: str) -> int:
        return sum(1 for layer in self.layers if layer.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {"platform": self.platform, "a": self.a_digest, "b": self.b_digest, "identical": self.identical,
                "layers": [layer.to_dict() for layer in self.layers], "config": list(self.config)}


@dataclass(frozen=True, kw_only=True, slots=True)
class DiffResult:
    """``ocibuild diff A B``: one ``ImageDiff`` per platform compared."""

    a: str
    b: str
    images: tuple[ImageDiff, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "identical": all(i.identical for i in self.images),
                "images": [i.to_dict() for i in self.images]}


# --------------------------------------------------------------------------------------------------


def _role(created_by: str) -> str:
    """What added a layer, without its trailing detail: ``ocibuild: python numpy (numpy==2.1.0)`` ->
    ``ocibuild: python numpy`` (linear in the text's length: it comes from an untrusted config).

    >>> _role("ocibuild: python numpy (numpy==2.1.0)"), _role("COPY . /app"), _role("(x)")
    ('ocibuild: python numpy', 'COPY . /app', '')
    """
    text = created_by.strip()
    if text.endswith(")") and (cut := text.rfind("(")) >= 0 and ")" not in text[cut:-1]:
        text = text[:cut].rstrip()
    return text


def _history(image: Image) -> list[str]:
    made = [h.created_by for h in image.config.history if not h.empty_layer]
    return made if len(made) == len(image.manifest.layers) else [""] * len(image.manifest.layers)


@dataclass(frozen=True, slots=True)
class _Side:
    """One image of the comparison: its layers as listed, and how many of them are its base's."""

    image: Image
    layers: list[LayerSide]
    base_layers: int


def _side(image: Image, store: ContentStore) -> _Side:
    history = _history(image)
    return _Side(image, [LayerSide(index=i + 1, digest=str(d.digest), size=d.size, created_by=history[i])
                         for i, d in enumerate(image.manifest.layers)], _base_layers(image, store))


def _pairs(a: list[LayerSide], b: list[LayerSide], related: bool) -> list[tuple[LayerSide | None,
                                                                                LayerSide | None]]:
    """Layers of A and B paired in order: the same blob; else, for ``related`` images, the same role
    (non-empty); else alone."""
    out: list[tuple[LayerSide | None, LayerSide | None]] = []
    matcher = difflib.SequenceMatcher(None, [s.digest for s in a], [s.digest for s in b], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out += list(zip(a[i1:i2], b[j1:j2], strict=True))
            continue
        right = list(b[j1:j2])
        by_role: dict[str, list[int]] = {}
        for k, y in enumerate(right):
            if related and (role := _role(y.created_by)):
                by_role.setdefault(role, []).append(k)
        used: set[int] = set()
        for x in a[i1:i2]:
            candidates = by_role.get(_role(x.created_by)) if related else None
            if candidates:
                k = candidates.pop(0)
                used.add(k)
                out.append((x, right[k]))
            else:
                out.append((x, None))
        out += [(None, y) for k, y in enumerate(right) if k not in used]
    return out


def _related(a: _Side, b: _Side, store: ContentStore) -> bool:
    """Whether A and B are two versions of one image, whose layers added the same way are compared:
    built from the same project folder with this store (when it knows both); else, when both have an
    ``org.opencontainers.image.title``, the same title; else they share a layer above their bases, or
    were made by the same steps (the same history lines, details aside, in the same order)."""
    pa, pb = project_of(store, a.image.digest), project_of(store, b.image.digest)
    if pa is not None and pb is not None:
        return pa == pb
    ta, tb = (i.config.config.labels.get(TITLE) or i.manifest.annotations.get(TITLE) for i in (a.image, b.image))
    if ta and tb:
        return ta == tb
    if {s.digest for s in a.layers[a.base_layers:]} & {s.digest for s in b.layers[b.base_layers:]}:
        return True
    steps = [_role(s.created_by) for s in a.layers]
    return bool(steps) and all(steps) and steps == [_role(s.created_by) for s in b.layers]


def _file_changes(a: Layer, b: Layer) -> tuple[FileChange, ...]:
    from .rebuild import layer_files

    left, right = layer_files(a), layer_files(b)
    out = []
    for path in sorted(set(left) | set(right)):
        x, y = left.get(path), right.get(path)
        if x == y:
            continue
        if x is None:
            out.append(FileChange(path=path, change="added"))
        elif y is None:
            out.append(FileChange(path=path, change="removed"))
        else:  # (type, mode, uid, gid, link, size, sha256)
            what = []
            if x[0] != y[0]:
                what.append("type")
            if x[6] != y[6]:
                what.append(f"content, {x[5]} -> {y[5]} bytes" if x[5] != y[5] else "content")
            if x[1] != y[1]:
                what.append(f"mode {int(str(x[1])):04o} -> {int(str(y[1])):04o}")
            if x[2:4] != y[2:4]:
                what.append(f"owner {x[2]}:{x[3]} -> {y[2]}:{y[3]}")
            if x[4] != y[4]:
                what.append(f"link {x[4]} -> {y[4]}")
            out.append(FileChange(path=path, change="changed", what=tuple(what)))
    return tuple(out)


def _base_layers(image: Image, store: ContentStore) -> int:
    """How many of the image's first layers are its base's (0 when the base is not known here)."""
    from .rebase import _stored_image

    text = image.manifest.annotations.get(BASE_DIGEST, "")
    try:
        base = _stored_image(store, Digest.parse(text)) if text else None
    except ValueError:
        return 0
    return len(base.layers) if base is not None else 0


def _cause(x: LayerSide, y: LayerSide, a: _Side, b: _Side, store: ContentStore) -> tuple[str, ...]:
    old, new = recall(store, x.digest), recall(store, y.digest)
    if old is not None and new is not None:
        return causes(old, new)
    notes_a, notes_b = a.image.manifest.annotations, b.image.manifest.annotations
    if x.index <= a.base_layers and y.index <= b.base_layers and notes_a.get(BASE_DIGEST) != notes_b.get(BASE_DIGEST):
        def name(notes: Mapping[str, str]) -> str:
            return f"{notes.get(BASE_NAME, 'base')}@{notes.get(BASE_DIGEST, '')[:19]}"
        return (f"base image changed: {name(notes_a)} -> {name(notes_b)}",)
    return ()


_CONFIG_FIELDS = (("entrypoint", "entrypoint"), ("cmd", "cmd"), ("user", "user"), ("working_dir", "workdir"),
                  ("exposed_ports", "ports"), ("volumes", "volumes"), ("stop_signal", "stop signal"))


def _config_changes(a: Image, b: Image) -> tuple[str, ...]:
    ca, cb = a.config.config, b.config.config
    out = []
    for attr, name in _CONFIG_FIELDS:
        x, y = getattr(ca, attr, None), getattr(cb, attr, None)
        if (x or None) != (y or None):
            out.append(f"{name}: {_show(x)} -> {_show(y)}")
    for what, left, right in (("env", ca.env_dict(), cb.env_dict()), ("label", dict(ca.labels), dict(cb.labels)),
                              ("annotation", dict(a.manifest.annotations), dict(b.manifest.annotations))):
        for key in sorted(set(left) | set(right)):
            if left.get(key) != right.get(key):
                out.append(f"{what} {key}: {_show(left.get(key))} -> {_show(right.get(key))}")
    if str(a.config.platform) != str(b.config.platform):
        out.append(f"platform: {a.config.platform} -> {b.config.platform}")
    return tuple(out)


def _show(value: object) -> str:
    if value is None or value == () or value == []:
        return "(none)"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def diff_images(a: Image, b: Image, store: ContentStore) -> ImageDiff:
    """Compare two single-platform images (see the module's description)."""
    changes = []
    sa, sb = _side(a, store), _side(b, store)
    for x, y in _pairs(sa.layers, sb.layers, _related(sa, sb, store)):
        if x is not None and y is not None and x.digest == y.digest:
            changes.append(LayerChange(status="unchanged", a=x, b=y))
        elif x is not None and y is not None:
            files = _file_changes(a.layers[x.index - 1], b.layers[y.index - 1])
            changes.append(LayerChange(status="changed", a=x, b=y, files=files, cause=_cause(x, y, sa, sb, store)))
        else:
            changes.append(LayerChange(status="added" if x is None else "removed", a=x, b=y))
    return ImageDiff(platform=str(b.config.platform), a_digest=str(a.digest), b_digest=str(b.digest),
                     layers=tuple(changes), config=_config_changes(a, b))


def _platforms(location: Location, store: ContentStore, client: RegistryClient | None) -> tuple[Platform, ...]:
    from .sources import base_platforms

    return base_platforms(location, store, client=client)


def _image(location: Location, store: ContentStore, platform: Platform | None,
           client: RegistryClient | None) -> Image:
    from .sources import ANY_PLATFORM, resolve_base

    try:
        return resolve_base(location, store, platform, client=client)
    except OcibuildError:
        if platform is not None:
            raise
        return resolve_base(location, store, ANY_PLATFORM, client=client)


def diff_locations(a: Location | str, b: Location | str, *, store: ContentStore, platform: Platform | None = None,
                   client: RegistryClient | None = None) -> DiffResult:
    """Compare the images at two locations (layouts, archives, registry references). With
    ``platform``, that platform's images; else every platform both offer (two indexes), or the
    host's (else the first) image of each."""
    la = parse_location(a) if isinstance(a, str) else a
    lb = parse_location(b) if isinstance(b, str) else b
    if platform is not None:
        pairs: Sequence[tuple[Platform | None, Platform | None]] = [(platform, platform)]
    else:
        pa, pb = _platforms(la, store, client), _platforms(lb, store, client)
        common: list[tuple[Platform | None, Platform | None]] = []
        for p in pa:  # each platform of A that B has too (Platform.matches: os, architecture, variant)
            if (q := next((q for q in pb if q.matches(p)), None)) is not None:
                common.append((p, q))
        pairs = common if common and max(len(pa), len(pb)) > 1 else [(None, None)]
    images = tuple(diff_images(_image(la, store, x, client), _image(lb, store, y, client), store) for x, y in pairs)
    return DiffResult(a=str(la), b=str(lb), images=images)


def _safe(text: str, limit: int = 1000) -> str:
    """Text from an image (paths, history, env) fit for a terminal line: control characters escaped,
    cut at ``limit``.

    >>> _safe("a\\x1b[2Jb\\nc")
    'a\\\\x1b[2Jb\\\\nc'
    """
    text = _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return text if len(text) <= limit else text[:limit] + "..."


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def render(result: DiffResult) -> list[str]:
    """The human report: per platform, a summary line, then each layer that is not unchanged with its
    files (at most ``MAX_FILES_SHOWN``) and cause, then the config changes. Text taken from the images
    has its control characters escaped."""
    lines = [f"A  {_safe(result.a)}", f"B  {_safe(result.b)}"]
    for image in result.images:
        lines.append("")
        state = "identical" if image.identical else (
            f"{image.count('unchanged')} layers unchanged, {image.count('changed')} changed, "
            f"{image.count('added')} added, {image.count('removed')} removed")
        lines.append(f"{_safe(image.platform)}  {image.a_digest[:19]} -> {image.b_digest[:19]}  {state}")
        for layer in image.layers:
            if layer.status == "unchanged":
                continue
            sizes = " -> ".join(human_size(s.size) for s in (layer.a, layer.b) if s is not None)
            where = "/".join(str(s.index) for s in (layer.a, layer.b) if s is not None)
            digests = " -> ".join(s.digest[7:19] for s in (layer.a, layer.b) if s is not None)
            lines.append(f"  {layer.status:<8} layer {where:<5} {_safe(layer.created_by) or '(no history)'}")
            lines.append(f"           {digests}  {sizes}")
            if layer.status == "changed":
                if not layer.files:
                    lines.append("           files: the same files (other tar bytes: order, timestamps or compression)")
                for f in layer.files[:MAX_FILES_SHOWN]:
                    lines.append(f"           {_safe(str(f))}")
                if len(layer.files) > MAX_FILES_SHOWN:
                    lines.append(f"           ... and {len(layer.files) - MAX_FILES_SHOWN} more files (--json lists "
                                 "them all)")
                for c in layer.cause:
                    lines.append(f"           why: {_safe(c)}")
        for c in image.config:
            lines.append(f"  config   {_safe(c)}")
    return lines

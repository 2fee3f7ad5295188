"""``ocibuild verify --rebuild``: build a published image again from its recorded plan, in a fresh store,
and compare the two layer by layer; name the first layer that differs and the files that differ in it.

A reproducible build is its own proof: the same plan and inputs give the same bytes, so the digests
match, or the difference points at the one layer (and the files in it) that was not built from them.

>>> report = rebuild(plan, published)  # doctest: +SKIP
>>> print(report.summary())  # doctest: +SKIP
reproduced sha256:...
"""

from __future__ import annotations

import hashlib
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, SourceError
from .events import EventHandler, ignore
from .image import Artifact, Image, Layer, images_of
from .imagefs import BoundedTarInfo
from .layers.compress import decode_errors
from .plan import BuildPlan, PythonSpec
from .store import CHUNK, ContentStore
from .transports import Location

if TYPE_CHECKING:
    from .registry import RegistryClient

__all__ = ["LayerDifference", "RebuildReport", "layer_files", "offline_plan", "rebuild", "rebuild_location"]

MAX_LISTED = 20  # files named in a report


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerDifference:
    """The first layer of a platform's image that differs: where, both digests, what added it, the files."""

    platform: str
    index: int
    expected: str
    rebuilt: str
    created_by: str = ""
    files: tuple[str, ...] = ()  # paths whose type, mode, owner, link or content differ (or exist once)


@dataclass(frozen=True, kw_only=True, slots=True)
class RebuildReport:
    """The digest that was published, the one the rebuild gave, and the first difference if any."""

    expected: str
    rebuilt: str
    differences: tuple[LayerDifference, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def reproduced(self) -> bool:
        return self.expected == self.rebuilt

    def summary(self) -> str:
        """``reproduced sha256:...``, or the first layer that differs and its files."""
        if self.reproduced:
            return f"reproduced {self.expected}"
        if not self.differences:
            return (f"not reproduced: published {self.expected}, rebuilt {self.rebuilt}; every layer is the same, "
                    "so the config or manifest differs (" + "; ".join(self.notes or ("settings",)) + ")")
        d = self.differences[0]
        files = ", ".join(d.files[:MAX_LISTED]) + (f" and {len(d.files) - MAX_LISTED} more"
                                                   if len(d.files) > MAX_LISTED else "")
        what = f" ({d.created_by})" if d.created_by else ""
        return (f"not reproduced: {d.platform} layer {d.index + 1}{what} differs: published {d.expected}, rebuilt "
                f"{d.rebuilt}; files that differ: {files or '(none: the same files, other tar bytes)'}")


def layer_files(layer: Layer) -> dict[str, tuple[object, ...]]:
    """Every entry of a layer tar: path -> (type, mode, uid, gid, link, size, sha256 of the content)."""
    out: dict[str, tuple[object, ...]] = {}
    try:
        _read_entries(layer, out)
    except decode_errors() as exc:
        raise SourceError(f"layer {layer.digest} cannot be read as a tar: {exc}") from None
    return out


MAX_ENTRIES = 1_000_000
"""Most entries a layer may have to be compared file by file (each costs ~200 bytes of memory)."""
MAX_PATH = 4096
"""Longest entry name compared (PATH_MAX); a longer one is refused, not held."""


def _read_entries(layer: Layer, out: dict[str, tuple[object, ...]]) -> None:
    with layer.uncompressed() as raw, tarfile.open(fileobj=raw, mode="r|", tarinfo=BoundedTarInfo) as tar:
        for member in tar:
            tar.members.clear()  # type: ignore[attr-defined]  # stream mode would keep every TarInfo
            if len(member.name) > MAX_PATH or len(member.linkname) > MAX_PATH:
                raise SourceError(f"layer {layer.digest} has an entry name longer than {MAX_PATH} characters; "
                                  "it cannot be compared file by file")
            if len(out) >= MAX_ENTRIES:
                raise SourceError(f"layer {layer.digest} has more than {MAX_ENTRIES} entries; it cannot be "
                                  "compared file by file")
            digest = ""
            if member.isfile():
                f = tar.extractfile(member)
                h = hashlib.sha256()
                if f is not None:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                digest = h.hexdigest()
            out["/" + member.name.removeprefix("./").lstrip("/")] = (member.type, member.mode, member.uid, member.gid,
                                                   member.linkname, member.size, digest)


def _differing_files(a: Layer, b: Layer) -> tuple[str, ...]:
    left, right = layer_files(a), layer_files(b)
    return tuple(sorted(p for p in set(left) | set(right) if left.get(p) != right.get(p)))


def _compare(platform: str, published: Image, rebuilt: Image) -> LayerDifference | None:
    history = [h for h in published.config.history if not h.empty_layer]
    for i, (a, b) in enumerate(zip(published.layers, rebuilt.layers, strict=False)):
        if a.diff_id != b.diff_id:
            return LayerDifference(platform=platform, index=i, expected=str(a.digest), rebuilt=str(b.digest),
                                   created_by=history[i].created_by if i < len(history) else "",
                                   files=_differing_files(a, b))
    if len(published.layers) != len(rebuilt.layers):
        i = min(len(published.layers), len(rebuilt.layers))
        return LayerDifference(platform=platform, index=i,
                               expected=str(published.layers[i].digest) if i < len(published.layers) else "(none)",
                               rebuilt=str(rebuilt.layers[i].digest) if i < len(rebuilt.layers) else "(none)")
    return None


def offline_plan(plan: BuildPlan, wheelhouse: Path | None, project: Path | None = None) -> BuildPlan:
    """``plan`` to run again here: its project folder at ``project`` (default: where it was), no outputs,
    no shared cache (a rebuild builds every layer itself), and with ``wheelhouse`` its Python dependencies
    taken only from that folder (``--no-index``)."""
    out = replace(plan, outputs=(), cache_repo=None)
    if project is not None:
        out = replace(out, project_dir=project, weights_lock=project / plan.weights_lock.name
                      if plan.weights_lock is not None else None,
                      python=_moved_python(plan, project), layers=tuple(
                          replace(spec, src=project / spec.src.relative_to(plan.project_dir))
                          if spec.src.is_absolute() and spec.src.is_relative_to(plan.project_dir) else spec
                          for spec in plan.layers))
    if wheelhouse is not None and out.python is not None:
        out = replace(out, python=replace(out.python, find_links=(str(wheelhouse.absolute()),), no_index=True,
                                          index_url="", extra_index_urls=()))
    return out


def _moved_python(plan: BuildPlan, project: Path) -> PythonSpec | None:
    spec = plan.python
    if spec is None:
        return None

    def moved(path: Path | None) -> Path | None:
        if path is not None and path.is_absolute() and path.is_relative_to(plan.project_dir.absolute()):
            return project / path.relative_to(plan.project_dir.absolute())
        return path

    return replace(spec, requirements=moved(spec.requirements), lock=moved(spec.lock))


def rebuild(plan: BuildPlan, published: Artifact, *, store: ContentStore | None = None,
            client: RegistryClient | None = None, on_event: EventHandler = ignore) -> RebuildReport:
    """Build ``plan`` again (in ``store``, default a fresh temporary one) and compare with ``published``."""
    return _rebuild(plan, str(published.digest), images_of(published), store=store, client=client,
                    on_event=on_event)


def _rebuild(plan: BuildPlan, expected: str, published: Sequence[Image], *, store: ContentStore | None = None,
             client: RegistryClient | None = None, on_event: EventHandler = ignore) -> RebuildReport:
    from .build import build

    with tempfile.TemporaryDirectory(prefix="ocibuild-rebuild-") as tmp:
        result = build(plan, store=store or ContentStore(Path(tmp) / "store"), on_event=on_event, client=client)
        got = result.digest
        if expected == got:
            return RebuildReport(expected=expected, rebuilt=got)
        by_platform = {str(i.config.platform): i for i in images_of(result.artifact)}
        differences = []
        notes = []
        for image in published:
            platform = str(image.config.platform)
            mine = by_platform.get(platform)
            if mine is None:
                notes.append(f"{platform} was not rebuilt (the plan names {', '.join(by_platform)})")
                continue
            if (diff := _compare(platform, image, mine)) is not None:
                differences.append(diff)
            elif image.config_bytes != mine.config_bytes:
                notes.append(f"{platform} config differs")
        return RebuildReport(expected=expected, rebuilt=got, differences=tuple(differences), notes=tuple(notes))

def rebuild_location(location: Location, *, store: ContentStore, client: RegistryClient | None = None,
                     wheelhouse: Path | None = None, project: Path | None = None,
                     on_event: EventHandler = ignore) -> RebuildReport:
    """Read the provenance attached to the image at ``location``, build its plan again (the project at
    ``project``, Python dependencies from ``wheelhouse`` only when given) and compare."""
    import json

    from .attest import IN_TOTO_JSON
    from .attest.provenance import REBASE_BUILD_TYPE
    from .referrers.read import find_attached, resolve_subjects
    from .sources import base_platforms, resolve_base
    from .spec import Platform
    from .transports import OciArchive, OciLayout, Registry

    _, found = find_attached(location, None, (IN_TOTO_JSON,), store=store, client=client, index_first=True)
    if not found:
        raise ConfigError(f"no provenance is attached to {location}; build it with --provenance to rebuild it")
    try:
        statement = json.loads(found[-1].payload)
        definition = statement["predicate"]["buildDefinition"]
        if definition.get("buildType") == REBASE_BUILD_TYPE:
            made = definition["externalParameters"]
            raise ConfigError(f"{location} was made by 'ocibuild rebase' of {made.get('image')} onto "
                              f"{made.get('base')}, not built: verify --rebuild the image it was rebased from, "
                              "then rebase that again and compare the digests")
        params = definition["externalParameters"]
        plan = BuildPlan.from_dict(params)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the provenance attached to {location} holds no build plan ({exc}); "
                          "it was not written by ocibuild") from None
    if wheelhouse is not None:
        _check_wheelhouse(statement, wheelhouse)
    project_dir = project.absolute() if project is not None else None
    if project_dir is None and not plan.project_dir.is_dir():
        raise ConfigError(f"the project folder {plan.project_dir} the provenance names is not here; give its "
                          "source with --project DIR")
    if not isinstance(location, Registry | OciLayout | OciArchive):
        raise ConfigError(f"verify --rebuild reads docker:// and oci:/oci-archive: locations, not {location}")
    chain = resolve_subjects(location, None, store=store, client=client)
    platforms: list[Platform | None] = list(base_platforms(location, store, client=client)) if len(chain) > 1 \
        else [None]
    images = [resolve_base(location, store, p, client=client) for p in platforms]
    return _rebuild(offline_plan(plan, wheelhouse, project_dir), str(chain[0].digest), images, client=client,
                    on_event=on_event)


def _check_wheelhouse(statement: dict[str, object], wheelhouse: Path) -> None:
    """Every wheel (and sdist) the provenance records is in ``wheelhouse`` with its recorded sha256."""
    import hashlib

    predicate = statement.get("predicate")
    definition = predicate.get("buildDefinition") if isinstance(predicate, dict) else None
    deps = definition.get("resolvedDependencies") if isinstance(definition, dict) else None
    if not wheelhouse.is_dir():
        raise ConfigError(f"--offline-from {wheelhouse}: no such folder")
    have: dict[str, str] = {}
    for path in sorted(wheelhouse.iterdir()):
        if path.is_file() and path.name.endswith((".whl", ".tar.gz", ".zip")):
            h = hashlib.sha256()
            with path.open("rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            have[h.hexdigest()] = path.name
    for dep in deps if isinstance(deps, list) else []:
        notes = dep.get("annotations", {}) if isinstance(dep, dict) else {}
        if not isinstance(notes, dict) or notes.get("kind") not in ("wheel", "sdist"):
            continue
        sha = str(dep.get("digest", {}).get("sha256", ""))
        if sha and sha not in have:
            raise ConfigError(f"input {dep.get('name')} (sha256 {sha}) is not in {wheelhouse} (it holds "
                              f"{len(have)} wheels and sdists, none with that sha256); add it, or rebuild "
                              "without --offline-from to fetch it from its index")

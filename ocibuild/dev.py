"""The inner loop: ``ocibuild dev`` builds once, then rebuilds and publishes on every save.

A :class:`DevSession` is one long-lived build of a project. It keeps what does not change between
saves in memory: the plan (read again only when the build file or another plan input changes), the
base images and Python dependency layers (a ``BuildMemo``), the content store's file-hash records,
and the registry client with its connections, tokens and the blobs each repository is known to hold
(``KnownBlobs``: never ``HEAD``ed again; a manifest answered ``MANIFEST_BLOB_UNKNOWN`` pushes them
again). Each :meth:`DevSession.cycle` builds the file layers again (only those whose files changed
are built; the rest come from the store), and publishes only new blobs and the manifest(s).

:func:`watch` runs cycles on file changes (inotify through ``watchfiles``): changes are grouped
until the tree has been quiet for ``quiet_ms``, paths no build input covers are ignored (the
outputs, the store, version-control and cache folders, editor swap files, a layer's excluded
paths), and a file still being written when its layer was built (an editor's truncate-then-write)
is built again before anything is published.

>>> session = DevSession(lambda: load_plan("examples/hello").with_outputs("oci:out/hello:dev"))  # doctest: +SKIP
>>> for cycle in watch(session):  # doctest: +SKIP
...     print(cycle.line())
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .build import BuildMemo, BuildResult, build
from .errors import OcibuildError
from .events import EventHandler, ignore
from .plan import BuildPlan
from .publish import publish
from .store import ContentStore
from .transports import DebianBase, DockerArchive, OciArchive, OciLayout

if TYPE_CHECKING:
    from .registry import RegistryClient

__all__ = ["Cycle", "DevSession", "watch"]

log = logging.getLogger("ocibuild.dev")

BUILD_FILES = ("ocibuild.toml", "pyproject.toml")
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache",
                          ".hypothesis", ".tox", ".nox", ".idea", ".vscode", "node_modules"})
QUIET_MS = 5
"""A change is acted on once no file has changed for this long (an editor's save is one burst)."""
EMPTY_WAIT = 0.1
"""An empty changed file may be an editor's truncate-then-write under way: it is read once it has not
changed for this long (at most ``SETTLE_TRIES`` times)."""
SETTLE_TRIES = 20


def _editor_noise(name: str) -> bool:
    """Swap, backup and probe files editors write beside the file being saved."""
    return (name.endswith(("~", ".swp", ".swx", ".swo", ".pyc", ".pyo")) or name.startswith(".#")
            or name == "4913" or (name.startswith(".") and ".tmp-" in name))


@dataclass(frozen=True, kw_only=True, slots=True)
class Cycle:
    """One build and publish of a dev session: what changed (paths relative to the project), the
    layers built anew, the digest published (None when the build failed: ``error`` says why), whether
    it equals the previous one, and the seconds from the first save of the change to the published
    manifest."""

    changed: tuple[str, ...]
    digest: str | None
    built: tuple[str, ...] = ()
    unchanged: bool = False
    seconds: float = 0.0
    error: str | None = None
    outputs: tuple[str, ...] = ()
    result: BuildResult | None = field(default=None, repr=False, compare=False)

    def line(self) -> str:
        """The one line ``ocibuild dev`` prints for this cycle."""
        what = ", ".join(self.changed[:3]) + (f" and {len(self.changed) - 3} more" if len(self.changed) > 3 else "")
        what = what or "first build"
        if self.error is not None:
            return f"dev     {what}: error: {self.error} (still watching: fix it and save)"
        if self.unchanged:
            return f"dev     {what}: no change to the image {self.digest}"
        built = f"built {', '.join(self.built)}; " if self.built else ""
        return f"dev     {what}: {built}pushed {self.digest} in {self.seconds:.3f} s"


class DevSession:
    """One long-lived build of a project (see the module docstring). ``load`` gives the plan (called
    again after a plan input changed); ``client`` is kept for the session (give it a ``KnownBlobs``
    memory: ``RegistryClient(known=KnownBlobs())``); build events of the first build go to ``on_event``,
    later ones only to ``on_cycle_event`` (default: nowhere). ``project`` names the project folder
    while no plan could be read; ``inputs`` are more files the plan is read from (a ``--config`` build file)."""

    def __init__(self, load: Callable[[], BuildPlan], *, store: ContentStore | None = None,
                 client: RegistryClient | None = None, on_event: EventHandler = ignore,
                 on_cycle_event: EventHandler = ignore, project: Path | None = None,
                 inputs: Collection[Path] = ()) -> None:
        self.load = load
        self.project = project
        self.inputs = frozenset(p.absolute() for p in inputs)
        self.store = store or ContentStore.default()
        self.client = client
        self.on_event = on_event
        self.on_cycle_event = on_cycle_event
        self.memo = BuildMemo()
        self.plan: BuildPlan | None = None
        self.digest: str | None = None
        self.cycles = 0
        self._lock = threading.Lock()

    # --- what to watch ----------------------------------------------------------------------------------

    def _project(self) -> Path:
        plan = self.plan
        if plan is not None:
            self.project = plan.project_dir.absolute()
        return (self.project or Path(".")).absolute()

    def roots(self, project: Path) -> list[Path]:
        """The folders to watch: the project, and every layer or model source outside it."""
        roots = [project.absolute()]
        plan = self.plan
        wanted = [*self._sources(plan), *sorted(self._plan_inputs(plan))] if plan is not None else []
        for src in [*wanted, *sorted(self.inputs)]:
            if not any(_under(src, r) for r in roots):
                roots.append(src if src.is_dir() else src.parent)
        return roots

    def _sources(self, plan: BuildPlan) -> list[Path]:
        out = []
        for spec in plan.layers:
            out += [f.src.absolute() for f in spec.files] if spec.files else [self._abs(plan, spec.src)]
        out += [self._abs(plan, m.src) for m in plan.models]
        return out

    @staticmethod
    def _abs(plan: BuildPlan, path: Path) -> Path:
        return path.absolute() if path.is_absolute() else (plan.project_dir / path).absolute()

    def _ignored(self, path: Path) -> bool:
        project = self._project()
        parts = path.relative_to(project).parts if _under(path, project) else path.parts[-2:]
        if any(part in IGNORED_DIRS for part in parts) or _editor_noise(path.name):
            return True
        if _under(path, self.store.root.absolute()):
            return True
        plan = self.plan
        if plan is None:
            return False
        outputs = [o.path.absolute() for o in plan.outputs if isinstance(o, OciLayout | OciArchive | DockerArchive)]
        return any(_under(path, o) for o in outputs)

    def _plan_inputs(self, plan: BuildPlan) -> set[Path]:
        project = plan.project_dir.absolute()
        inputs = {project / name for name in BUILD_FILES} | set(self.inputs)
        if plan.python is not None:
            inputs |= {self._abs(plan, p) for p in (plan.python.requirements, plan.python.lock) if p is not None}
            inputs.add(project / "uv.lock")
        inputs |= {self._abs(plan, b.lock) for b in (plan.base, *plan.bases.values())
                   if isinstance(b, DebianBase) and b.lock is not None}
        if plan.weights_lock is not None:
            inputs.add(self._abs(plan, plan.weights_lock))
        return inputs

    def classify(self, path: Path) -> str | None:
        """Why a change of ``path`` matters: "plan" (the build file or another plan input: plan again),
        "files" (a layer's or model's file: build again), or None (nothing the image is built from)."""
        try:
            return self._classify(path.absolute())
        except Exception:  # whatever confused it, a build will say what is wrong
            log.debug("cannot classify %s", path, exc_info=True)
            return "files"

    def _classify(self, path: Path) -> str | None:
        if self._ignored(path):
            return None
        plan = self.plan
        if plan is None:
            return "plan"  # the last plan failed: any change may fix it
        if path in self._plan_inputs(plan):
            return "plan"
        project = plan.project_dir.absolute()
        if plan.python is not None and plan.python.project and _under(path, project) \
                and not _build_output(path.relative_to(project), project):
            return "plan"  # the project is installed as a wheel: its sources are a plan input
        for spec in plan.layers:
            if spec.files:
                if any(_under(path, f.src.absolute()) for f in spec.files):
                    return "files"
                continue
            src = self._abs(plan, spec.src)
            if path == src:
                return "files"
            if _under(path, src):
                from .layers.ignore import load_rules

                rel = path.relative_to(src).as_posix()
                try:
                    excluded = load_rules(src, spec.exclude).excluded(rel)
                except Exception:  # a broken .ociignore: the build says what is wrong with it
                    excluded = False
                if not excluded or path.name == ".ociignore":
                    return "files"
        if any(_under(path, self._abs(plan, m.src)) for m in plan.models):
            return "files"
        return None

    # --- one cycle --------------------------------------------------------------------------------------

    def cycle(self, changed: Collection[Path] = (), *, since: float | None = None) -> Cycle:
        """Build (planning again if a plan input changed) and publish; never raises an ``OcibuildError``
        or ``OSError`` (the cycle's ``error`` says what went wrong). ``since``: the wall-clock time of the
        save (default: now)."""
        since = time.time() if since is None else since
        with self._lock:
            project = self._project()
            names = tuple(sorted(_shown(p, project) for p in changed))
            first = self.cycles == 0
            self.cycles += 1
            events = self.on_event if first else self.on_cycle_event
            try:
                _settle(changed)  # an editor's truncate-then-write: the build file too is read whole
                if self.plan is None or any(self.classify(p) == "plan" for p in changed):
                    self.plan = None
                    self.memo.clear()
                    self.plan = self.load()
                result = self._settled_build(self.plan, changed, events)
                result = publish(result, client=self.client, on_event=events)
            except OcibuildError as exc:
                return Cycle(changed=names, digest=None, error=str(exc))
            except OSError as exc:  # a file that went away or cannot be read while it was built
                where = f" {exc.filename}" if exc.filename else ""
                return Cycle(changed=names, digest=None,
                             error=f"cannot read{where}: {exc.strerror or exc}; check the file and its permissions")
            except Exception as exc:  # a bug must not end the session: say it, keep watching
                log.debug("dev cycle failed", exc_info=True)
                return Cycle(changed=names, digest=None,
                             error=f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
            seconds = time.time() - since
            unchanged = result.digest == self.digest
            self.digest = result.digest
            built = tuple(r.label for r in result.layers if not r.cached)
            return Cycle(changed=names, digest=result.digest, built=built, unchanged=unchanged, seconds=seconds,
                         outputs=result.outputs, result=result)

    def _settled_build(self, plan: BuildPlan, changed: Collection[Path], events: EventHandler) -> BuildResult:
        """Build; if a changed file changed again while it was read (a save still under way), build again."""
        for _ in range(SETTLE_TRIES):
            before = _settle(changed)
            result = build(plan, store=self.store, on_event=events, client=self.client, memo=self.memo)
            if all(_stat(p) == st for p, st in before.items()):
                return result
            time.sleep(QUIET_MS / 1000)
        return result


def _settle(paths: Collection[Path]) -> dict[Path, tuple[int, int, int] | None]:
    """The stat of each path once none is an empty file that changes within ``EMPTY_WAIT`` (an editor
    truncates, then writes: the bytes are waited for; a file left empty is empty)."""
    before = {p: _stat(p) for p in paths}
    for _ in range(SETTLE_TRIES):
        if not any(st is not None and st[0] == 0 for st in before.values()):
            break
        time.sleep(EMPTY_WAIT)
        now = {p: _stat(p) for p in paths}
        if now == before:
            break
        before = now
    return before


def _build_output(rel: Path, project: Path) -> bool:
    """Whether ``rel`` (under the project) is what building the project's wheel writes or leaves around:
    ``build/``, ``dist/``, ``*.egg-info``, a virtual environment, a path the layer rules leave out."""
    if any(part in ("build", "dist", ".venv", "venv") or part.endswith(".egg-info") for part in rel.parts):
        return True
    from .layers.ignore import load_rules

    try:
        return load_rules(project, ()).excluded(rel.as_posix())
    except Exception:
        return False


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _shown(path: Path, project: Path) -> str:
    try:
        return path.absolute().relative_to(project).as_posix()
    except ValueError:
        return str(path)


def _save_time(paths: Collection[Path], floor: float, arrived: float) -> float:
    """When the change was saved: the earliest modification time of the changed files not older than
    ``floor`` (the start of the previous cycle), else when the change ``arrived``."""
    times = []
    for p in paths:
        try:
            mtime = os.stat(p).st_mtime
        except OSError:
            continue
        if floor <= mtime <= arrived:
            times.append(mtime)
    return min(times, default=arrived)


def watch(session: DevSession, *, project: Path | None = None, stop: threading.Event | None = None,
          quiet_ms: int = QUIET_MS) -> Iterator[Cycle]:
    """The first cycle, then one per relevant change until ``stop`` is set (or Ctrl-C: the
    ``KeyboardInterrupt`` propagates, between cycles or from one, which then publishes nothing more).
    The watch starts before the first build, so no save is missed; it is set up again when a new plan
    names other sources."""
    from watchfiles._rust_notify import RustNotify  # watchfiles' documented Rust backend

    root = (project or session._project()).absolute()
    floor = time.time()
    roots = [r for r in session.roots(root) if r.exists()]
    watcher = RustNotify([str(r) for r in roots], False, False, 300, True, True)
    try:
        yield session.cycle()
        while stop is None or not stop.is_set():
            raw = watcher.watch(1600, quiet_ms, 1000, stop)
            if raw == "signal":
                raise KeyboardInterrupt
            if raw == "stop":
                return
            if not isinstance(raw, set) or not raw:
                continue
            arrived = time.time()
            relevant = sorted(p for p in {Path(path) for _, path in raw} if session.classify(p) is not None)
            if not relevant:
                continue
            cycle = session.cycle(relevant, since=_save_time(relevant, floor, arrived))
            floor = arrived
            yield cycle
            now = [r for r in session.roots(root) if r.exists()]
            if now != roots:  # the layer sources moved: watch the new set (what the old one saw meanwhile too)
                new_watcher = RustNotify([str(r) for r in now], False, False, 300, True, True)
                left = watcher.watch(1, 1, 1, None)
                watcher.close()
                watcher, roots = new_watcher, now
                missed = sorted(p for p in {Path(path) for _, path in left} if session.classify(p) is not None) \
                    if isinstance(left, set) else []
                if missed:
                    yield session.cycle(missed)
    finally:
        watcher.close()

"""Batch builds: many projects in one process (``ocibuild build A B C``, ``ocibuild build --workspace FILE``).

What the projects share is done once. Builds run in a bounded thread pool over one content store,
ordered so that shared inputs are made by one build and found by the others: the first project of
each base (and platforms) builds first; then the first of each set of identical Python dependency
inputs (the same requirements or lock contents, indexes and wheelhouses); then all the others, which
find the base and their dependency layers in the store (``cached``). Pushes go through one registry
client whose blob uploads are single-flight per registry and digest: a blob already pushed (or being
pushed) to one repository of a registry is cross-repository mounted into the others, never uploaded
again. One failing project never stops the others; the ``BatchResult`` lists every result and every
failure.

The workspace file (``load_workspace``), TOML; relative paths are relative to the file::

    [workspace]
    projects = ["models/*", "services"]   # globs of project folders; a folder that is no project
                                          # stands for every project below it
    output = "docker://127.0.0.1:5000/fleet/{name}:latest"  # optional; a string or a list

    [[project]]                           # optional, repeatable: one project and its own outputs
    path = "services/api"
    name = "api"                          # optional; default: the folder's name
    output = ["docker://127.0.0.1:5000/api:v1"]

A project folder holds an ``ocibuild.toml`` or a ``pyproject.toml``; ``{name}`` in an output is the
project's name (its folder's name, lowercased, other characters than ``a-z0-9._-`` made ``-``).

>>> plans = plan_projects(load_workspace("ocibuild-workspace.toml"))  # doctest: +SKIP
>>> batch = build_many(plans, jobs=4)  # doctest: +SKIP
>>> print("\\n".join(summary_lines(batch)))  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .build import BuildResult, LayerReport, build
from .config import BUILD_FILE, Overrides, load_plan
from .errors import ConfigError, OcibuildError
from .events import EventHandler, Note, TransferKind, human_size, ignore
from .publish import publish
from .store import ContentStore
from .transports import Registry

if TYPE_CHECKING:
    from .evidence import Evidence
    from .plan import BuildPlan
    from .registry import RegistryClient
    from .registry.transport import Repository
    from .spec import Descriptor

__all__ = ["BatchProject", "BatchResult", "ProjectFailure", "ProjectPlan", "ProjectResult", "build_many",
           "default_jobs", "find_projects", "load_workspace", "plan_projects", "summary_lines"]

WORKSPACE_FILE = "ocibuild-workspace.toml"
WORKSPACE_KEYS = ("projects", "output")
PROJECT_KEYS = ("path", "name", "output")
SKIP_DIRS = frozenset({".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"})


def default_jobs() -> int:
    """Images built side by side by default: ``min(4, CPUs)`` (each build also uses threads of its own)."""
    return max(1, min(4, os.cpu_count() or 1))


def project_name(path: Path) -> str:
    """``{name}`` for the project at ``path``: its folder's name, lowercased, fit for a repository name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", path.absolute().name.lower()).strip("-._")
    return re.sub(r"[._-]{2,}", "-", name) or "app"


# --------------------------------------------------------------------------------------------------
# projects and the workspace file
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchProject:
    """One project of a batch: its folder, its ``name`` (for ``{name}`` and the summary) and its
    outputs (locations, ``{name}`` allowed; empty: the command line's, else its build file's)."""

    path: Path
    name: str
    outputs: tuple[str, ...] = ()

    @classmethod
    def at(cls, path: Path | str, *, name: str | None = None, outputs: Sequence[str] = ()) -> BatchProject:
        p = Path(path)
        return cls(path=p, name=name or project_name(p), outputs=tuple(outputs))


def _is_project(folder: Path) -> bool:
    return (folder / BUILD_FILE).is_file() or (folder / "pyproject.toml").is_file()


def _has_ocibuild_table(folder: Path) -> bool:
    if (folder / BUILD_FILE).is_file():
        return True
    try:
        data = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    tool = data.get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("ocibuild"), dict)


def find_projects(folder: Path | str) -> list[Path]:
    """Every project below ``folder`` (itself included), sorted: folders with an ``ocibuild.toml``, or a
    ``pyproject.toml`` with a ``[tool.ocibuild]`` table. A project's own subfolders are not searched;
    hidden folders, virtual environments and ``node_modules`` are skipped."""
    found: list[Path] = []
    for top, dirs, _ in os.walk(folder):
        here = Path(top)
        if _has_ocibuild_table(here):
            found.append(here)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
    return sorted(found)


def _outputs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where} must be a location or a list of locations, e.g. "
                          '"docker://registry.example.com/fleet/{name}:latest"')
    return tuple(value)


def _unknown(table: dict[str, Any], valid: Sequence[str], where: str) -> None:
    import difflib

    for key in table:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def load_workspace(path: Path | str) -> list[BatchProject]:
    """The projects a workspace file lists (format in the module docstring), in the order written
    (each glob's matches sorted), each once. Raises ``ConfigError`` naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"workspace file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"workspace file {path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"workspace file {path}: invalid TOML: {exc}") from None
    where = str(path)
    _unknown(data, ("workspace", "project"), where)
    root = path.absolute().parent
    workspace = data.get("workspace", {})
    if not isinstance(workspace, dict):
        raise ConfigError(f"{where}: workspace must be a table ([workspace])")
    _unknown(workspace, WORKSPACE_KEYS, f"{where}: [workspace]")
    default_outputs = _outputs(workspace["output"], f"{where}: workspace.output") if "output" in workspace else ()
    patterns = workspace.get("projects", [])
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) and p.strip() for p in patterns):
        raise ConfigError(f'{where}: workspace.projects must be a list of folder globs, e.g. ["models/*"]')
    chosen: dict[Path, BatchProject] = {}
    for pattern in patterns:
        matches = sorted(Path(m) for m in glob.glob(str(root / pattern)) if Path(m).is_dir())
        found = [p for m in matches for p in ([m] if _is_project(m) else find_projects(m))]
        if not found:
            raise ConfigError(f"{where}: workspace.projects: {pattern!r} matches no project folder (one with an "
                              f"{BUILD_FILE} or a pyproject.toml) below {root}")
        for p in found:
            chosen.setdefault(p.resolve(), BatchProject.at(p, outputs=default_outputs))
    entries = data.get("project", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{where}: project must be an array of tables ([[project]] with path = ...)")
    for i, entry in enumerate(entries):
        key = f"{where}: project[{i}]"
        _unknown(entry, PROJECT_KEYS, key)
        if not isinstance(entry.get("path"), str) or not entry["path"].strip():
            raise ConfigError(f'{key}.path: give the project folder, e.g. path = "services/api"')
        folder = root / entry["path"]
        if not folder.is_dir():
            raise ConfigError(f"{key}.path: no such folder {folder}")
        name = entry.get("name")
        if name is not None and (not isinstance(name, str) or not re.fullmatch(r"[a-z0-9]+([._-][a-z0-9]+)*", name)):
            raise ConfigError(f"{key}.name: use lowercase letters and digits, separated by '.', '_' or '-'")
        outputs = _outputs(entry["output"], f"{key}.output") if "output" in entry else default_outputs
        chosen[folder.resolve()] = BatchProject.at(folder, name=name, outputs=outputs)
    if not chosen:
        raise ConfigError(f'{where}: no projects; list them in [workspace] projects = ["DIR/*"] or [[project]] tables')
    return list(chosen.values())


# --------------------------------------------------------------------------------------------------
# plans
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectPlan:
    """A project ready to build (``plan``), or the ``error`` that kept its plan from being made."""

    name: str
    path: Path
    plan: BuildPlan | None = None
    error: str | None = None


def expand(outputs: Iterable[str], name: str) -> tuple[str, ...]:
    """``outputs`` with ``{name}`` replaced by ``name``."""
    return tuple(o.replace("{name}", name) for o in outputs)


def plan_projects(projects: Sequence[BatchProject], *, overrides: Overrides = Overrides(),
                  embed_models: bool = False,
                  load: Callable[[BatchProject, tuple[str, ...]], BuildPlan] | None = None) -> list[ProjectPlan]:
    """Each project's build plan: its build file with ``overrides`` (for every project; their outputs,
    ``{name}`` expanded, before the project's own). ``load(project, outputs)`` replaces ``load_plan``
    (the CLI's flags). A project that cannot be planned, has no output, or writes where another one
    does gets an ``error`` instead (it fails, the others are built)."""
    out: list[ProjectPlan] = []
    seen: dict[str, str] = {}
    for project in projects:
        outputs = expand(overrides.outputs or project.outputs, project.name)
        try:
            if load is not None:
                plan = load(project, outputs)
            else:
                plan = load_plan(project.path, overrides=replace(overrides, outputs=outputs),
                                 embed_models=embed_models)
            if not plan.outputs:
                raise ConfigError(f"project {project.name} ({project.path}) has no output: give --output with "
                                  "{name} (e.g. docker://REGISTRY/fleet/{name}:latest), an output in the workspace "
                                  "file, or outputs in its build file")
            for o in plan.outputs:
                other = seen.setdefault(str(o), project.name)
                if other != project.name:
                    raise ConfigError(f"project {project.name}: output {o} is also project {other}'s; give each "
                                      "project its own (e.g. with {name} in the output)")
        except OcibuildError as exc:
            out.append(ProjectPlan(name=project.name, path=project.path, error=str(exc)))
            continue
        out.append(ProjectPlan(name=project.name, path=project.path, plan=plan))
    return out


# --------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectResult:
    """One project's published build, with what its push cost: bytes uploaded and the blobs by how
    they reached the registry (``uploaded``, ``mounted``, ``exists``)."""

    name: str
    path: Path
    result: BuildResult
    seconds: float
    pushed_bytes: int = 0
    transfers: dict[str, int] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.result.digest

    def _reports(self) -> list[LayerReport]:
        reports = [r for p in self.result.platforms for r in p.layers] or list(self.result.layers)
        return list({r.descriptor.digest: r for r in reports}.values())

    @property
    def built(self) -> int:
        """Layers this build made (over all platforms, each distinct layer once)."""
        return sum(not r.cached for r in self._reports())

    @property
    def cached(self) -> int:
        """Layers the store already held (built before, or by another project of the batch)."""
        return sum(r.cached for r in self._reports())

    def to_dict(self) -> dict[str, Any]:
        return {"project": str(self.path), "name": self.name, **self.result.to_dict(),
                "seconds": round(self.seconds, 3),
                "pushed": {"bytes": self.pushed_bytes, **dict(sorted(self.transfers.items()))}}


@dataclass(frozen=True, kw_only=True, slots=True)
class ProjectFailure:
    """A project that failed: its one-line error (and the exception, for tracebacks)."""

    name: str
    path: Path
    error: str
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"project": str(self.path), "name": self.name, "error": self.error}


@dataclass(frozen=True, kw_only=True, slots=True)
class BatchResult:
    """Every project's result and every failure, each in the order the projects were given."""

    results: tuple[ProjectResult, ...]
    failed: tuple[ProjectFailure, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document: ``{"results": [...], "failed": [...], "seconds": ...}``."""
        return {"results": [r.to_dict() for r in self.results], "failed": [f.to_dict() for f in self.failed],
                "seconds": round(self.seconds, 3)}


def summary_lines(batch: BatchResult) -> list[str]:
    """The summary table: one row per project (name, digest, layers built / cached, bytes pushed,
    seconds; or FAILED and its error), then a total."""
    rows = [(r.name, r.digest[:19], str(r.built), str(r.cached), human_size(r.pushed_bytes), f"{r.seconds:.1f}s")
            for r in batch.results]
    width = max([len("PROJECT"), *(len(r[0]) for r in rows), *(len(f.name) for f in batch.failed)])
    lines = [f"{'PROJECT':<{width}}  {'DIGEST':<19}  {'BUILT':>5}  {'CACHED':>6}  {'PUSHED':>9}  {'TIME':>7}"]
    lines += [f"{n:<{width}}  {d:<19}  {b:>5}  {c:>6}  {p:>9}  {t:>7}" for n, d, b, c, p, t in rows]
    lines += [f"{f.name:<{width}}  {'FAILED':<19}  {f.error}" for f in batch.failed]
    total = sum(r.pushed_bytes for r in batch.results)
    failed = f", {len(batch.failed)} failed" if batch.failed else ""
    lines.append(f"{len(batch.results)} images{failed}; {human_size(total)} pushed in {batch.seconds:.1f}s")
    return lines


# --------------------------------------------------------------------------------------------------
# pushing each blob once per registry
# --------------------------------------------------------------------------------------------------


class SharedPushes:
    """Which repository of each registry holds a blob the batch pushed, and which blobs are being
    pushed right now: a second push of the same blob to the same registry waits for the first, then
    mounts it from there (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._where: dict[tuple[str, str], str] = {}
        self._pending: dict[tuple[str, str], threading.Event] = {}

    def push(self, repo: Repository, desc: Descriptor, mount_from: str | None,
             push: Callable[[str | None], TransferKind]) -> TransferKind:
        """Run ``push(mount_from)`` for ``desc`` into ``repo``: alone among the pushes of that blob to
        that registry, and with a repository of the registry that holds it as ``mount_from``."""
        key = (repo.host, str(desc.digest))
        owner: threading.Event | None = None
        while True:
            with self._lock:
                where = self._where.get(key)
                if where is not None:
                    break
                pending = self._pending.get(key)
                if pending is None:
                    owner = self._pending[key] = threading.Event()
                    break
            pending.wait()
        try:
            how = push(mount_from if where is None or where == repo.name else (mount_from or where))
            with self._lock:
                self._where.setdefault(key, repo.name)
            return how
        finally:
            if owner is not None:
                with self._lock:
                    self._pending.pop(key, None)
                owner.set()


def _project_client(client: RegistryClient, shared: SharedPushes, on_event: EventHandler) -> RegistryClient:
    """A client over ``client``'s connection, credentials and memory whose blob pushes go through
    ``shared`` and are counted (``pushed_bytes``, ``transfers``)."""
    from .registry import RegistryClient

    class ProjectClient(RegistryClient):
        def __init__(self) -> None:  # shares the transport (session, tokens, TLS, retries) and the memory
            self.__dict__.update(client.__dict__)
            self.on_event = on_event
            self.pushed_bytes = 0
            self.transfers: dict[str, int] = {}
            self._count = threading.Lock()

        def push_blob(self, repo: Repository, desc: Descriptor, source: ContentStore | Callable[[], BinaryIO], *,
                      mount_from: str | None = None, chunked: bool = False, check: bool = True) -> TransferKind:
            how = shared.push(repo, desc, mount_from,
                              lambda mount: RegistryClient.push_blob(self, repo, desc, source, mount_from=mount,
                                                                     chunked=chunked, check=check))
            with self._count:
                self.transfers[how] = self.transfers.get(how, 0) + 1
                self.pushed_bytes += desc.size if how == "uploaded" else 0
            return how

    return ProjectClient()


# --------------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------------


def _content(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return str(path.absolute())


def _base_key(plan: BuildPlan) -> str:
    platforms = plan.platforms if plan.platforms == "all" else [str(p) for p in plan.platforms]
    return json.dumps([str(plan.base), sorted((k, str(v)) for k, v in plan.bases.items()), platforms])


def _deps_key(plan: BuildPlan) -> str:
    """What the plan's Python dependency layers are made from, file contents instead of paths (two
    projects with the same key get the same layers): else the project itself (nothing shared)."""
    spec = plan.python
    if spec is None:
        return _base_key(plan) + " no python"
    if spec.project or (spec.requirements is None and spec.lock is None):
        return _base_key(plan) + f" project {plan.project_dir.absolute()}"
    values: dict[str, Any] = {}
    for f in fields(spec):
        value = getattr(spec, f.name)
        values[f.name] = _content(value) if f.name in ("requirements", "lock") else str(value)
    return _base_key(plan) + json.dumps(values, sort_keys=True)


def _order(plans: list[tuple[int, BuildPlan]]) -> tuple[list[int], dict[int, int]]:
    """The build order and, for each project that follows another, the one it waits for: the first of
    each base builds first, then the first of each set of dependency inputs, then the rest."""
    base_leader: dict[str, int] = {}
    deps_leader: dict[str, int] = {}
    waits: dict[int, int] = {}
    for i, plan in plans:
        b = base_leader.setdefault(_base_key(plan), i)
        d = deps_leader.setdefault(_deps_key(plan), i)
        if d != i:
            waits[i] = d
        elif b != i:
            waits[i] = b
    first = list(dict.fromkeys(base_leader.values()))
    second = [i for i in dict.fromkeys(deps_leader.values()) if i not in first]
    rest = [i for i, _ in plans if i not in first and i not in second]
    return [*first, *second, *rest], waits


def build_many(plans: Sequence[ProjectPlan | BuildPlan], *, store: ContentStore | None = None,
               client: RegistryClient | None = None, on_event: EventHandler = ignore,
               project_events: Callable[[str], EventHandler] | None = None, jobs: int | None = None,
               update_lock: bool = False,
               evidence: Evidence | Callable[[BuildPlan], Evidence | None] | None = None,
               explain: bool = False) -> BatchResult:
    """Build and publish every plan (to its outputs), ``jobs`` at a time (default ``default_jobs()``),
    sharing ``store`` and ``client``; see the module docstring for how shared layers are built and
    pushed once. A failing project is recorded in ``failed`` (as is a ``ProjectPlan`` with an error)
    and the others go on. ``on_event`` gets one note per project started and finished, and every
    project's events unless ``project_events(name)`` gives a handler for that project's.
    ``evidence`` (or ``evidence(plan)``) is attached as ``publish`` does; ``explain`` as for ``build``."""
    start = time.monotonic()
    store = store or ContentStore.default()
    entries = [p if isinstance(p, ProjectPlan) else
               ProjectPlan(name=project_name(p.project_dir), path=p.project_dir, plan=p) for p in plans]
    jobs = max(1, jobs or default_jobs())
    if client is None and any(isinstance(loc, Registry) for e in entries if e.plan is not None
                              for loc in (e.plan.base, *e.plan.bases.values(), *e.plan.outputs)):
        from .registry import RegistryClient

        client = RegistryClient(on_event=on_event)
    shared = SharedPushes()
    outcomes: dict[int, ProjectResult | ProjectFailure] = {
        i: ProjectFailure(name=e.name, path=e.path, error=e.error or "no plan")
        for i, e in enumerate(entries) if e.plan is None}
    ready = {i: threading.Event() for i in range(len(entries))}
    todo = [(i, e.plan) for i, e in enumerate(entries) if e.plan is not None]
    order, waits = _order(todo)

    def one(i: int) -> None:
        entry = entries[i]
        plan = entry.plan
        assert plan is not None
        events = project_events(entry.name) if project_events is not None else on_event
        if i in waits:
            ready[waits[i]].wait()  # submitted (and so started) before this one: never a deadlock
        began = time.monotonic()
        on_event(Note(text=f"batch   {entry.name}: building ({entry.path})"))
        own = _project_client(client, shared, events) if client is not None else None
        try:
            try:
                result = build(plan, store=store, on_event=events, client=own, update_lock=update_lock,
                               explain=explain)
            finally:
                ready[i].set()
            chosen = evidence(plan) if callable(evidence) else evidence
            result = publish(result, on_event=events, client=own, evidence=chosen)
        except Exception as exc:  # one project's failure (even a bug) never stops the others
            message = str(exc) if isinstance(exc, OcibuildError) else f"{type(exc).__name__}: {exc}"
            if isinstance(exc, OSError) and not isinstance(exc, OcibuildError):
                where = f" {exc.filename}" if exc.filename else ""
                message = f"cannot access{where}: {exc.strerror or exc}"
            outcomes[i] = ProjectFailure(name=entry.name, path=entry.path, error=message, exception=exc)
            on_event(Note(text=f"batch   {entry.name}: failed: {message}"))
            return
        pushed = getattr(own, "pushed_bytes", 0)
        transfers = dict(getattr(own, "transfers", {}))
        outcomes[i] = ProjectResult(name=entry.name, path=entry.path, result=result,
                                    seconds=time.monotonic() - began, pushed_bytes=pushed, transfers=transfers)
        on_event(Note(text=f"batch   {entry.name}: {result.digest}"))

    if order:
        with ThreadPoolExecutor(max_workers=min(jobs, len(order)), thread_name_prefix="ocibuild-batch") as pool:
            for future in [pool.submit(one, i) for i in order]:
                future.result()
    ordered = [outcomes[i] for i in range(len(entries))]
    return BatchResult(results=tuple(o for o in ordered if isinstance(o, ProjectResult)),
                       failed=tuple(o for o in ordered if isinstance(o, ProjectFailure)),
                       seconds=time.monotonic() - start)

"""``ocibuild init``: a build file written from what a project holds, with the reason for every choice.

Nothing of the project is imported or run: ``pyproject.toml``, ``uv.lock`` and ``pylock.toml`` are read
with ``tomllib``, requirements files with ``packaging``, and Python files are parsed with ``ast`` to find
a web application (a module-level ``FastAPI()`` / ``Starlette()`` / ``Flask(__name__)``, a Django
``manage.py`` + ``wsgi.py``). What is decided:

- **dependencies**: the first of ``uv.lock``, ``pylock.toml``, ``requirements*.txt``, ``[project]``
  (the order the README gives), as the ``[python]`` table;
- **entrypoint**: a ``[project.scripts]`` console script of an installed package, else a web app served
  by uvicorn / gunicorn on port 8000, else ``python3 -m PACKAGE`` for a ``__main__.py``, else a top-level
  script with an ``if __name__ == "__main__":`` block. For a project installed as a wheel, a module
  the wheel holds comes first; one it does not (a top-level ``main.py`` beside the package) gets the
  project folder copied to ``/app`` as well, the working folder it is imported from;
- **models**: folders of weight files (``.safetensors``, ``.onnx``, ``.gguf``...) as layers of their
  own before the code (or, asked for, ``[[models]]`` images);
- a ``.ociignore`` for what should not reach the image (``.env`` files, tests, editor folders).

The result is checked with :func:`~ocibuild.config.load_plan` before anything is written, and an
existing build file (or ``[tool.ocibuild]`` table, or ``.ociignore``) is never replaced without ``force``.
"""

from __future__ import annotations

import ast
import json
import keyword
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Literal

from packaging.utils import canonicalize_name

from .errors import ConfigError
from .events import human_size

__all__ = ["Decision", "InitResult", "init_project"]

BUILD_FILE = "ocibuild.toml"
IGNORE_FILE = ".ociignore"
PORT = 8000
APP_DIR = "/app"
ModelsAs = Literal["layers", "images"]
# framework module -> (its name for people, the server that runs it)
_SERVERS = {"fastapi": ("FastAPI", "uvicorn"), "starlette": ("Starlette", "uvicorn"), "flask": ("Flask", "gunicorn"),
            "django": ("Django", "gunicorn")}
# qualified name of an application class -> framework
_APP_CLASSES = {"fastapi.FastAPI": "fastapi", "fastapi.applications.FastAPI": "fastapi",
                "starlette.applications.Starlette": "starlette", "flask.Flask": "flask", "flask.app.Flask": "flask"}
_FACTORIES = ("create_app", "make_app", "app_factory")
_PREFERRED_FILES = ("main", "app", "server", "api", "asgi", "wsgi", "application", "__init__", "run", "cli")
# folders never searched for code or models (besides hidden ones and virtual environments)
_SKIP_DIRS = {"node_modules", "__pycache__", "__pypackages__", "site-packages", "build", "dist", "tests", "test",
              "docs", "out"}
# the most Python files and weight files looked at (each counted on its own; other files are not looked at)
_MAX_PY_FILES = 5000
_MAX_WEIGHT_FILES = 5000
_MAX_PARSE_BYTES = 1 << 20
_WEIGHTS = (".safetensors", ".onnx", ".gguf", ".ggml", ".pt", ".pth", ".bin", ".ckpt", ".h5", ".keras", ".tflite",
            ".joblib", ".pkl", ".pb", ".msgpack", ".npz")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INCLUDE = re.compile(r"(?:-r|--requirement)(?:\s*=\s*|\s*)(\S+)")  # -r other.txt in a requirements file
IGNORE_DEFAULTS = """\
# Written by `ocibuild init`: files left out of the image (.dockerignore rules: `*`, `**`, `!` re-includes).
# ocibuild already leaves out virtual environments, .git, __pycache__, *.pyc, dist/, build/, *.egg-info,
# node_modules and tool caches; these are added to that list.
.env
.env.*
*.log
.coverage
htmlcov/
.idea/
.vscode/
.DS_Store
.github/
.gitlab-ci.yml
tests/
Dockerfile
.dockerignore
ocibuild.toml
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """One thing ``ocibuild init`` decided, and why: ``topic`` is a short word (``python``, ``entrypoint``,
    ``port``, ``model``, ``ignore``, ``base``, ``warning``...), ``text`` one line for people."""

    topic: str
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"topic": self.topic, "text": self.text}


@dataclass(frozen=True, kw_only=True, slots=True)
class InitResult:
    """What :func:`init_project` decided and did.

    ``table`` is the build-file table (the same keys in ``ocibuild.toml`` and ``[tool.ocibuild]``),
    ``text`` the TOML that was (or, with ``dry_run``, would be) written to ``build_file``, ``ignore_text``
    the ``.ociignore`` wanted ("" when none is). ``written`` and ``kept`` list the files written and the
    ones left unchanged because they exist (no ``force``); with nothing written, ``decisions`` is empty
    when the build file was kept.
    """

    project: Path
    build_file: Path
    table: Mapping[str, Any] = field(default_factory=dict)
    text: str = ""
    ignore_text: str = ""
    decisions: tuple[Decision, ...] = ()
    written: tuple[Path, ...] = ()
    kept: tuple[Path, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"project": str(self.project), "build_file": str(self.build_file), "table": dict(self.table),
                "text": self.text, "ignore_text": self.ignore_text,
                "decisions": [d.to_dict() for d in self.decisions],
                "written": [str(p) for p in self.written], "kept": [str(p) for p in self.kept]}


# ---------------------------------------------------------------------------------------------------
# reading the project
# ---------------------------------------------------------------------------------------------------

def _toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix {what}, then run ocibuild init again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}; check the file and its permissions") from None


def _is_venv(folder: Path) -> bool:
    """A virtual environment (``pyvenv.cfg``) or a conda environment (``conda-meta/``), whatever its name."""
    return (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta").is_dir()


def _skipped(entry: os.DirEntry[str]) -> bool:
    name = entry.name
    return (name.startswith(".") or name in _SKIP_DIRS or name.endswith(".egg-info")
            or _is_venv(Path(entry.path)))


def _walk(project: Path) -> Iterator[Path]:
    """The project's Python files and weight files (the only files init looks at below the top; the
    project files it reads -- ``pyproject.toml``, locks, requirements -- are read from the top folder
    directly), folder by folder, shallow first (breadth-first, each level in name order).

    Hidden folders (``.git``, ``.venv``...), virtual and conda environments, ``node_modules``,
    ``__pycache__``, tests, docs and build outputs are not entered, nor symbolic links to folders. At most
    ``_MAX_PY_FILES`` Python files and ``_MAX_WEIGHT_FILES`` weight files are given, each cap on its own:
    no number of data files (images, JSON, CSV...) hides the code, and the shallowest code comes first.
    """
    py_files = weight_files = 0
    level = [project]
    while level:
        below: list[Path] = []
        for folder in level:
            try:
                with os.scandir(folder) as scan:
                    entries = sorted(scan, key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if is_dir:
                    if not entry.is_symlink() and not _skipped(entry):
                        below.append(Path(entry.path))
                elif entry.name.endswith(".py"):
                    py_files += 1
                    if py_files <= _MAX_PY_FILES:
                        yield Path(entry.path)
                elif entry.name.lower().endswith(_WEIGHTS):
                    weight_files += 1
                    if weight_files <= _MAX_WEIGHT_FILES:
                        yield Path(entry.path)
        level = below


@dataclass(frozen=True, kw_only=True, slots=True)
class _Deps:
    source: str  # "uv.lock", "pylock.toml", "requirements.txt", "[project]" or ""
    table: dict[str, Any]  # the [python] table, or {} with no Python table at all (see has_python)
    has_python: bool
    names: frozenset[str]
    decisions: tuple[Decision, ...]


def _requirement_names(text: str, path: Path, seen: set[Path]) -> set[str]:
    """Distribution names a requirements file asks for (``-r`` files followed; extras that bring a server
    counted as that server)."""
    from packaging.requirements import InvalidRequirement, Requirement

    names: set[str] = set()
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip().rstrip("\\").strip()
        if not line or line.startswith("#"):
            continue
        included = _INCLUDE.fullmatch(line)
        if included:
            other = path.parent / included.group(1)
            if other.resolve() not in seen and other.is_file():
                seen.add(other.resolve())
                names |= _requirement_names(other.read_text(encoding="utf-8", errors="replace"), other, seen)
            continue
        if line.startswith("-"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        names |= _with_extras(req.name, req.extras)
    return names


def _with_extras(name: str, extras: set[str]) -> set[str]:
    name = canonicalize_name(name)
    if name == "fastapi" and extras & {"standard", "all", "standard-no-fastapi-cloud-cli"}:
        return {name, "uvicorn"}
    return {name}


def _project_names(pyproject: Mapping[str, Any]) -> set[str]:
    from packaging.requirements import InvalidRequirement, Requirement

    names: set[str] = set()
    deps = pyproject.get("project", {}).get("dependencies", [])
    for text in deps if isinstance(deps, list) else []:
        try:
            req = Requirement(str(text))
        except InvalidRequirement:
            continue
        names |= _with_extras(req.name, req.extras)
    return names


def _pick_requirements(project: Path) -> tuple[Path | None, list[Path]]:
    """The requirements file to install (``requirements.txt`` first, then one not meant for development)."""
    found = sorted(p for p in project.glob("requirements*.txt") if p.is_file())
    if not found:
        return None, []
    exact = [p for p in found if p.name == "requirements.txt"]
    runtime = [p for p in found if not re.search(r"dev|test|lint|doc|ci|type", p.stem.removeprefix("requirements"))]
    chosen = (exact or runtime or found)[0]
    return chosen, [p for p in found if p != chosen]


def _dependencies(project: Path, pyproject: Mapping[str, Any], installs: bool) -> _Deps:
    decisions: list[Decision] = []
    has_project = "project" in pyproject
    lock = project / "uv.lock"
    if lock.is_file():
        data = _toml(lock, "the lock (or run 'uv lock' again)")
        if not has_project:
            decisions.append(Decision(topic="warning", text="uv.lock has no pyproject.toml with a [project] beside "
                                                            "it, which 'uv export' needs: uv.lock not used"))
        else:
            packages = data.get("package", [])
            names: frozenset[str] = frozenset(canonicalize_name(str(p.get("name", ""))) for p in packages
                                              if isinstance(p, dict))
            decisions.append(Decision(topic="python", text=f"lock = \"uv.lock\": {len(names)} locked packages (the "
                                                           "lock file comes first: its pins are exact)"))
            return _Deps(source="uv.lock", table={"lock": "uv.lock"}, has_python=True, names=names,
                         decisions=tuple(decisions))
    pylocks = sorted(p for p in project.glob("pylock*.toml") if p.is_file()
                     and (p.name == "pylock.toml" or re.fullmatch(r"pylock\.[^.]+\.toml", p.name)))
    if pylocks:
        chosen = next((p for p in pylocks if p.name == "pylock.toml"), pylocks[0])
        data = _toml(chosen, "the lock file")
        packages = data.get("packages", [])
        names = frozenset(canonicalize_name(str(p.get("name", ""))) for p in packages if isinstance(p, dict))
        others = ", ".join(p.name for p in pylocks if p != chosen)
        decisions.append(Decision(topic="python", text=f"lock = \"{chosen.name}\": {len(names)} locked packages "
                                                       "(PEP 751 lock, read directly)"
                                                       + (f"; not used: {others}" if others else "")))
        return _Deps(source=chosen.name, table={"lock": chosen.name}, has_python=True, names=names,
                     decisions=tuple(decisions))
    requirements, others_req = _pick_requirements(project)
    if requirements is not None:
        try:
            text = requirements.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{requirements}: cannot read: {exc}; check the file and its permissions") from None
        names = frozenset(_requirement_names(text, requirements, {requirements.resolve()}))
        not_used = f"; not used: {', '.join(p.name for p in others_req)}" if others_req else ""
        decisions.append(Decision(topic="python", text=f"requirements = \"{requirements.name}\": {len(names)} "
                                                       f"requirements, resolved for the image's Python at build "
                                                       f"time{not_used}"))
        missing = sorted(_project_names(pyproject) - names)
        if missing and installs:
            decisions.append(Decision(topic="warning", text=f"[project].dependencies names {', '.join(missing)}, "
                                                            f"which {requirements.name} does not: only "
                                                            f"{requirements.name} is installed, add them there"))
        return _Deps(source=requirements.name, table={"requirements": requirements.name}, has_python=True,
                     names=names, decisions=tuple(decisions))
    names = frozenset(_project_names(pyproject))
    if names or installs:
        what = f"the {len(names)} dependencies of [project], resolved" if names else "no dependencies: the project " \
            "alone,"
        decisions.append(Decision(topic="python", text=f"[python] naming no file: {what} from pyproject.toml at build "
                                                       "time (no uv.lock, pylock.toml or requirements*.txt found)"))
        return _Deps(source="[project]", table={}, has_python=True, names=names,
                     decisions=tuple(decisions))
    decisions.append(Decision(topic="python", text="no dependencies found (no uv.lock, pylock.toml, requirements*.txt "
                                                   "or [project].dependencies): the base's python3 runs the code"))
    return _Deps(source="", table={}, has_python=False, names=frozenset(),
                 decisions=tuple(decisions))


# ---------------------------------------------------------------------------------------------------
# entrypoints
# ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True, slots=True)
class _Entry:
    command: tuple[str, ...]
    why: str
    framework: str = ""  # a key of _SERVERS for a web app
    env: Mapping[str, str] = field(default_factory=dict)
    rank: tuple[Any, ...] = ()
    outside: str = ""  # the module file the command imports, when the wheel of an installed project lacks it


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _wheel_roots(project: Path, pyproject: Mapping[str, Any]) -> list[Path]:
    """The packages (folders) and modules (``.py`` files) of the project that its wheel holds at the top
    of ``site-packages``, as far as the build backend's settings (hatch, setuptools, flit, poetry, pdm,
    uv_build) or, without any, the backends' common default (the package named after the project, in
    ``src/`` or at the top) tell. Anything else is taken as not in the wheel: at worst the project
    folder is copied for nothing."""
    tool = pyproject.get("tool", {})
    tool = tool if isinstance(tool, dict) else {}
    backend = str(pyproject.get("build-system", {}).get("build-backend", "")).split(".")[0]
    known = {"hatchling": "hatch", "setuptools": "setuptools", "flit_core": "flit", "poetry": "poetry",
             "pdm": "pdm", "uv_build": "uv"}
    # the settings of the backend that builds the wheel (of every one, with another backend or none named)
    read = {known[backend]} if backend in known else set(known.values())
    tool = {k: v for k, v in tool.items() if k in read}
    found: list[Path] = []

    def add(rel: str) -> None:
        path = project / rel.strip("/")
        if path != project and path.is_relative_to(project) and (
                path.is_dir() or (path.suffix == ".py" and path.is_file())) and path not in found:
            found.append(path)

    def table(*keys: str) -> dict[str, Any]:
        here: Any = tool
        for key in keys:
            here = here.get(key, {}) if isinstance(here, dict) else {}
        return here if isinstance(here, dict) else {}

    for hatch in (table("hatch", "build", "targets", "wheel"), table("hatch", "build")):
        for item in _strings(hatch.get("packages")):
            add(item)  # installed under its last name (hatch's rule)
        for item in _strings(hatch.get("only-include")):
            if len(Path(item).parts) == 1:  # a deeper one keeps its whole path in the wheel
                add(item)
    setuptools = table("setuptools")
    package_dir = setuptools.get("package-dir", {})
    base = str(package_dir.get("", "")) if isinstance(package_dir, dict) else ""
    packages = setuptools.get("packages")
    if isinstance(packages, list):
        for name in _strings(packages):
            if "." not in name:
                add(f"{base}/{name}" if base else name)
    elif isinstance(packages, dict) and isinstance(packages.get("find"), dict):
        find = packages["find"]
        patterns = _strings(find.get("include")) or ["*"]
        for where in _strings(find.get("where")) or ["."]:
            folder = project / where
            for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
                if sub.is_dir() and (sub / "__init__.py").is_file() and any(fnmatch(sub.name, x) for x in patterns):
                    add(sub.relative_to(project).as_posix())
    for name in _strings(setuptools.get("py-modules")):
        if "." not in name:
            add(f"{base}/{name}.py" if base else f"{name}.py")
    flit = table("flit", "module").get("name")
    uv_build = table("uv", "build-backend")
    uv_names = _strings(uv_build.get("module-name"))
    for name in _strings(flit) + uv_names:
        for root in ([str(uv_build.get("module-root", "src"))] if name in uv_names else ["src", ""]):
            prefix = f"{root}/" if root.strip("/") else ""
            add(prefix + name.replace(".", "/"))
            add(f"{prefix}{name}.py")
    poetry = table("poetry").get("packages")
    for item in poetry if isinstance(poetry, list) else []:
        if isinstance(item, dict) and isinstance(item.get("include"), str):
            origin = item.get("from", "")
            add(f"{origin}/{item['include']}" if isinstance(origin, str) and origin else item["include"])
    pdm = table("pdm", "build")
    pdm_root = str(pdm.get("package-dir", ""))
    for item in _strings(pdm.get("includes")):
        if len(Path(item).parts) == 1 or (pdm_root and Path(item).parent == Path(pdm_root)):
            add(item)
    if not found:
        name = canonicalize_name(str(pyproject.get("project", {}).get("name", ""))).replace("-", "_")
        if name.isidentifier():
            for candidate in (f"src/{name}", name, f"src/{name}.py", f"{name}.py"):
                add(candidate)
    return found


def _import_root(project: Path, path: Path, wheel: Sequence[Path] = ()) -> Path:
    """The folder a module is imported from: for a module in the wheel, the folder above its package
    there; else ``src`` in a src layout, else the project folder."""
    for root in wheel:
        if path.is_relative_to(root):
            return root.parent
    src = project / "src"
    if path.is_relative_to(src) and not (src / "__init__.py").is_file():
        return src
    return project


def _in_wheel(path: Path, wheel: Sequence[Path] | None) -> bool:
    return wheel is not None and any(path.is_relative_to(root) for root in wheel)


def _outside(project: Path, path: Path, wheel: Sequence[Path] | None) -> str:
    """``path`` relative to the project when the project is installed (``wheel`` not None) and its wheel
    lacks that file (so the project folder must be copied for it to import), else ""."""
    return path.relative_to(project).as_posix() if wheel is not None and not _in_wheel(path, wheel) else ""


def _module_name(project: Path, path: Path, wheel: Sequence[Path] = ()) -> str | None:
    """``pkg.mod`` for ``pkg/mod.py`` (relative to its import root); None if it cannot be imported so."""
    parts = list(path.relative_to(_import_root(project, path, wheel)).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    if not parts or not all(p.isidentifier() and not keyword.iskeyword(p) for p in parts):
        return None
    return ".".join(parts)


def _qualified(node: ast.expr, aliases: Mapping[str, str]) -> str:
    """The dotted name an expression refers to, through the module's imports (``FastAPI`` ->
    ``fastapi.FastAPI`` after ``from fastapi import FastAPI``)."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id, node.id)
    if isinstance(node, ast.Attribute):
        inner = _qualified(node.value, aliases)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _imports(tree: ast.Module) -> dict[str, str]:
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    aliases[a.asname] = a.name
                else:
                    aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _framework(call: ast.expr, aliases: Mapping[str, str]) -> str:
    if not isinstance(call, ast.Call):
        return ""
    name = _qualified(call.func, aliases)
    if name in _APP_CLASSES:
        return _APP_CLASSES[name]
    bare = {"FastAPI": "fastapi", "Starlette": "starlette", "Flask": "flask"}
    return bare.get(name, "")  # e.g. after a star import


def _parse(path: Path) -> ast.Module | None:
    try:
        if path.stat().st_size > _MAX_PARSE_BYTES:
            return None
        return ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None


def _web_apps(project: Path, files: Sequence[Path]) -> list[tuple[Path, str, str, bool]]:
    """``(file, attribute, framework, factory)`` for every module-level application object (or factory
    function) in ``files``."""
    found = []
    for path in files:
        tree = _parse(path)
        if tree is None:
            continue
        aliases = _imports(tree)
        frameworks_imported = {v.split(".")[0] for v in aliases.values()} & set(_SERVERS)
        for stmt in tree.body:
            targets: list[ast.expr] = []
            value: ast.expr | None = None
            if isinstance(stmt, ast.Assign):
                targets, value = stmt.targets, stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                targets, value = [stmt.target], stmt.value
            if value is not None:
                framework = _framework(value, aliases)
                for target in targets:
                    if framework and isinstance(target, ast.Name):
                        found.append((path, target.id, framework, False))
            if isinstance(stmt, ast.FunctionDef) and stmt.name in _FACTORIES and len(frameworks_imported) == 1:
                found.append((path, stmt.name, next(iter(frameworks_imported)), True))
    return found


def _entry_rank(project: Path, path: Path, attribute: str) -> tuple[Any, ...]:
    rel = path.relative_to(project)
    stem = "__init__" if path.name == "__init__.py" else path.stem
    preferred = _PREFERRED_FILES.index(stem) if stem in _PREFERRED_FILES else len(_PREFERRED_FILES)
    return (attribute not in ("app", "application", "api"), len(rel.parts), preferred, str(rel))


def _pythonpath(project: Path, path: Path, wheel: Sequence[Path] | None) -> dict[str, str]:
    """``PYTHONPATH`` for a module imported from the copied project folder, when its import root is below
    it (``/app/src``); none for a module of the installed wheel."""
    root = _import_root(project, path)
    if root == project or _in_wheel(path, wheel):
        return {}
    return {"PYTHONPATH": f"{APP_DIR}/{root.relative_to(project).as_posix()}"}


def _web_entries(project: Path, files: Sequence[Path],
                 wheel: Sequence[Path] | None) -> tuple[list[_Entry], list[str]]:
    """Web app entries; ``wheel``: what the installed project's wheel holds (None: the project is not
    installed, its folder is copied)."""
    entries: list[_Entry] = []
    notes: list[str] = []
    for path, attribute, framework, factory in _web_apps(project, files):
        rel = path.relative_to(project).as_posix()
        module = _module_name(project, path, wheel or ())
        label, server = _SERVERS[framework]
        if module is None:
            notes.append(f"{label} app in {rel}: its path is not an importable module name; rename the folders")
            continue
        what = f"{label} app factory {attribute}() in {rel}" if factory else f"{label} app '{attribute}' in {rel}"
        if server == "uvicorn":
            command: tuple[str, ...] = ("uvicorn", *(("--factory",) if factory else ()), f"{module}:{attribute}",
                                        "--host", "0.0.0.0", "--port", str(PORT))
        else:
            target = f"{module}:{attribute}()" if factory else f"{module}:{attribute}"
            command = ("gunicorn", "--bind", f"0.0.0.0:{PORT}", target)
        outside = _outside(project, path, wheel)
        entries.append(_Entry(command=command, why=what, framework=framework, env=_pythonpath(project, path, wheel),
                              rank=(1, bool(outside), *_entry_rank(project, path, attribute)), outside=outside))
    return entries, notes


def _django_entry(project: Path, files: Sequence[Path], wheel: Sequence[Path] | None) -> _Entry | None:
    """``gunicorn --bind 0.0.0.0:8000 SITE.wsgi`` for a Django project (``manage.py`` naming its settings,
    ``SITE/wsgi.py`` beside them)."""
    for manage in (p for p in files if p.name == "manage.py" and len(p.relative_to(project).parts) <= 2):
        folder = manage.parent
        tree = _parse(manage)
        settings = ""
        if tree is not None:
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and len(node.args) == 2 and all(
                        isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args) \
                        and getattr(node.args[0], "value", "") == "DJANGO_SETTINGS_MODULE":
                    settings = str(getattr(node.args[1], "value", ""))
        site = settings.rsplit(".", 1)[0] if "." in settings else ""
        candidates = [folder / site.replace(".", "/") / "wsgi.py"] if site else []
        candidates += sorted(folder.glob("*/wsgi.py"))
        wsgi = next((c for c in candidates if c.is_file()), None)
        if wsgi is None:
            continue
        chdir: tuple[str, ...] = ()
        outside = _outside(project, wsgi, wheel)
        module = _module_name(project, wsgi, wheel or ()) if _in_wheel(wsgi, wheel) else None
        if module is None:  # imported from the copied folder, where manage.py is
            outside = wsgi.relative_to(project).as_posix() if wheel is not None else ""
            module = ".".join(wsgi.relative_to(folder).with_suffix("").parts)
            if folder != project:
                chdir = ("--chdir", f"{APP_DIR}/{folder.relative_to(project).as_posix()}")
        return _Entry(command=("gunicorn", "--bind", f"0.0.0.0:{PORT}", *chdir, module),
                      why=f"Django project ({manage.relative_to(project).as_posix()} and "
                          f"{wsgi.relative_to(project).as_posix()})", framework="django", rank=(0, bool(outside)),
                      outside=outside)
    return None


def _script_entries(project: Path, pyproject: Mapping[str, Any], installs: bool,
                    notes: list[str]) -> list[_Entry]:
    scripts = pyproject.get("project", {}).get("scripts", {})
    if not isinstance(scripts, dict) or not scripts:
        return []
    if not installs:
        notes.append(f"[project.scripts] ({', '.join(sorted(scripts))}) are not installed: pyproject.toml has no "
                     "[build-system] (uv's rule); add one (e.g. hatchling) to run them by name")
        return []
    name = canonicalize_name(str(pyproject.get("project", {}).get("name", "")))
    ordered = sorted(scripts, key=lambda s: (canonicalize_name(s) != name, s))
    chosen = ordered[0]
    others = f"; other scripts: {', '.join(ordered[1:])}" if len(ordered) > 1 else ""
    return [_Entry(command=(chosen,), why=f"console script from [project.scripts] ({chosen} = "
                                          f"\"{scripts[chosen]}\"), installed with the project{others}", rank=(-1,))]


def _main_entries(project: Path, files: Sequence[Path], wheel: Sequence[Path] | None) -> list[_Entry]:
    entries = []
    for path in files:
        rel = path.relative_to(project)
        if path.name == "__main__.py" and len(rel.parts) > 1:
            module = _module_name(project, path.parent / "__init__.py", wheel or ())
            if module is None or "." in module:
                continue
            outside = _outside(project, path, wheel)
            entries.append(_Entry(command=("python3", "-m", module), why=f"{rel.as_posix()} runs the package",
                                  env=_pythonpath(project, path, wheel),
                                  rank=(2, bool(outside), len(rel.parts), str(rel)), outside=outside))
        elif len(rel.parts) == 1 and path.suffix == ".py" and wheel is None and path.name != "setup.py":
            tree = _parse(path)
            if tree is not None and any(_is_main_guard(stmt) for stmt in tree.body):
                entries.append(_Entry(command=("python3", f"{APP_DIR}/{rel.as_posix()}"),
                                      why=f"{rel.as_posix()} has an 'if __name__ == \"__main__\":' block",
                                      rank=(3, *_entry_rank(project, path, ""))))
    return entries


def _is_main_guard(stmt: ast.stmt) -> bool:
    if not isinstance(stmt, ast.If) or not isinstance(stmt.test, ast.Compare):
        return False
    sides = [stmt.test.left, *stmt.test.comparators]
    return any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides) and any(
        isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)


def _show(command: Sequence[str]) -> str:
    import shlex

    return shlex.join(command)


# ---------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------

def _model_folders(project: Path, files: Sequence[Path], notes: list[str]) -> list[tuple[Path, int, int]]:
    """``(folder, weight files, bytes)`` for each folder of weight files that holds no Python code, the
    outermost one when they nest."""
    weights: dict[Path, list[Path]] = {}
    for path in files:
        if path.suffix.lower() in _WEIGHTS and path.is_file():
            weights.setdefault(path.parent, []).append(path)
    code_dirs = {p.parent for p in files if p.suffix == ".py"}
    chosen: dict[Path, list[Path]] = {}
    for folder in sorted(weights, key=lambda f: len(f.parts)):
        if folder == project:
            names = ", ".join(p.name for p in weights[folder][:3])
            notes.append(f"weight files at the top of the project ({names}): big ones get a layer each "
                         "automatically; move them into a folder (e.g. model/) to keep them apart from the code")
            continue
        # the outermost folder below the project that holds weights and no code
        top = folder
        while top.parent != project and not any(c.is_relative_to(top.parent) for c in code_dirs):
            top = top.parent
        if any(c.is_relative_to(top) for c in code_dirs):
            rel = folder.relative_to(project).as_posix()
            notes.append(f"weight files in {rel}/, a folder with Python code: left in the code layer (big ones get "
                         "a layer each automatically); move them into a folder of their own to split them out")
            continue
        if any(top.is_relative_to(c) for c in chosen):
            parent = next(c for c in chosen if top.is_relative_to(c))
            chosen[parent] += weights[folder]
            continue
        chosen[top] = list(weights[folder])
    out = []
    for folder, items in chosen.items():
        size = sum(p.stat().st_size for p in items)
        out.append((folder, len(items), size))
    return out


def _model_name(folder: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", folder.lower()).strip("-")[:56] or "model"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    taken.add(name)
    return name


# ---------------------------------------------------------------------------------------------------
# writing TOML (a few value types; comments kept)
# ---------------------------------------------------------------------------------------------------

def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _render(table: Mapping[str, Any], comments: Mapping[str, str], *, prefix: str = "",
            tables: Sequence[str] = ("python",)) -> str:
    """``table`` as TOML: top-level keys (under ``[PREFIX]`` when given; other mappings as inline tables),
    then the ``tables`` (``[python]``), then the arrays of tables; ``comments`` puts ``# ...`` lines above
    a key or table (``layers[0]`` for an array's entry).

    >>> print(_render({"entrypoint": ["app"], "env": {"A": "1"}, "python": {"lock": "uv.lock"},
    ...                "layers": [{"src": "m", "dest": "/m"}]}, {"entrypoint": "why"}, prefix="tool.ocibuild"))
    [tool.ocibuild]
    # why
    entrypoint = ["app"]
    env = { A = "1" }
    <BLANKLINE>
    [tool.ocibuild.python]
    lock = "uv.lock"
    <BLANKLINE>
    [[tool.ocibuild.layers]]
    src = "m"
    dest = "/m"
    <BLANKLINE>
    """
    lines: list[str] = []

    def comment(key: str) -> None:
        if key in comments:
            lines.extend(f"# {line}" for line in comments[key].splitlines())

    scalars = [k for k, v in table.items() if k not in tables and not (
        isinstance(v, list) and v and all(isinstance(x, dict) for x in v))]
    if prefix:
        lines.append(f"[{prefix}]")
    for key in scalars:
        comment(key)
        lines.append(f"{_key(key)} = {_value(table[key])}")
    for key, value in table.items():
        if key in tables:
            lines.append("")
            comment(key)
            lines.append(f"[{prefix + '.' if prefix else ''}{key}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in value.items())
    for key, value in table.items():
        if key in scalars or key in tables:
            continue
        for i, item in enumerate(value):
            lines.append("")
            comment(f"{key}[{i}]")
            lines.append(f"[[{prefix + '.' if prefix else ''}{key}]]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


_HEADER_LINES = ("# Written by `ocibuild init` from what it found here; edit freely (README: \"Build file\").",
                 "# Build: ocibuild build . --output oci:out/app:dev")
_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _strip_tool_table(text: str) -> str:
    """``text`` without the ``[tool.ocibuild]`` table and its sub-tables, and without the header comment
    ``ocibuild init`` wrote above it; comments just above the next other table stay with that table.

    >>> print(_strip_tool_table("[a]\\nx = 1\\n[tool.ocibuild]\\nuser = '1'\\n# about b\\n[b]\\ny = 2\\n"), end="")
    [a]
    x = 1
    <BLANKLINE>
    # about b
    [b]
    y = 2
    """
    out: list[str] = []
    pending: list[str] = []  # comment and blank lines inside the table: kept if the next table is another one
    inside = False
    for line in text.splitlines(keepends=True):
        m = _TABLE_HEADER.match(line)
        if m:
            name = m.group(1).replace(" ", "").replace('"', "").replace("'", "")
            ours = name == "tool.ocibuild" or name.startswith("tool.ocibuild.")
            if ours and not inside:
                while out and (not out[-1].strip() or out[-1].startswith(_HEADER_LINES)):
                    out.pop()  # our own header comment (and the blank lines around it)
                out.append("\n")
            if not ours and inside:
                out.extend(pending[next((i for i, x in enumerate(pending) if x.strip()), len(pending)):])
            inside, pending = ours, []
        if not inside:
            out.append(line)
        elif not line.strip() or line.lstrip().startswith("#"):
            pending.append(line)
        else:
            pending = []
    return "".join(out).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------------
# the decisions
# ---------------------------------------------------------------------------------------------------

def _base_text(base: str, project: Path) -> str:
    """``base`` as the build file must say it: a local path relative to the project folder (the command
    line's is relative to the current folder)."""
    from .transports import OciArchive, OciLayout, parse_location

    location = parse_location(base)
    if isinstance(location, OciLayout | OciArchive) and not location.path.is_absolute():
        rel = os.path.relpath(location.path.absolute(), project.absolute())
        return str(replace(location, path=Path(rel)))
    return base


def _decide(project: Path, *, base: str | None, models_as: ModelsAs) -> tuple[dict[str, Any], dict[str, str],
                                                                             list[Decision], bool]:
    """(the build-file table, comments per key, the decisions, whether the project folder is copied)."""
    pyproject_path = project / "pyproject.toml"
    pyproject = _toml(pyproject_path, "pyproject.toml") if pyproject_path.is_file() else {}
    from .python.workspace import is_package

    installs = is_package(pyproject)
    files = list(_walk(project))
    code = [p for p in files if p.suffix == ".py"]
    if not code:
        raise ConfigError(f"{project}: no Python code found (no .py file outside hidden folders, virtual "
                          "environments, tests and docs); run ocibuild init in the folder that holds your project")
    decisions: list[Decision] = []
    comments: dict[str, str] = {}
    table: dict[str, Any] = {}
    # an installed project: only what its wheel holds is importable, unless the folder is copied as well
    wheel = _wheel_roots(project, pyproject) if installs else None
    copied = not installs  # (made true below when the entrypoint's module is not in the wheel)
    if base is not None:
        table["base"] = _base_text(base, project)
        decisions.append(Decision(topic="base", text=f"base = {table['base']!r} (from --base)"))
    else:
        decisions.append(Decision(topic="base", text="the default: Debian's python3 built from packages, no registry "
                                                     "needed (name another with --base)"))

    deps = _dependencies(project, pyproject, installs)
    decisions.extend(deps.decisions)

    notes: list[str] = []
    entries = _script_entries(project, pyproject, installs, notes)
    django = _django_entry(project, code, wheel)
    entries += [django] if django is not None else []
    web, web_notes = _web_entries(project, code, wheel)
    notes += web_notes
    if django is not None:
        web = [e for e in web if e.framework != "django"]
    entries += web
    entries += _main_entries(project, code, wheel)
    entries.sort(key=lambda e: e.rank)  # (of one kind, an entry the wheel holds first)
    entry = entries[0] if entries else None
    name = pyproject.get("project", {}).get("name")
    if installs:
        package = (f"{name or 'the project'} is a package ([project] with a [build-system]): built as a wheel and "
                   "installed in /opt/venv")
        if entry is not None and entry.outside:
            copied = True
            held = ", ".join(r.relative_to(project).as_posix() for r in wheel or ())
            held = f"which holds {held}" if held else "init cannot tell what it holds"
            text = (f"{package}; the entrypoint's {entry.outside} is not in the wheel ({held}), so the project "
                    f"folder is copied to {APP_DIR} as well (workdir {APP_DIR}, where it imports from)")
        else:
            text = f"{package}; its folder is not copied"
        decisions.insert(0, Decision(topic="project", text=text))
    else:
        why = ("[project] without a [build-system] is an application, as uv sees it" if "project" in pyproject
               else "pyproject.toml has no [project]" if pyproject_path.is_file() else "no pyproject.toml")
        decisions.insert(0, Decision(topic="project", text=f"the project folder is copied to {APP_DIR} ({why})"))
    decisions.extend(Decision(topic="note", text=n) for n in notes)
    if entry is not None:
        others = [e for e in entries[1:] if e.command != entry.command][:2]
        also = f"; also found: {'; '.join(e.why for e in others)}" if others else ""
        table["entrypoint"] = list(entry.command)
        comments["entrypoint"] = entry.why
        decisions.append(Decision(topic="entrypoint", text=f"{_show(entry.command)}  ({entry.why}{also})"))
        if entry.env:
            table["env"] = dict(entry.env)
        if entry.framework:
            label, server = _SERVERS[entry.framework]
            table["ports"] = [PORT]
            decisions.append(Decision(topic="port", text=f"{PORT} (where {server} listens; change --port/--bind "
                                                         "in the entrypoint and ports together)"))
            if entry.framework not in deps.names:
                how = _how_to_add(entry.framework, deps.source)
                decisions.append(Decision(topic="warning", text=f"{entry.framework} is not among the dependencies: "
                                                                f"add it ({how})"))
            if server not in deps.names:
                decisions.append(Decision(topic="warning", text=f"{server} (which serves the {label} app) is not "
                                                                f"among the dependencies: add {server} to your "
                                                                f"dependencies ({_how_to_add(server, deps.source)}); "
                                                                "the build file names it anyway, and the image will "
                                                                "not start without it"))
    else:
        decisions.append(Decision(topic="entrypoint", text="none found (no [project.scripts] of a package, web app, "
                                                           "__main__.py or script with a __main__ block): set "
                                                           "entrypoint = [\"python3\", \"-m\", \"yourmodule\"] in the "
                                                           "build file"))
    table.setdefault("env", {})["PYTHONUNBUFFERED"] = "1"
    comments["env"] = "PYTHONUNBUFFERED: log lines reach the container's output at once"

    model_notes: list[str] = []
    found_models = _model_folders(project, files, model_notes)
    decisions.extend(Decision(topic="note", text=n) for n in model_notes)
    layers: list[dict[str, Any]] = []
    models: list[dict[str, Any]] = []
    taken: set[str] = set()
    for folder, count, size in found_models:
        rel = folder.relative_to(project).as_posix()
        what = f"{rel}/ ({count} weight file{'s' if count != 1 else ''}, {human_size(size)})"
        if models_as == "images":
            model = _model_name(folder.name, taken)
            models.append({"name": model, "src": rel})
            comments[f"models[{len(models) - 1}]"] = f"{rel}/: weights as an image of their own"
            from .models import model_env_name

            decisions.append(Decision(topic="model", text=f"{what}: [[models]] {model!r}, an image of its own that "
                                                          f"the app finds at ${model_env_name(model)} (not at "
                                                          f"{APP_DIR}/{rel}: read that variable)"))
        else:
            layers.append({"name": _model_name(folder.name, taken), "src": rel, "dest": f"{APP_DIR}/{rel}"})
            comments[f"layers[{len(layers) - 1}]"] = f"{rel}/: weights in a layer of their own, before the code"
            decisions.append(Decision(topic="model", text=f"{what}: a layer of its own at {APP_DIR}/{rel}, before "
                                                          "the code, so a code edit never moves it (--models images "
                                                          "makes it an image of its own)"))
    if layers:
        if copied:
            layers.append({"name": "app", "src": ".", "dest": APP_DIR,
                           "exclude": [f"{x['src']}/" for x in layers]})
            comments[f"layers[{len(layers) - 1}]"] = "the code: the project folder (without the weights), last"
        table["workdir"] = APP_DIR
    elif copied and installs:  # an installed project's folder is copied only when [[layers]] say so
        layers.append({"name": "app", "src": ".", "dest": APP_DIR})
        comments["layers[0]"] = (f"the project folder, for {entry.outside if entry else 'the entrypoint'}, "
                                 "which the project's wheel does not hold")
        table["workdir"] = APP_DIR
    elif copied:
        table["workdir"] = APP_DIR
    if deps.has_python:
        table["python"] = deps.table
        comments["python"] = f"dependencies from {deps.source}" if deps.source != "[project]" else \
            "dependencies from [project].dependencies" if deps.names else "no dependencies"
        if installs:
            comments["python"] += "; the project itself is built as a wheel and installed in /opt/venv"
    if layers:
        table["layers"] = layers
    if models:
        table["models"] = models
    return _ordered(table), comments, decisions, copied


def _how_to_add(package: str, source: str) -> str:
    """How a package joins the dependencies, for the file they come from."""
    return {"uv.lock": f"uv add {package}", "[project]": f"'{package}' in [project].dependencies",
            "": f"a requirements.txt with '{package}'"}.get(source, f"a line '{package}' in {source}")


def _ordered(table: dict[str, Any]) -> dict[str, Any]:
    order = ("base", "entrypoint", "cmd", "workdir", "ports", "env", "user", "python", "layers", "models")
    return {k: table[k] for k in sorted(table, key=lambda k: order.index(k) if k in order else len(order))}


def _check(project: Path, text: str, file_name: str) -> None:
    """Load the text as the project's build file with :func:`~ocibuild.config.load_plan` (a bug in init,
    not in the project, if that fails)."""
    from .config import load_plan

    with tempfile.TemporaryDirectory(prefix="ocibuild-init-") as td:
        path = Path(td) / file_name
        path.write_text(text, encoding="utf-8")
        try:
            load_plan(project, config_file=path, environ={})
        except ConfigError as exc:
            raise ConfigError(f"ocibuild init made a build file that does not load ({exc}); please report this, "
                              "and write the build file by hand meanwhile") from None


def _write(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` in one step (a temporary file beside it, then a rename), keeping
    its permission bits."""
    tmp = path.with_name(f".{path.name}.ocibuild-init.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _tool_table(pyproject: Path) -> bool:
    if not pyproject.is_file():
        return False
    return "ocibuild" in _toml(pyproject, "pyproject.toml").get("tool", {})


def init_project(project: Path | str = ".", *, base: str | None = None, pyproject: bool = False,
                 models: ModelsAs = "layers", force: bool = False, dry_run: bool = False) -> InitResult:
    """Write ``ocibuild.toml`` (with ``pyproject``: a ``[tool.ocibuild]`` table appended to
    ``pyproject.toml``) and a ``.ociignore`` for ``project``, from what it holds; return what was decided.

    An existing build file, ``[tool.ocibuild]`` table or ``.ociignore`` is left unchanged (listed in
    ``kept``) unless ``force``; when the build file is kept nothing is written at all. ``base`` is written
    as ``base`` (a local path made relative to the project folder); ``models="images"`` writes model
    folders as ``[[models]]`` instead of layers. With ``dry_run`` nothing is written.

    >>> result = init_project("examples/hello", dry_run=True)      # doctest: +SKIP
    >>> print(result.text)                                          # doctest: +SKIP
    """
    project = Path(project)
    if not project.is_dir():
        what = "is not a folder" if project.exists() else "does not exist"
        raise ConfigError(f"project folder {project} {what}; give the folder that holds your Python project")
    if models not in ("layers", "images"):
        raise ConfigError(f"models {models!r}: choose 'layers' or 'images'")
    pyproject_path = project / "pyproject.toml"
    build_file = pyproject_path if pyproject else project / BUILD_FILE
    if pyproject and not pyproject_path.is_file():
        raise ConfigError(f"{pyproject_path} does not exist; run ocibuild init without --pyproject to write "
                          f"{BUILD_FILE}, or create pyproject.toml first")
    exists = _tool_table(pyproject_path) if pyproject else build_file.exists()
    if not exists and not pyproject and not force and not dry_run and _tool_table(pyproject_path):
        return InitResult(project=project, build_file=build_file, kept=(pyproject_path,))  # its table is the build file
    if exists and not force and not dry_run:
        return InitResult(project=project, build_file=build_file, kept=(build_file,))
    shadow = (not pyproject and _tool_table(pyproject_path)) or (pyproject and (project / BUILD_FILE).exists())

    table, comments, decisions, copied = _decide(project, base=base, models_as=models)
    header = "\n".join(_HEADER_LINES)
    if pyproject:
        existing = pyproject_path.read_text(encoding="utf-8")
        kept_text = _strip_tool_table(existing) if exists else existing
        kept_text = kept_text if kept_text.endswith("\n") else kept_text + "\n"
        section = _render(table, comments, prefix="tool.ocibuild")
        text = kept_text + "\n" + header + "\n" + section
        try:
            leftover = tomllib.loads(kept_text).get("tool", {}).get("ocibuild")
            ours = tomllib.loads(text).get("tool", {}).get("ocibuild")
        except tomllib.TOMLDecodeError:
            leftover, ours = True, None
        if leftover is not None or ours is None:
            raise ConfigError(f"{pyproject_path}: [tool.ocibuild] is not only in [tool.ocibuild...] tables (dotted "
                              "keys or an inline table elsewhere); remove it by hand, then run ocibuild init again")
    else:
        text = header + "\n" + _render(table, comments)
    _check(project, text, pyproject_path.name if pyproject else BUILD_FILE)
    if exists and not force:  # (a dry run: the file is only shown)
        what = f"{pyproject_path} has a [tool.ocibuild] table" if pyproject else f"{build_file} exists"
        decisions.append(Decision(topic="file", text=f"{what}: left unchanged without --force"))
    if shadow:
        decisions.append(Decision(
            topic="warning",
            text=(f"{BUILD_FILE} exists and is read instead of [tool.ocibuild]; remove it to use this table"
                  if pyproject else f"{pyproject_path.name} has a [tool.ocibuild] table; {BUILD_FILE} is read "
                                    "instead of it from now on")))

    ignore_path = project / IGNORE_FILE
    ignore_text = ""
    if copied:
        ignore_text = IGNORE_DEFAULTS
        docker = project / ".dockerignore"
        if docker.is_file():
            extra = [ln for ln in docker.read_text(encoding="utf-8", errors="replace").splitlines()
                     if ln.strip() and not ln.lstrip().startswith("#") and ln.strip() not in IGNORE_DEFAULTS.split()]
            if extra:
                ignore_text += "# from .dockerignore\n" + "\n".join(extra) + "\n"
    written: list[Path] = []
    kept: list[Path] = []
    if ignore_text and ignore_path.exists() and not force:
        kept.append(ignore_path)
        decisions.append(Decision(topic="ignore", text=f"{IGNORE_FILE} exists; left unchanged (--force replaces "
                                                       "it)"))
    elif ignore_text:
        from_docker = " and the patterns of .dockerignore" if "# from .dockerignore" in ignore_text else ""
        decisions.append(Decision(topic="ignore", text=f"{IGNORE_FILE}: .env files, logs, tests/, editor and CI "
                                                       f"folders{from_docker} left out of the image, besides "
                                                       "ocibuild's defaults"))
    if not dry_run:
        _write(build_file, text)
        written.append(build_file)
        if ignore_text and ignore_path not in kept:
            _write(ignore_path, ignore_text)
            written.append(ignore_path)
    return InitResult(project=project, build_file=build_file, table=table, text=text, ignore_text=ignore_text,
                      decisions=tuple(decisions), written=tuple(written), kept=tuple(kept))

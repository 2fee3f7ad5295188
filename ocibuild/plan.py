"""The build plan: a frozen, serialisable description of one image build (Jib's build plan).

Both the build file / CLI (``config.load_plan``) and other build systems produce a ``BuildPlan``;
``build()`` consumes it. ``to_dict()`` / ``from_dict()`` are lossless, and the JSON form is
described by ``plan.schema.json`` beside this file (``ocibuild build --print-plan`` prints one,
``ocibuild build --plan FILE`` builds from one).
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from . import records
from .errors import ConfigError, InvalidValue
from .layers.compress import Compression
from .spec import Platform
from .timestamps import source_date_epoch
from .transports import DebianBase, Location, Scratch, parse_location

__all__ = ["PLAN_VERSION", "SIGNALS", "BuildPlan", "FileEntry", "ImageSettings", "LayerSpec", "ModelSpec", "PythonSpec",
           "check_no_nul", "check_setting", "plan_schema", "source_date_epoch"]

PLAN_VERSION = 1

# Linux signal names without "SIG", as runtimes accept them for StopSignal (moby's and containers/common's
# ``SignalMap``: case-insensitive, the prefix optional); numbers 1..64 are accepted too
SIGNALS = frozenset({
    "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE", "POLL",
    "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1",
    "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX", *(f"RTMIN+{i}" for i in range(1, 16)),
    *(f"RTMAX-{i}" for i in range(1, 15))})
MAX_SIGNAL = 64
MODEL_NAME = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_PORT = re.compile(r"([1-9][0-9]{0,4})(/(tcp|udp|sctp))?")


def _text(value: object, key: str) -> str:
    """``value`` as a string that may reach an image config or a tar header (no NUL byte)."""
    if not isinstance(value, str):
        raise InvalidValue(f"{key} must be a string, got {type(value).__name__}")
    if "\0" in value:
        raise InvalidValue(f"{key} {value!r} must not contain a NUL byte")
    return value


def _absolute(value: object, key: str, example: str = "/data") -> None:
    if not _text(value, key).startswith("/"):
        raise InvalidValue(f"{key} {value!r} must be an absolute path in the image, e.g. '{example}'")


def _strings(value: object, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, tuple | list):
        raise InvalidValue(f"{key} must be a list of strings, got {type(value).__name__}")
    return tuple(_text(v, f"{key}[{i}]") for i, v in enumerate(value))


def _map(value: object, key: str, *, env: bool = False) -> None:
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{key} must be a table of strings, got {type(value).__name__}")
    for k, v in value.items():
        _text(k, f"{key}: key")
        if not k:
            raise InvalidValue(f"{key}: a key is empty; every entry needs a name, e.g. {key} = {{ NAME = \"value\" }}")
        if env and "=" in k:
            raise InvalidValue(f"{key}: key {k!r} must not contain '='")
        _text(v, f"{key}.{k}")


def check_signal(value: object, key: str = "stop_signal") -> None:
    """``value`` names a Linux signal as runtimes read ``StopSignal``: ``SIGTERM``, ``TERM``, ``SIGRTMIN+3``
    or a number from 1 to 64."""
    text = _text(value, key)
    if text.isascii() and text.isdigit():
        if 1 <= int(text) <= MAX_SIGNAL:
            return
    else:
        name = text.upper()
        if (name[3:] if name.startswith("SIG") else name) in SIGNALS:
            return
    raise InvalidValue(f"{key} {text!r} is not a signal; use a name such as 'SIGTERM' or 'SIGINT', or a number "
                       f"from 1 to {MAX_SIGNAL}")


def check_port(value: object, key: str = "ports") -> None:
    """``value`` is an exposed port as the image config keys them: ``8080``, ``8080/tcp``, ``53/udp``, ``9/sctp``."""
    text = _text(value, key)
    match = _PORT.fullmatch(text)
    if match is None or int(match.group(1)) > 65535:
        raise InvalidValue(f"{key}: port {text!r} is not valid; use a number from 1 to 65535 with an optional "
                           "/tcp, /udp or /sctp, e.g. '8080' or '53/udp'")


def check_setting(name: str, value: object, key: str | None = None) -> None:
    """Raise ``InvalidValue`` unless ``value`` is allowed for ``ImageSettings.<name>`` by the OCI image and
    runtime specs; ``key`` is how the message names it (default: ``name``). ``None`` (keep the base's) is
    always allowed.

    >>> check_setting("env", {"A=B": "1"})
    Traceback (most recent call last):
    ocibuild.errors.InvalidValue: env: key 'A=B' must not contain '='
    """
    key = key or name
    if value is None:
        return
    if name in ("entrypoint", "cmd"):
        _strings(value, key)
    elif name == "workdir":
        _absolute(value, key, "/app")
    elif name == "volumes":
        for i, volume in enumerate(_strings(value, key)):
            _absolute(volume, f"{key}[{i}]")
    elif name == "user":
        _text(value, key)
    elif name in ("env", "labels", "annotations"):
        _map(value, key, env=name == "env")
    elif name == "ports":
        for port in _strings(value, key):
            check_port(port, key)
    elif name == "stop_signal":
        check_signal(value, key)
    else:
        raise ValueError(f"ImageSettings has no field {name!r}")


def check_no_nul(value: Any, key: str) -> None:
    """No string anywhere in ``value`` (JSON values: a plan's ``to_dict`` form, a build file's table) holds a
    NUL byte; ``InvalidValue`` names the first one's key (``layers[0].dest``)."""
    if isinstance(value, str):
        _text(value, key)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _text(k, f"{key}: key" if key else "key")
            check_no_nul(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            check_no_nul(v, f"{key}[{i}]")


@dataclass(frozen=True, kw_only=True, slots=True)
class FileEntry:
    """One explicit layer entry: the file or folder ``src`` (any absolute path on the build
    machine) at ``dest`` in the image, with ``mode`` (None: a file's own executable bit decides
    0o755 / 0o644). Sandboxed build systems hand over their inputs this way."""

    src: Path
    dest: str
    mode: int | None = None

    def __post_init__(self) -> None:
        _text(str(self.src), "src")
        _absolute(self.dest, "dest")
        if self.mode is not None and (isinstance(self.mode, bool) or not isinstance(self.mode, int)
                                      or not 0 <= self.mode <= 0o7777):
            raise InvalidValue(f"mode {self.mode!r} must be a file mode from 0 to 0o7777 (e.g. 0o755)")


@dataclass(frozen=True, kw_only=True, slots=True)
class LayerSpec:
    """Files from ``src`` (a folder or file; relative paths are relative to the project folder)
    at ``dest`` (an absolute path in the image), or, when ``files`` is given, exactly those entries.

    A build file's layers must lie inside the project folder; a plan's ``files`` may come from anywhere.
    """

    src: Path = Path(".")
    """The file or folder the layer is made of, relative to the project folder; a build file's must lie inside it.
    Required in a build file."""
    dest: str = "/"
    """Where ``src`` goes in the image (an absolute path): a folder's contents go under it; a single file lands at
    ``dest``, or inside it when ``dest`` ends in ``/``. Required in a build file."""
    exclude: tuple[str, ...] = ()
    """More exclusion patterns (``.dockerignore`` rules), added to the source's ``.ociignore`` and the default
    exclusions; a build file may give one string."""
    name: str = ""
    """The layer's label in progress lines and reports (default: ``dest``)."""
    files: tuple[FileEntry, ...] = ()
    """Explicit entries from anywhere on the build machine (a build plan only, never a build file); when given,
    ``src`` is not read."""

    def __post_init__(self) -> None:
        _text(str(self.src), "src")
        _absolute(self.dest, "dest", "/app")
        _strings(self.exclude, "exclude")
        _text(self.name, "name")

    @property
    def label(self) -> str:
        return self.name or self.dest


@dataclass(frozen=True, kw_only=True, slots=True)
class ImageSettings:
    """Runtime settings layered over the base's config. ``None`` / empty means "keep the base's"."""

    entrypoint: tuple[str, ...] | None = None
    """The command the container runs (the config's ``Entrypoint``; ``--entrypoint``). In a build file: a list, a
    JSON-array string or a plain command line. Setting it without ``cmd`` clears the base's ``cmd``, as Docker
    does. Default: the base's."""
    cmd: tuple[str, ...] | None = None
    """Default arguments for the entrypoint (``Cmd``; ``--cmd``), in the same forms as ``entrypoint``. Default:
    the base's (none when ``entrypoint`` is set)."""
    workdir: str | None = None
    """The working directory (``WorkingDir``; ``--workdir``), an absolute path. Default: the base's, or ``/app``
    when a build file has no ``[[layers]]`` (the project folder is copied to ``/app``)."""
    user: str | None = None
    """The user the container runs as (``User``; ``--user``): a name or ``uid[:gid]``, e.g. ``"65532:65532"``.
    Default: the base's (``65532``, ``nonroot``, on a Debian base ocibuild assembles)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Environment variables, set over the base's (``--env K=V`` adds to them); keys are non-empty and have no
    ``=``, e.g. ``{ PYTHONUNBUFFERED = "1" }``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Config labels, added to the base's (``--label K=V`` adds to them)."""
    annotations: Mapping[str, str] = field(default_factory=dict)
    """Manifest annotations (``--annotation K=V`` adds to them), e.g.
    ``{ "org.opencontainers.image.version" = "1.0" }``."""
    ports: tuple[str, ...] = ()
    """Exposed ports, added to the base's (``--port``): 1-65535 with an optional ``/tcp``, ``/udp`` or ``/sctp``;
    a build file may give numbers, e.g. ``[8080, "53/udp"]``."""
    volumes: tuple[str, ...] = ()
    """Volumes (absolute paths in the image), added to the base's."""
    stop_signal: str | None = None
    """The signal that stops the container (``StopSignal``): a Linux signal name such as ``"SIGTERM"`` or
    ``"TERM"``, or a number from 1 to 64. Default: the base's."""

    def __post_init__(self) -> None:
        """Every value as the OCI specs require (``InvalidValue`` naming the field otherwise): env keys
        non-empty without ``=``, absolute ``workdir`` and ``volumes``, ports 1-65535, a known stop
        signal, no NUL byte anywhere."""
        for name in records.field_names(ImageSettings):
            check_setting(name, getattr(self, name))


@dataclass(frozen=True, kw_only=True, slots=True)
class PythonSpec:
    """Python dependencies to install into a virtual environment in the image.

    Exactly one input is used: ``requirements`` (requirements.txt, pinned or not), ``lock`` (uv.lock or
    pylock.toml), or, with neither, the project's own ``[project].dependencies``. ``project`` also
    installs the project itself (built as a wheel on the host) in the last layer; ``package`` names
    the member of a uv workspace to install (with its uv.lock dependencies). The target
    interpreter, its version and the C library are read from the base image unless given here.
    """

    requirements: Path | None = None
    """A requirements file, pinned or not (``--requirements``), resolved for each target platform with uv;
    relative to the project folder in a build file. Give either this or ``lock``."""
    lock: Path | None = None
    """A ``uv.lock`` (exported with ``uv export``) or a ``pylock.toml`` (PEP 751) to install from; with
    ``package``, the workspace's ``uv.lock`` by default. With neither ``requirements`` nor ``lock``, the project's
    ``[project].dependencies`` are resolved."""
    project: bool = False
    """Also build the project itself as a wheel on the host (``uv build --wheel``, pure Python) and install it,
    console scripts included, in the last Python layer. Default in a build file: true when ``pyproject.toml`` has
    a ``[project]`` with a build backend, or ``package`` is given; the project folder is then not copied to
    ``/app`` unless ``[[layers]]`` say so."""
    package: str | None = None
    """The uv workspace member to install (``--package``), with the members it depends on and its locked
    dependencies (``uv export --package``); a name that is not a member is an error listing the members."""
    venv: str = "/opt/venv"
    """Where the virtual environment goes in the image (an absolute path); its ``bin`` comes first on ``PATH`` and
    ``VIRTUAL_ENV`` is set."""
    interpreter: str | None = None
    """The base image's Python (``--python``), e.g. ``/usr/bin/python3.13``. Default: found in the base's layers."""
    python_version: str | None = None
    """The base image's Python version, ``X.Y`` (``--python-version``). Default: detected."""
    libc: str | None = None
    """The base image's C library, ``glibc`` or ``musl``: it decides which wheel tags fit. Default: detected."""
    libc_version: str | None = None
    """The base image's C library version, ``X.Y`` (e.g. ``2.36``). Default: detected (from the dpkg status or
    ``libc.so.6``)."""
    index_url: str = ""
    """The package index (``--index-url``). Default: ``$UV_INDEX_URL``, ``$UV_DEFAULT_INDEX`` or
    ``$PIP_INDEX_URL``, else PyPI."""
    extra_index_urls: tuple[str, ...] = ()
    """More package indexes. Default: ``$UV_EXTRA_INDEX_URL`` or ``$PIP_EXTRA_INDEX_URL``."""
    find_links: tuple[str, ...] = ()
    """Wheelhouse folders or pages to take wheels from (``--find-links``; folders are relative to the project
    folder in a build file). Default: ``$UV_FIND_LINKS`` or ``$PIP_FIND_LINKS``."""
    no_index: bool | None = None
    """Take wheels only from ``find_links``, never from an index (``--no-index``; air-gapped builds). Default:
    ``$UV_NO_INDEX`` or ``$PIP_NO_INDEX``, else false."""
    max_layers: int = 20
    """The most layers the dependencies take (2 to 100): large distributions get a layer each, small ones share up
    to 4 layers chosen by a hash of their name."""
    big_wheel_mb: float = 8.0
    """A wheel at least this large (in MB) gets a layer of its own; numpy, scipy, torch, ``nvidia-*`` and other
    known large distributions always do."""
    bytecode: bool = True
    """Compile ``.pyc`` files, reproducibly and by an interpreter of the image's Python version, into each
    distribution's layer; the default Debian base follows this setting."""

    def __post_init__(self) -> None:
        _absolute(self.venv, "venv", "/opt/venv")


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelSpec:
    """A model (``[[models]]`` in the build file): the files of ``src`` (a file or folder, relative to the
    project folder), filtered by ``include`` / ``exclude`` patterns, built into an image of their own.
    ``name`` (lowercase letters, digits and ``.``, ``_``, ``-``) names the model in the app's annotation
    and variable, and its repository (``<app repository>-<name>``)."""

    name: str
    """The model's name (lowercase letters and digits, separated by ``.``, ``_`` or ``-``; at most 64 characters):
    the app's annotation ``org.ocibuild.model.<name>``, its variable ``OCIBUILD_MODEL_<NAME>`` and the model
    image's repository ``<app repository>-<name>``. Required."""
    src: Path
    """The model's file or folder, relative to the project folder (and inside it). Required."""
    include: tuple[str, ...] = ()
    """Only files matching these patterns (gitignore-like, e.g. ``["*.safetensors", "*.json"]``). Default: every
    file."""
    exclude: tuple[str, ...] = ()
    """Leave out files matching these patterns."""

    def __post_init__(self) -> None:
        _text(self.name, "name")
        if not MODEL_NAME.fullmatch(self.name) or len(self.name) > 64:
            raise InvalidValue(f"model name {self.name!r} must be lowercase letters and digits, optionally "
                               "separated by '.', '_' or '-' (at most 64 characters), e.g. 'weights'")
        _text(str(self.src), "src")
        _strings(self.include, "include")
        _strings(self.exclude, "exclude")


Platforms = tuple[Platform, ...] | Literal["all"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BuildPlan:
    """Everything a build needs.

    ``platforms``: empty means the base's own platform (or the host's); several make one image each,
    joined in an index; ``"all"`` means every platform the base offers. ``bases`` gives a base per
    platform (``"linux/arm64"`` -> location) and then wins over ``base``.

    >>> plan = BuildPlan(project_dir=Path("examples/hello"), base=Scratch(),
    ...                  layers=(LayerSpec(src=Path("."), dest="/app"),))
    >>> BuildPlan.from_dict(plan.to_dict()) == plan
    True
    """

    project_dir: Path
    """The project folder; layer ``src`` paths are relative to it."""
    base: Location = field(default_factory=Scratch)
    """The base image (``--base``). In a build file: a location (``scratch``, ``oci:DIR[:TAG]``,
    ``oci-archive:FILE[:TAG]``, ``docker-archive:FILE``, ``docker://REF`` or a bare registry reference; paths
    relative to the project folder), a ``[base.debian]`` table (a base assembled from Debian packages), or a table
    of a location per platform (``"linux/amd64" = "oci:bases/amd64:py"``: the plan's ``bases``). Default in a
    build file: Debian trixie's ``python3`` with the C++ and OpenMP runtimes, assembled from packages and cached;
    in a plan: ``scratch``."""
    bases: Mapping[str, Location] = field(default_factory=dict)
    """A base per platform (``"linux/arm64"`` -> location), winning over ``base``; a build file gives it as a
    ``base`` table."""
    platforms: Platforms = ()
    """The platforms to build (``--platform``), e.g. ``["linux/amd64", "linux/arm64"]``, or ``"all"``: every
    platform the base offers and the dependencies support. A build file may give a comma-separated string. Several
    make one image each, joined in an index. Default: the base's platform (or the host's)."""
    layers: tuple[LayerSpec, ...] = ()
    """The project's file layers, in order (``[[layers]]`` tables; ``--layer SRC:DEST`` replaces them). Default in
    a build file: the whole project folder at ``/app``, unless the project is installed as a wheel
    (``python.project``)."""
    settings: ImageSettings = field(default_factory=ImageSettings)
    """Runtime settings over the base's config (a build file's top-level ``entrypoint``, ``cmd``, ``env``, ...)."""
    compression: Compression = field(default_factory=Compression)
    """Layer compression (``--compression``): ``gzip[:1-9]`` (the default, ``gzip:1``), ``zstd[:1-19]`` (pulled by
    containerd 1.5+ and podman) or ``none``."""
    outputs: tuple[Location, ...] = ()
    """Where to write the image when no ``--output`` is given (locations; a build file may give one string)."""
    python: PythonSpec | None = None
    """Python dependencies to install into a virtual environment (a build file's ``[python]`` table); None: none."""
    models: tuple[ModelSpec, ...] = ()
    """Model files built into images of their own that the app refers to (``[[models]]`` tables)."""
    embed_models: bool = False
    """Put the models' layers into the app image instead of images of their own (``--embed-models``)."""
    weights_lock: Path | None = None
    """The ``weights.lock`` the model files are checked against (beside the build file, when it has
    ``[[models]]``)."""
    source_date_epoch: int = 0
    """The time of every timestamp in the image (tar mtimes, config ``created``, history), in seconds since 1970;
    ``load_plan`` takes ``$SOURCE_DATE_EPOCH``."""
    cache_repo: str | None = None
    """A registry repository (``REGISTRY/REPO``) every machine shares as a cache of resolutions and layers
    (``--cache-repo``, which wins over ``$OCIBUILD_CACHE_REPO``, which wins over the build file); ``"none"`` turns
    it off. Not an input of the image."""
    uid: int = 0
    """The owner of every file in the project's file layers."""
    gid: int = 0
    """The group of every file in the project's file layers."""

    def __post_init__(self) -> None:
        """No NUL byte in any path or string (they reach the image config, tar headers or the file system)."""
        check_no_nul(records.to_json(self), "")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise InvalidValue(f"models: two models are named {next(n for n in names if names.count(n) > 1)!r}; "
                               "give each its own name")

    def with_outputs(self, *outputs: str | Location) -> BuildPlan:
        """The same plan writing to ``outputs`` (locations or their text, e.g. ``"oci:out/app:v1"``)."""
        return replace(self, outputs=tuple(parse_location(o) if isinstance(o, str) else o for o in outputs))

    def base_for(self, platform: Platform | None) -> Location:
        """The base to build ``platform`` on: its entry in ``bases``, else ``base``."""
        if not self.bases:
            return self.base
        for key, location in self.bases.items():
            if platform is not None and Platform.parse(key).matches(platform):
                return location
        have = ", ".join(self.bases)
        raise ConfigError(f"no base is configured for {platform or 'the host platform'} (bases are given for: "
                          f"{have}); add one to the base table or pick a configured --platform")

    def to_dict(self) -> dict[str, Any]:
        """The whole plan as JSON values (lossless: ``from_dict`` gives an equal plan)."""
        data: dict[str, Any] = records.to_json(self)
        return {"version": PLAN_VERSION, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BuildPlan:
        """A plan from ``to_dict()``'s form; every error names the key that is wrong."""
        if not isinstance(data, Mapping):
            raise ConfigError("a build plan must be a JSON object")
        body = dict(data)
        version = body.pop("version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise ConfigError(f"plan version {version!r} is not supported (this ocibuild reads version "
                              f"{PLAN_VERSION}); regenerate it with 'ocibuild build --print-plan'")
        if "project_dir" not in body:
            raise ConfigError("plan: 'project_dir' is required")
        return records.from_json(cls, body, "plan")

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"


def plan_schema() -> dict[str, Any]:
    """The JSON Schema of ``BuildPlan.to_dict()`` (``ocibuild/plan.schema.json``)."""
    schema: dict[str, Any] = json.loads((Path(__file__).parent / "plan.schema.json").read_text())
    return schema


def _location_to_json(loc: Any) -> Any:
    if isinstance(loc, DebianBase):
        return {"debian": records.to_json(loc.spec), "lock": str(loc.lock) if loc.lock else None,
                "architectures": list(loc.architectures)}
    return str(loc)


def _location_from_json(value: Any) -> Location:
    if isinstance(value, str):
        return parse_location(value)
    if isinstance(value, Mapping) and "debian" in value:
        from .debianspec import DebianSpec

        extra = sorted(set(value) - {"debian", "lock", "architectures"})
        if extra:
            raise ValueError(f"unknown key {extra[0]!r} in a Debian base (valid: debian, lock, architectures)")
        lock = value.get("lock")
        return DebianBase(spec=records.from_json(DebianSpec, value["debian"], "base.debian"),
                          lock=Path(lock) if lock else None,
                          architectures=tuple(value.get("architectures", ("amd64", "arm64"))))
    raise ValueError(f"{value!r} is not an image location (e.g. 'oci:base:v1') or a {{'debian': ...}} base")


def _platform_to_json(p: Platform) -> Any:
    return str(p) if not p.os_version and not p.os_features else p.to_dict()


def _platform_from_json(value: Any) -> Platform:
    if isinstance(value, Mapping):
        return Platform.from_dict(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a platform such as 'linux/amd64'")
    return Platform.parse(value)


def _compression_from_json(value: Any) -> Compression:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a compression such as 'gzip:1'")
    return Compression.parse(value)


records.CODECS[Platform] = (_platform_to_json, _platform_from_json)
records.CODECS[Compression] = (str, _compression_from_json)
records.CODECS[Location] = (_location_to_json, _location_from_json)  # type: ignore[index]
for _kind in typing.get_args(Location):
    records.CODECS[_kind] = (_location_to_json, _location_from_json)

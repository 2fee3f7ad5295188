"""Build files (``ocibuild.toml`` or ``[tool.ocibuild]`` in ``pyproject.toml``) and CLI overrides
-> ``BuildPlan``. Unknown keys are errors that suggest the closest valid key."""

from __future__ import annotations

import difflib
import json
import os
import shlex
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError, InvalidValue, LayerError
from .layers.compress import Compression
from .plan import BuildPlan, ImageSettings, LayerSpec, ModelSpec, PythonSpec, check_no_nul, check_setting
from .records import field_names
from .spec import Platform
from .timestamps import source_date_epoch
from .transports import DebianBase, Location, parse_location

T = TypeVar("T")
BUILD_FILE = "ocibuild.toml"
TOP_KEYS = ("base", "platform", "platforms", "entrypoint", "cmd", "workdir", "user", "env", "labels", "annotations",
            "ports", "volumes", "stop_signal", "layers", "compression", "outputs", "python", "models", "cache_repo")
LAYER_KEYS = tuple(k for k in field_names(LayerSpec) if k != "files")  # explicit entries come only from a plan
PYTHON_KEYS = field_names(PythonSpec)
MODEL_KEYS = field_names(ModelSpec)
DEFAULT_APP_DIR = "/app"


@dataclass(frozen=True, kw_only=True, slots=True)
class Overrides:
    """Values from the command line; ``None`` / empty means "not given"."""

    base: str | None = None
    platform: str | None = None
    outputs: tuple[str, ...] = ()
    entrypoint: str | None = None
    cmd: str | None = None
    workdir: str | None = None
    user: str | None = None
    env: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    annotations: tuple[str, ...] = ()
    ports: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    compression: str | None = None
    requirements: str | None = None
    python: str | None = None
    python_version: str | None = None
    find_links: tuple[str, ...] = ()
    index_url: str | None = None
    no_index: bool = False
    package: str | None = None
    cache_repo: str | None = None


def _cache_repo(overrides: Overrides, data: Mapping[str, Any], environ: Mapping[str, str] | None,
                where: str) -> str | None:
    """The shared cache repository: ``--cache-repo``, else ``$OCIBUILD_CACHE_REPO``, else ``cache_repo`` in
    the build file (checked to be ``REGISTRY/REPO``); "" or "none" turns it off."""
    from .cacherepo import ENV, parse_cache_repo

    env = os.environ if environ is None else environ
    for text, source in ((overrides.cache_repo, "--cache-repo"), (env.get(ENV), ENV),
                         (data.get("cache_repo"), f"{where}: cache_repo")):
        if text is None:
            continue
        text = _str(text, "cache_repo", where) if source != "--cache-repo" else text
        if text.strip().lower() in ("", "none"):
            return None
        ref = parse_cache_repo(text.strip(), source)
        return f"{ref.registry}/{ref.repository}"
    return None


def _unknown(keys: Sequence[str], valid: Sequence[str], where: str) -> None:
    for key in keys:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"
            raise ConfigError(f"{where}: unknown key {key!r}{hint}")


def _checked(name: str, value: T, where: str, key: str | None = None) -> T:
    """``value`` for ``ImageSettings.<name>``, checked as the OCI specs require (``ConfigError`` naming
    ``where`` and the key otherwise)."""
    try:
        check_setting(name, value, key)
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return value


def read_build_file(project: Path, config_file: Path | None = None) -> tuple[dict[str, Any], str]:
    """The ocibuild table and where it came from (``{}`` when the project has none)."""
    candidates = [config_file] if config_file else [project / BUILD_FILE, project / "pyproject.toml"]
    for path in candidates:
        if path is None or not path.is_file():
            if config_file is not None:
                raise ConfigError(f"build file {config_file} does not exist")
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}; fix the syntax") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read: {exc}") from None
        if path.name == "pyproject.toml":
            table = data.get("tool", {}).get("ocibuild")
            if table is None:
                return {}, str(path)
            return dict(table), f"{path} [tool.ocibuild]"
        return data, str(path)
    if not project.is_dir():
        raise ConfigError(f"project folder {project} does not exist")
    return {}, ""


def _command(value: Any, key: str, where: str) -> tuple[str, ...]:
    """A command as a list of strings, a JSON array string, or a plain command line."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key} {text!r} is not a valid JSON array: {exc}") from None
        else:
            try:
                return tuple(shlex.split(text))
            except ValueError as exc:
                raise ConfigError(f"{where}: {key} {text!r}: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f'{where}: {key} must be a list of strings, e.g. ["python3", "-m", "app"]')
    return tuple(value)


def _str(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, got {type(value).__name__}")
    return value


def _table(value: Any, key: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: {key} must be a table of strings, e.g. {key} = {{ KEY = "value" }}')
    out = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ConfigError(f"{where}: {key}.{k} must be a string")
        out[str(k)] = str(v)
    return out


def _pairs(items: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        out[key] = value
    return out


def _port(value: Any, where: str) -> str:
    text = str(value).strip().lower()
    number, _, proto = text.partition("/")
    if not number.isdigit() or not 0 < int(number) < 65536 or proto not in ("", "tcp", "udp", "sctp"):
        raise ConfigError(f"{where}: port {value!r} is not valid; use e.g. 8080 or '8080/udp'")
    return f"{int(number)}/{proto or 'tcp'}"


def _layers(value: Any, where: str) -> list[LayerSpec]:
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ConfigError(f'{where}: layers must be an array of tables, e.g. [[layers]] src = "app" dest = "/app"')
    out = []
    for i, item in enumerate(value):
        at = f"{where}: layers[{i}]"
        _unknown(list(item), LAYER_KEYS, at)
        if "src" not in item or "dest" not in item:
            raise ConfigError(f"{at}: needs both 'src' (a path in the project) and 'dest' (a path in the image)")
        exclude = item.get("exclude", [])
        if isinstance(exclude, str):
            exclude = [exclude]
        if not isinstance(exclude, list) or not all(isinstance(x, str) for x in exclude):
            raise ConfigError(f"{at}: exclude must be a list of patterns")
        dest = _str(item["dest"], "dest", at)
        if not dest.startswith("/"):
            raise ConfigError(f"{at}: dest {dest!r} must be an absolute path in the image, e.g. '/app'")
        try:
            out.append(LayerSpec(src=Path(_str(item["src"], "src", at)), dest=dest, exclude=tuple(exclude),
                                 name=_str(item.get("name", ""), "name", at)))
        except InvalidValue as exc:
            raise ConfigError(f"{at}: {exc}") from None
    return out


def _patterns(item: dict[str, Any], key: str, at: str) -> tuple[str, ...]:
    value = item.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f'{at}: {key} must be a list of patterns, e.g. {key} = ["*.safetensors"]')
    return tuple(value)


def _models(value: Any, where: str) -> list[ModelSpec]:
    """``[[models]]``: name, src, optional include / exclude patterns."""
    if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
        raise ConfigError(f'{where}: models must be an array of tables, e.g. [[models]] name = "weights" '
                          'src = "weights"')
    out = []
    for i, item in enumerate(value):
        at = f"{where}: models[{i}]"
        _unknown(list(item), MODEL_KEYS, at)
        if "name" not in item or "src" not in item:
            raise ConfigError(f"{at}: needs both 'name' (e.g. \"weights\") and 'src' (the model's file or folder "
                              "in the project)")
        try:
            out.append(ModelSpec(name=_str(item["name"], "name", at), src=Path(_str(item["src"], "src", at)),
                                 include=_patterns(item, "include", at), exclude=_patterns(item, "exclude", at)))
        except InvalidValue as exc:
            raise ConfigError(f"{at}: {exc}") from None
    names = [m.name for m in out]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{where}: two [[models]] are named {name!r}; give each its own name")
    return out


def _inside(spec: LayerSpec, project: Path) -> LayerSpec:
    """A build file's (or --layer's) source must lie inside the project folder (a plan may name any path)."""
    root = project.absolute()
    src = spec.src if spec.src.is_absolute() else root / spec.src
    try:
        src.absolute().resolve().relative_to(root.resolve())
    except ValueError:
        raise LayerError(
            f"layer source {spec.src} is outside the project folder {root}; "
            "move it into the project or build from a folder that contains it"
        ) from None
    return spec


def _cli_layer(text: str, project: Path) -> LayerSpec:
    src, sep, dest = text.rpartition(":")
    if not sep or not src or not dest.startswith("/"):
        raise ConfigError(f"--layer {text!r}: expected SRC:DEST with an absolute DEST, e.g. 'models:/models'")
    try:
        return LayerSpec(src=(project / src).absolute(), dest=dest)
    except InvalidValue as exc:
        raise ConfigError(f"--layer {text!r}: {exc}") from None


def _location(text: str, project: Path | None, what: str) -> Location:
    try:
        return parse_location(text, base_dir=project)
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def _platform(text: str, where: str) -> Platform:
    try:
        return Platform.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _str_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return tuple(value)


DEFAULT_DEBIAN_PACKAGES = ("python3", "ca-certificates", "libstdc++6", "libgomp1")
DEBIAN_KEYS = ("suite", "packages", "mirror", "deb_dir", "components", "allow_unsigned", "lock", "architectures",
               "security", "bytecode")


def _debian_base(table: dict[str, Any], project: Path, where: str) -> DebianBase:
    """``[base.debian]``: a base assembled from Debian packages (not a registry reference)."""
    at = f"{where}: base.debian"
    if set(table) != {"debian"}:
        raise ConfigError(f"{at}: a Debian base table holds only 'debian' (found {', '.join(sorted(table))})")
    t = table["debian"]
    if not isinstance(t, dict):
        raise ConfigError(f'{at} must be a table, e.g. [base.debian] suite = "trixie" packages = ["python3"]')
    _unknown(list(t), DEBIAN_KEYS, at)
    from .debian.spec import platform_for

    kwargs: dict[str, Any] = {"packages": DEFAULT_DEBIAN_PACKAGES}
    if "suite" in t:
        kwargs["suite"] = _str(t["suite"], "suite", at)
    if "packages" in t:
        kwargs["packages"] = _str_list(t["packages"], "packages", at)
    if "components" in t:
        kwargs["components"] = _str_list(t["components"], "components", at)
    if "mirror" in t:
        kwargs["mirror"] = _str(t["mirror"], "mirror", at)
    if "deb_dir" in t:
        kwargs["deb_dir"] = project.absolute() / _str(t["deb_dir"], "deb_dir", at)
    for flag in ("allow_unsigned", "security", "bytecode"):
        if flag in t:
            if not isinstance(t[flag], bool):
                raise ConfigError(f"{at}: {flag} must be true or false")
            kwargs[flag] = t[flag]
    arches = _str_list(t.get("architectures", ["amd64", "arm64"]), "architectures", at)
    for arch in arches:
        try:
            platform_for(arch)
        except ConfigError as exc:
            raise ConfigError(f"{at}: {exc}") from None
    lock = project.absolute() / _str(t["lock"], "lock", at) if "lock" in t else None
    from .debianspec import DebianSpec

    return DebianBase(spec=DebianSpec(**kwargs), lock=lock, architectures=arches)


def _workspace_lock(package: str, requirements: Path | None, lock: Path | None, project: Path, at: str) -> Path:
    """The uv.lock a workspace member ``package`` is installed from (default: the project's), checked
    to name a member of that workspace."""
    from .python.workspace import check_member

    if requirements is not None:
        raise ConfigError(f"{at}: package {package!r} takes its dependencies from the workspace's uv.lock; "
                          "drop 'requirements' (or drop 'package')")
    lock = lock or project / "uv.lock"
    if lock.name != "uv.lock":
        raise ConfigError(f"{at}: package {package!r} picks a member of a uv workspace, which needs lock = "
                          f"\"uv.lock\" (not {lock.name})")
    if not lock.is_file():
        raise ConfigError(f"{at}: package {package!r} needs the workspace's lock file {lock}, which does not "
                          f"exist; run 'uv lock' in {lock.parent}")
    check_member(lock.parent, package)
    return lock


def _python_spec(data: Any, overrides: Overrides, project: Path, where: str) -> PythonSpec | None:
    """The ``python`` table (plus --requirements / --python... flags), or None if neither is given."""
    cli = any((overrides.requirements, overrides.python, overrides.python_version, overrides.find_links,
               overrides.index_url, overrides.no_index, overrides.package))
    if data is None and not cli:
        return None
    table = data if data is not None else {}
    at = f"{where}: python"
    if not isinstance(table, dict):
        raise ConfigError(f'{at} must be a table, e.g. [python] requirements = "requirements.txt"')
    _unknown(list(table), PYTHON_KEYS, at)

    root = project.absolute()  # build-file paths are relative to the project folder, wherever ocibuild runs

    def path(key: str, cli_value: str | None = None) -> Path | None:
        if cli_value:
            return Path(cli_value).absolute()
        return root / _str(table[key], key, at) if key in table else None

    requirements, lock = path("requirements", overrides.requirements), path("lock")
    if requirements is not None and lock is not None:
        raise ConfigError(f"{at}: give either 'requirements' or 'lock', not both")
    from .python.workspace import is_package, read_pyproject

    package = overrides.package or (_str(table["package"], "package", at) if "package" in table else None)
    if package is not None:
        lock = _workspace_lock(package, requirements, lock, project, at)
    # a workspace member is installed; else uv's rule: a [project] with a build backend is a package
    installs = package is not None or is_package(read_pyproject(project / "pyproject.toml"))
    install_project = table.get("project", installs)
    if not isinstance(install_project, bool):
        raise ConfigError(f"{at}: project must be true or false")
    bytecode = table.get("bytecode", True)
    if not isinstance(bytecode, bool):
        raise ConfigError(f"{at}: bytecode must be true or false")
    max_layers = table.get("max_layers", 20)
    if not isinstance(max_layers, int) or not 2 <= max_layers <= 100:
        raise ConfigError(f"{at}: max_layers must be a whole number from 2 to 100")
    big_wheel_mb = table.get("big_wheel_mb", 8.0)
    if isinstance(big_wheel_mb, bool) or not isinstance(big_wheel_mb, int | float) or big_wheel_mb <= 0:
        raise ConfigError(f"{at}: big_wheel_mb must be a positive number of megabytes (e.g. 8)")
    # joined once with the project folder, made absolute: uv runs in the project folder, this process need not
    links = [str(root / x) if "://" not in x else x for x in _str_list(table.get("find_links", []), "find_links", at)]
    links += [str(Path(x).absolute()) if "://" not in x else x for x in overrides.find_links]
    no_index = True if overrides.no_index else table.get("no_index")
    if no_index is not None and not isinstance(no_index, bool):
        raise ConfigError(f"{at}: no_index must be true or false")
    opt = {k: _str(table[k], k, at) for k in ("venv", "interpreter", "python_version", "libc", "libc_version",
                                               "index_url") if k in table}
    if overrides.python:
        opt["interpreter"] = overrides.python
    if overrides.python_version:
        opt["python_version"] = overrides.python_version
    if overrides.index_url:
        opt["index_url"] = overrides.index_url
    venv = opt.pop("venv", "/opt/venv")
    if not venv.startswith("/"):
        raise ConfigError(f"{at}: venv {venv!r} must be an absolute path in the image")
    try:
        return PythonSpec(requirements=requirements, lock=lock, project=install_project, package=package, venv=venv,
                          interpreter=opt.get("interpreter"), python_version=opt.get("python_version"),
                          libc=opt.get("libc"), libc_version=opt.get("libc_version"),
                          index_url=opt.get("index_url", ""),
                          extra_index_urls=_str_list(table.get("extra_index_urls", []), "extra_index_urls", at),
                          find_links=tuple(links), no_index=no_index, max_layers=max_layers, bytecode=bytecode,
                          big_wheel_mb=float(big_wheel_mb))
    except InvalidValue as exc:
        raise ConfigError(f"{at}: {exc}") from None


def load_plan(project_dir: Path | str, *, overrides: Overrides = Overrides(), config_file: Path | None = None,
              environ: Mapping[str, str] | None = None, embed_models: bool = False) -> BuildPlan:
    """Read the project's build file, apply command-line overrides, return the plan.

    Paths in the build file are relative to the project folder; paths on the command line are
    relative to the current folder. ``[[models]]`` become model images the app refers to (or, with
    ``embed_models``, layers of the app), checked against ``weights.lock`` beside the build file.
    """
    project = Path(project_dir)
    data, where = read_build_file(project, config_file)
    build_file = Path(where.removesuffix(" [tool.ocibuild]")) if where else None
    where = where or str(project)
    try:
        check_no_nul(data, "")  # a NUL in a path or a tar header name would silently cut it short
    except InvalidValue as exc:
        raise ConfigError(f"{where}: {exc}") from None
    _unknown(list(data), TOP_KEYS, where)

    base_text = overrides.base if overrides.base is not None else data.get("base")
    base_by_platform: dict[str, Location] = {}
    debian: DebianBase | None = None
    if base_text is None:
        # the default: Debian's python3 (+ the C++ and OpenMP runtimes numpy/scikit-learn/torch wheels expect),
        # built from packages and cached
        from .debianspec import DebianSpec

        debian = DebianBase(spec=DebianSpec(packages=DEFAULT_DEBIAN_PACKAGES))
        base_text = "scratch"
    elif isinstance(base_text, dict) and "debian" in base_text:
        debian = _debian_base(base_text, project, where)
        base_text = "scratch"
    elif isinstance(base_text, dict):  # {"linux/amd64" = "...", "linux/arm64" = "..."}
        for key, value in base_text.items():
            base_by_platform[str(_platform(key, f"{where}: base"))] = _location(_str(value, f"base.{key}", where),
                                                                                project, "base")
        if not base_by_platform:
            raise ConfigError(f"{where}: base table is empty; map platforms to images, e.g. "
                              '{ "linux/amd64" = "oci:bases/amd64:py" }')
        base_text = "scratch"
    base: Location = debian or _location(_str(base_text, "base", where), None if overrides.base else project, "base")
    raw_platforms: Any = overrides.platform or data.get("platforms") or data.get("platform")
    if isinstance(raw_platforms, str):
        raw_platforms = [p.strip() for p in raw_platforms.split(",") if p.strip()]
    if raw_platforms is not None and (not isinstance(raw_platforms, list)
                                      or not all(isinstance(p, str) for p in raw_platforms)):
        raise ConfigError(f'{where}: platforms must be a list such as ["linux/amd64", "linux/arm64"] or "all"')
    all_platforms = raw_platforms == ["all"]
    platforms = [] if all_platforms or not raw_platforms else [_platform(p, where) for p in raw_platforms]
    platforms = list({str(p): p for p in platforms}.values())
    if base_by_platform and not platforms and not all_platforms:
        platforms = [Platform.parse(k) for k in base_by_platform]

    python = _python_spec(data.get("python"), overrides, project, where)
    if python is not None and not python.bytecode and base_text == "scratch" and debian is not None \
            and data.get("base") is None and overrides.base is None:
        debian = replace(debian, spec=replace(debian.spec, bytecode=False))  # the default base follows [python]
        base = debian
    default_layer = python is None or not python.project  # an installed project needs no copy of its folder
    if overrides.layers:
        layers = [_cli_layer(x, Path.cwd()) for x in overrides.layers]
    elif "layers" in data:
        layers = _layers(data["layers"], where)
    else:
        layers = [LayerSpec(src=Path("."), dest=DEFAULT_APP_DIR, name="app")] if default_layer else []

    def cmd(key: str, cli: str | None) -> tuple[str, ...] | None:
        if cli is not None:
            return _checked(key, _command(cli, f"--{key}", "command line"), "command line", f"--{key}")
        return _checked(key, _command(data[key], key, where), where) if key in data else None

    def setting(name: str, cli: str | None, flag: str) -> str | None:
        """A setting from its flag, else from the build file (None: neither), checked where it was given."""
        if cli:
            return _checked(name, cli, "command line", flag)
        return _checked(name, _str(data[name], name, where), where) if name in data else None

    def table(name: str, pairs: Sequence[str], flag: str) -> dict[str, str]:
        return {**_checked(name, _table(data.get(name, {}), name, where), where),
                **_checked(name, _pairs(pairs, flag), "command line", flag)}

    workdir = setting("workdir", overrides.workdir, "--workdir")
    if workdir is None and layers and "layers" not in data and not overrides.layers:
        workdir = DEFAULT_APP_DIR
    raw_ports = data.get("ports", [])
    raw_ports = raw_ports if isinstance(raw_ports, list) else [raw_ports]
    ports = [_port(p, where) for p in raw_ports] + [_port(p, "--port") for p in overrides.ports]
    try:
        settings = ImageSettings(
            entrypoint=cmd("entrypoint", overrides.entrypoint),
            cmd=cmd("cmd", overrides.cmd),
            workdir=workdir,
            user=setting("user", overrides.user, "--user"),
            env=table("env", overrides.env, "--env"),
            labels=table("labels", overrides.labels, "--label"),
            annotations=table("annotations", overrides.annotations, "--annotation"),
            ports=tuple(dict.fromkeys(ports)),
            volumes=_checked("volumes", _str_list(data.get("volumes", []), "volumes", where), where),
            stop_signal=setting("stop_signal", None, ""),
        )
    except InvalidValue as exc:  # every value was checked above; kept so no path can skip the checks
        raise ConfigError(f"{where}: {exc}") from None
    compression_text = overrides.compression or data.get("compression", "gzip")
    try:
        compression = Compression.parse(_str(compression_text, "compression", where))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if overrides.outputs:
        outputs = [_location(o, None, "--output") for o in overrides.outputs]
    else:
        raw_outputs = data.get("outputs", [])
        if isinstance(raw_outputs, str):
            raw_outputs = [raw_outputs]
        outputs = [_location(_str(o, "outputs", where), project, "outputs") for o in raw_outputs]
    models = _models(data["models"], where) if "models" in data else []
    for model in models:
        _inside(LayerSpec(src=model.src, dest="/"), project)
    lock_dir = build_file.parent if build_file is not None else project  # weights.lock: beside the build file
    cache_repo = _cache_repo(overrides, data, environ, where)
    try:
        return BuildPlan(
            project_dir=project,
            base=base,
            bases=base_by_platform,
            platforms="all" if all_platforms else tuple(platforms),
            layers=tuple(_inside(spec, project) for spec in layers),
            settings=settings,
            compression=compression,
            outputs=tuple(outputs),
            python=python,
            models=tuple(models),
            embed_models=embed_models,
            weights_lock=lock_dir.absolute() / "weights.lock" if models else None,
            source_date_epoch=source_date_epoch(environ),
            cache_repo=cache_repo,
        )
    except InvalidValue as exc:  # a NUL byte in a command-line value or the project path
        raise ConfigError(f"{where}: {exc}") from None


"""Which Python a base image has, decided from what its layers hold (nothing from the image is run).

:func:`detect_target` reads the image once (:func:`~ocibuild.python.facts.scan_image`) and turns the
:class:`~ocibuild.python.facts.ImageFacts` into a :class:`~ocibuild.python.targetpy.TargetPython`:
the interpreter is the best ``python3.X`` on the image's ``PATH`` (``PYTHON_VERSION`` and the
package databases break ties and give the full version; an unversioned ``python3`` takes the version
of the ``lib/python3.X`` beside it), the C library comes from dpkg / apk, the libc file names or the
banner inside ``libc.so.6``. Every guess can be overridden.
"""

from __future__ import annotations

import posixpath
import re
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..spec.annotations import DEFAULT_PATH
from .facts import CANDIDATE_DIRS, ImageFacts, scan_image
from .targetpy import TargetPython, wheel_arch

if TYPE_CHECKING:
    from ..image import Image
    from ..spec import ImageConfig

__all__ = ["detect_target", "target_from_facts"]

_VERSIONED_PYTHON = re.compile(r"python(\d+)\.(\d+)")
_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.\d+)?\S*")
_LIBC_VERSION = re.compile(r"\d+\.\d+")
_PKG_VERSION = re.compile(r"(?:\d+:)?(\d+)\.(\d+)((?:\.\d+)*)")


def _parse_python_version(text: str, what: str) -> tuple[str, str]:
    """("3.12", "3.12.1") from "3.12.1"; ("3.12", "") from "3.12"."""
    m = _VERSION.fullmatch(text.strip())
    if not m or m.group(1) != "3":
        raise ConfigError(f"{what} {text!r} is not a Python 3 version; give it as X.Y (e.g. 3.12)")
    mm = f"{m.group(1)}.{int(m.group(2))}"
    return mm, (text.strip() if text.strip() != mm else "")


def _package_version(version: str) -> str:
    """Upstream x.y.z of a dpkg/apk version ("3.11.2-6+deb12u6" -> "3.11.2"); "" if none."""
    m = _PKG_VERSION.match(version)
    return f"{m.group(1)}.{m.group(2)}{m.group(3)}" if m else ""


def _packaged_pythons(facts: ImageFacts) -> dict[str, str]:
    """major.minor -> full version of the Pythons the package databases know."""
    found: dict[str, str] = {}
    for name, version in facts.dpkg.items():
        m = re.fullmatch(r"(?:lib)?python(\d+\.\d+)-minimal", name)
        if m:
            full = _package_version(version)
            if full.startswith(m.group(1) + ".") or full == m.group(1):
                found.setdefault(m.group(1), full)
    for name in ("python3", "python3-dev"):
        if name in facts.apk:
            full = _package_version(facts.apk[name])
            if full.count(".") >= 1:
                found.setdefault(".".join(full.split(".")[:2]), full)
    return found


def _path_rank(path: str, search_path: list[str]) -> tuple[int, str]:
    parent = posixpath.dirname(path)
    return (search_path.index(parent) if parent in search_path else len(search_path), path)


def _name_version(path: str) -> str:
    m = _VERSIONED_PYTHON.fullmatch(posixpath.basename(path))
    return f"{m.group(1)}.{m.group(2)}" if m else ""


def _stdlib_version(facts: ImageFacts, interpreter: str) -> str:
    """The version of the one standard library beside ``interpreter``; "" if none or several."""
    found = facts.stdlib_versions(interpreter)
    return found[0] if len(found) == 1 else ""


def _choose_interpreter(facts: ImageFacts, wanted: str, search_path: list[str]) -> tuple[str, str] | None:
    """(real interpreter path, its major.minor or "") for ``wanted`` ("" = the newest), or None."""
    real: dict[str, str] = {}  # real file -> best-ranked candidate path pointing at it
    for cand in sorted(facts.interpreter_candidates(), key=lambda p: _path_rank(p, search_path)):
        target = facts.resolve(cand)
        if target is not None:
            real.setdefault(target, cand)
    if not real:
        return None
    ranked = sorted(real, key=lambda r: _path_rank(real[r], search_path))
    versioned = [(r, _name_version(r)) for r in ranked if _name_version(r)]
    if wanted:
        for r, v in versioned:
            if v == wanted:
                return r, v
        unversioned = [r for r in ranked if not _name_version(r)]
        if unversioned:
            return unversioned[0], wanted
        return None
    if versioned:
        best = max(versioned, key=lambda rv: tuple(int(x) for x in rv[1].split(".")))[1]
        return next((r, v) for r, v in versioned if v == best)
    return ranked[0], ""


def _no_python() -> ConfigError:
    return ConfigError(
        "base image has no Python interpreter (looked in /usr/bin, /usr/local/bin, /bin, /opt/*/bin); use a "
        "base with Python or set python.interpreter (e.g. /usr/bin/python3.X) and python.python_version (X.Y)"
    )


def _detect_python(config: ImageConfig, facts: ImageFacts, interpreter: str | None,
                   python_version: str | None) -> tuple[str, str, str]:
    """(interpreter, major.minor, full version or "")."""
    env = config.config.env_dict()
    search_path = [p.rstrip("/") or "/" for p in (env.get("PATH") or DEFAULT_PATH).split(":") if p]
    search_path += [d for d in CANDIDATE_DIRS if d not in search_path]
    wanted, full = _parse_python_version(python_version, "python.python_version") if python_version else ("", "")
    env_wanted = env_full = ""
    if env.get("PYTHON_VERSION"):
        try:
            env_wanted, env_full = _parse_python_version(env["PYTHON_VERSION"], "PYTHON_VERSION")
        except ConfigError:
            env_wanted = env_full = ""  # not a CPython version we can use; go by the files
    packaged = _packaged_pythons(facts)

    if interpreter is not None:
        if not interpreter.startswith("/"):
            raise ConfigError(f"python.interpreter {interpreter!r} must be an absolute path in the image, "
                              "e.g. /usr/bin/python3")
        path = facts.resolve(interpreter) or posixpath.normpath(interpreter)
        version = wanted or _name_version(path) or env_wanted or _stdlib_version(facts, path)
        if not version:
            if len(packaged) != 1:
                raise ConfigError(
                    f"cannot tell which Python version {interpreter} is; set python.python_version = \"X.Y\""
                )
            version = next(iter(packaged))
    elif wanted:
        chosen = _choose_interpreter(facts, wanted, search_path)
        if chosen is None:
            have = _choose_interpreter(facts, "", search_path)
            if have is None:
                raise _no_python()
            raise ConfigError(
                f"base image has no Python {wanted} (it has {have[0]}); name the interpreter with "
                "python.interpreter, or drop python.python_version"
            )
        path, version = chosen[0], wanted
    else:
        chosen = None
        if env_wanted:
            chosen = _choose_interpreter(facts, env_wanted, search_path)
        if chosen is None:
            chosen = _choose_interpreter(facts, "", search_path)
        if chosen is None:
            raise _no_python()
        path, version = chosen
        version = version or _stdlib_version(facts, path)
        if not version:
            if len(packaged) == 1:
                version = next(iter(packaged))
            else:
                raise ConfigError(
                    f"cannot tell which Python version {path} in the base image is; set python.python_version = \"X.Y\""
                )
    if not full and env_wanted == version:
        full = env_full
    if not full:
        full = packaged.get(version, "")
    if full == version:
        full = ""
    return path, version, full


def _detect_libc(facts: ImageFacts, libc: str | None, libc_version: str | None) -> tuple[str, str]:
    if libc is not None:
        kind = {"glibc": "glibc", "gnu": "glibc", "musl": "musl"}.get(libc.strip().lower())
        if kind is None:
            raise ConfigError(f"python.libc {libc!r} is not known; use glibc or musl")
    else:
        kind = ""
    if libc_version is not None and not _LIBC_VERSION.fullmatch(libc_version.strip()):
        raise ConfigError(f"python.libc_version {libc_version!r} is not a version; give it as X.Y (e.g. 2.36 or 1.2)")

    glibc = ""
    if "libc6" in facts.dpkg:
        glibc = _package_version(facts.dpkg["libc6"])
        glibc = ".".join(glibc.split(".")[:2]) if glibc else ""
    musl = ""
    if "musl" in facts.apk:
        full = _package_version(facts.apk["musl"])
        musl = ".".join(full.split(".")[:2]) if full else "1.2"
    if not kind:
        if glibc:
            kind = "glibc"
        elif musl:
            kind = "musl"
        elif facts.has_glibc:
            kind = "glibc"
        elif facts.has_musl:
            kind = "musl"
        elif libc_version is not None:
            raise ConfigError("cannot tell the base image's C library; set python.libc = \"glibc\" or \"musl\"")
        else:
            raise ConfigError(
                "cannot tell the base image's C library (no libc.so.6 or ld-musl-*.so.1 found); add "
                "python.libc (glibc or musl) and python.libc_version (X.Y)"
            )
    if libc_version is not None:
        return kind, libc_version.strip()
    if kind == "musl":
        return kind, musl or "1.2"
    version = glibc or facts.glibc_from_name or facts.glibc_from_binary
    if not version:
        raise ConfigError(
            "base image uses glibc but its version could not be read (no dpkg libc6 entry, no libc-2.NN.so, "
            "no version inside libc.so.6); set python.libc_version = \"2.NN\""
        )
    return kind, version


def target_from_facts(config: ImageConfig, facts: ImageFacts, *, interpreter: str | None = None,
                      python_version: str | None = None, libc: str | None = None,
                      libc_version: str | None = None) -> TargetPython:
    """The :class:`TargetPython` for an image with ``config`` whose layers gave ``facts``."""
    path, version, full = _detect_python(config, facts, interpreter, python_version)
    kind, lversion = _detect_libc(facts, libc, libc_version)
    target = TargetPython(interpreter=path, version=version, full_version=full, implementation="cp",
                          platform=config.platform, libc=kind, libc_version=lversion)
    wheel_arch(target.platform)  # fail early on a platform wheels cannot target
    return target


def detect_target(base: Image, *, interpreter: str | None = None,
                  python_version: str | None = None, libc: str | None = None,
                  libc_version: str | None = None) -> TargetPython:
    """Find the base image's Python by reading its layers; keyword arguments override what is found.

    With all four overrides given the layers are not read at all.
    """
    everything_given = bool(interpreter and python_version and libc and libc_version)
    facts = ImageFacts() if everything_given else scan_image(base)
    return target_from_facts(base.config, facts, interpreter=interpreter, python_version=python_version,
                             libc=libc, libc_version=libc_version)

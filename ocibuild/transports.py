"""Image locations in skopeo's transport syntax, parsed once at the edge.

``scratch`` · ``oci:DIR[:TAG]`` · ``oci-archive:FILE[:TAG]`` · ``docker-archive:FILE[:REPO:TAG]`` ·
``docker://REFERENCE`` (a bare reference such as ``127.0.0.1:5000/app:1`` means the same).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .spec import Reference

if TYPE_CHECKING:
    from .debianspec import DebianSpec

_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
TRANSPORTS = ("scratch", "oci:", "oci-archive:", "docker-archive:", "docker://")


@dataclass(frozen=True, kw_only=True, slots=True)
class Scratch:
    """The empty image: ``FROM scratch``."""

    def __str__(self) -> str:
        return "scratch"


@dataclass(frozen=True, kw_only=True, slots=True)
class OciLayout:
    """``oci:DIR[:TAG]``: an OCI image layout folder (the image tagged TAG, or its only one)."""

    path: Path
    tag: str | None = None

    def __str__(self) -> str:
        return f"oci:{self.path}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class OciArchive:
    """``oci-archive:FILE[:TAG]``: an OCI image layout in one tar file."""

    path: Path
    tag: str | None = None

    def __str__(self) -> str:
        return f"oci-archive:{self.path}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class DockerArchive:
    """``docker-archive:FILE[:REPO:TAG]``: what ``docker save`` writes and ``docker load`` reads."""

    path: Path
    reference: str | None = None  # "repo:tag" as written into RepoTags

    def __str__(self) -> str:
        return f"docker-archive:{self.path}" + (f":{self.reference}" if self.reference else "")


@dataclass(frozen=True, kw_only=True, slots=True)
class Registry:
    """``docker://REGISTRY/REPO[:TAG|@DIGEST]`` (or a bare reference): an image in a registry."""

    reference: Reference

    def __str__(self) -> str:
        return f"docker://{self.reference}"


@dataclass(frozen=True, kw_only=True, slots=True)
class DebianBase:
    """A base assembled from Debian packages (``[base.debian]`` in the build file). ``lock`` keeps the
    exact packages; None means the cache's own lock for this package set."""

    spec: DebianSpec
    """What the base is made of."""
    lock: Path | None = None
    """The lock file that keeps the exact packages (name, version, architecture, sha256): reused when it matches,
    written otherwise; commit it. Relative to the project folder in a build file. None: a lock kept in the cache
    for this package set."""
    architectures: tuple[str, ...] = ("amd64", "arm64")
    """The Debian architectures to assemble the base for (``amd64``, ``arm64``, ...), one image each. Default:
    ``amd64`` and ``arm64``."""

    def __str__(self) -> str:
        return f"debian packages ({self.spec.suite}: {', '.join(self.spec.packages)})"


Location = Scratch | OciLayout | OciArchive | DockerArchive | Registry | DebianBase
"""Where an image comes from or goes to, parsed once from its text by ``parse_location``."""


def _split_path_tag(rest: str, text: str, kind: str) -> tuple[Path, str | None]:
    path, _, tag = rest.partition(":")
    if not path:
        raise ConfigError(f"invalid {kind} location {text!r}: the path is empty (e.g. '{kind}:out/app:v1')")
    if tag and not _TAG.match(tag):
        raise ConfigError(
            f"invalid tag {tag!r} in {text!r}: tags are letters, digits, '_', '.', '-' (max 128, e.g. 'v1')"
        )
    return Path(path), tag or None


def parse_location(text: str, *, base_dir: Path | None = None) -> Location:
    """Parse an image location; relative paths are taken relative to ``base_dir`` if given.

    >>> parse_location("oci:out/app:v1")
    OciLayout(path=PosixPath('out/app'), tag='v1')
    """
    text = text.strip()
    loc: Location
    if text == "scratch":
        return Scratch()
    if text.startswith("docker://"):
        return _registry(text[len("docker://"):], text)
    kind, sep, rest = text.partition(":")
    if sep and kind == "oci":
        path, tag = _split_path_tag(rest, text, "oci")
        loc = OciLayout(path=path, tag=tag)
    elif sep and kind == "oci-archive":
        path, tag = _split_path_tag(rest, text, "oci-archive")
        loc = OciArchive(path=path, tag=tag)
    elif sep and kind == "docker-archive":
        path_text, _, ref = rest.partition(":")
        if not path_text:
            raise ConfigError(f"invalid docker-archive location {text!r}: the path is empty")
        if ref:
            try:
                Reference.parse(ref)
            except ValueError as exc:
                raise ConfigError(f"invalid docker-archive location {text!r}: {exc}") from None
        loc = DockerArchive(path=Path(path_text), reference=ref or None)
    elif sep and kind in ("dir", "containers-storage", "docker-daemon", "ostree", "sif", "tarball"):
        raise ConfigError(
            f"transport {kind!r} in {text!r} is not supported; use one of: {', '.join(TRANSPORTS)}"
        )
    else:
        return _registry(text, text)
    if base_dir is not None and not loc.path.is_absolute():
        loc = type(loc)(path=base_dir / loc.path, **_rest(loc))
    return loc


def _rest(loc: OciLayout | OciArchive | DockerArchive) -> dict[str, str | None]:
    return {"reference": loc.reference} if isinstance(loc, DockerArchive) else {"tag": loc.tag}


def _registry(ref_text: str, text: str) -> Registry:
    try:
        return Registry(reference=Reference.parse(ref_text))
    except ValueError as exc:
        raise ConfigError(
            f"{exc}; image locations are one of: {', '.join(TRANSPORTS)} (e.g. 'oci:out/app:v1')"
        ) from None

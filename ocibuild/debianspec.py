"""``DebianSpec``: what a base image assembled from Debian packages is made of. A pure value (it is
part of a build plan), kept apart from the Debian code in ``ocibuild.debian`` that builds it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_EXCLUDE = ("debconf", "debconf-2.0", "cdebconf")
"""Names counted as installed without being installed (debconf needs a maintainer script to work)."""

NONROOT_UID = 65532


@dataclass(frozen=True, kw_only=True, slots=True)
class DebianSpec:
    """Inputs of a Debian-package base image.

    ``suite`` defaults to ``trixie`` (Debian 13, Python 3.13); ``bookworm`` (Debian 12, Python 3.11)
    and other suites work the same way.
    ``mirror`` None means the mirror this host's apt uses, else http://deb.debian.org/debian
    (``file://`` mirrors work too). ``deb_dir`` is an offline folder of ``.deb`` files: no indexes and
    no signatures (the folder is trusted as given; with a lock file each ``.deb`` is still checked
    against its locked sha256). ``allow_unsigned`` accepts a release file that gpgv cannot verify
    against ``keyring`` (default: the Debian archive keyring). ``exclude`` names (real or virtual)
    count as installed without being installed. ``slim`` drops manual pages, info pages, locales and
    documentation except copyright files. ``user`` is the image's default user (``65532`` is the
    ``nonroot`` user this image defines; use ``0`` for root). ``security`` adds the
    ``<suite>-security`` archive (from ``security_mirror``, default: the host apt's, else
    http://deb.debian.org/debian-security): the newest version of each package wins. ``bytecode``
    adds the ``.pyc`` of the Python standard library (as Debian's ``py3compile`` would, but
    reproducible: see ``ocibuild.python.bytecode``) to the Python runtime layer.
    """

    suite: str = "trixie"
    packages: tuple[str, ...] = ("python3", "ca-certificates")
    mirror: str | None = None
    deb_dir: Path | None = None
    components: tuple[str, ...] = ("main",)
    allow_unsigned: bool = False
    keyring: Path | None = None
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    merged_usr: bool = True
    slim: bool = True
    user: str = str(NONROOT_UID)
    security: bool = False
    security_mirror: str | None = None
    bytecode: bool = True

    def __post_init__(self) -> None:
        if not self.packages:
            raise ConfigError("a Debian base needs at least one package (e.g. python3)")
        if not self.suite or "/" in self.suite:
            raise ConfigError(f"invalid Debian suite {self.suite!r}: use a name such as 'trixie' or 'bookworm'")

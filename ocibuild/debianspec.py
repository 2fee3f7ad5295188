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
    """Inputs of a Debian-package base image (``[base.debian]`` in a build file, ``ocibuild base debian``):
    resolved, verified and unpacked without running anything.
    """

    suite: str = "trixie"
    """The Debian suite: ``trixie`` (Debian 13, Python 3.13; the default) or ``bookworm`` (Debian 12, Python
    3.11); other suites work the same way."""
    packages: tuple[str, ...] = ("python3", "ca-certificates")
    """The packages to install, with what they depend on (versions, alternatives and virtual packages resolved;
    dependencies on ``Essential`` packages count as met, so no shell, dpkg or perl comes along unless named). A
    build file's default: ``python3``, ``ca-certificates``, ``libstdc++6`` and ``libgomp1``."""
    mirror: str | None = None
    """The Debian mirror URL (``file://`` mirrors work too). Default: the mirror this host's apt uses, else
    ``http://deb.debian.org/debian``."""
    deb_dir: Path | None = None
    """An offline folder of ``.deb`` files used instead of a mirror: no indexes and no signatures (the folder is
    trusted as given; with a lock each ``.deb`` is still checked against its locked sha256). Relative to the
    project folder in a build file."""
    components: tuple[str, ...] = ("main",)
    """The archive components to read packages from. Default: ``main``."""
    allow_unsigned: bool = False
    """Accept a release file that ``gpgv`` cannot verify against ``keyring``; by default an unverifiable chain is
    an error."""
    keyring: Path | None = None
    """The keyring release files are checked against. Default: the Debian archive keyring."""
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    """Names (real or virtual) counted as installed without being installed. Default: debconf, which needs a
    maintainer script to work."""
    merged_usr: bool = True
    """Merge ``/bin``, ``/sbin`` and ``/lib`` into ``/usr`` (files of packages that still ship them are moved)."""
    slim: bool = True
    """Leave out manual pages, info pages, locales and documentation (copyright files are kept)."""
    user: str = str(NONROOT_UID)
    """The image's default user: ``65532`` is the ``nonroot`` user this image defines; ``0`` is root."""
    security: bool = False
    """Also take packages from the ``<suite>-security`` archive (from ``security_mirror``): the newest version of
    each package wins."""
    security_mirror: str | None = None
    """Where the ``<suite>-security`` archive comes from. Default: the host apt's, else
    ``http://deb.debian.org/debian-security``."""
    bytecode: bool = True
    """Add the ``.pyc`` files of the Python standard library to the Python runtime layer, as Debian's
    ``py3compile`` would but reproducibly (see ``ocibuild.python.bytecode``)."""

    def __post_init__(self) -> None:
        if not self.packages:
            raise ConfigError("a Debian base needs at least one package (e.g. python3)")
        if not self.suite or "/" in self.suite:
            raise ConfigError(f"invalid Debian suite {self.suite!r}: use a name such as 'trixie' or 'bookworm'")

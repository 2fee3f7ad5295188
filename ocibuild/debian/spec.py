"""What a Debian base image is made of (``DebianSpec``) and the Debian <-> OCI architecture names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..spec import Platform
from .resolve import DEFAULT_EXCLUDE

NONROOT_UID = 65532


@dataclass(frozen=True, kw_only=True, slots=True)
class DebianSpec:
    """Inputs of a Debian-package base image.

    ``mirror`` None means the mirror this host's apt uses, else http://deb.debian.org/debian
    (``file://`` mirrors work too). ``deb_dir`` is an offline folder of ``.deb`` files: no indexes and
    no signatures (the folder is trusted as given; with a lock file each ``.deb`` is still checked
    against its locked sha256). ``allow_unsigned`` accepts a release file that gpgv cannot verify
    against ``keyring`` (default: the Debian archive keyring). ``exclude`` names (real or virtual)
    count as installed without being installed. ``slim`` drops manual pages, info pages, locales and
    documentation except copyright files. ``user`` is the image's default user (``65532`` is the
    ``nonroot`` user this image defines; use ``0`` for root). ``security`` adds the
    ``<suite>-security`` archive (from ``security_mirror``, default: the host apt's, else
    http://deb.debian.org/debian-security): the newest version of each package wins.
    """

    suite: str = "bookworm"
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

    def __post_init__(self) -> None:
        if not self.packages:
            raise ConfigError("a Debian base needs at least one package (e.g. python3)")
        if not self.suite or "/" in self.suite:
            raise ConfigError(f"invalid Debian suite {self.suite!r}: use a name such as 'bookworm'")


# Debian architecture -> OCI (architecture, variant)
_DEB_TO_OCI = {
    "amd64": ("amd64", ""),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"),
    "i386": ("386", ""),
    "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64el": ("mips64le", ""),
}


def platform_for(arch: str) -> Platform:
    """The OCI platform of a Debian architecture (``arm64`` -> ``linux/arm64/v8``)."""
    try:
        oci_arch, variant = _DEB_TO_OCI[arch]
    except KeyError:
        raise ConfigError(f"unknown Debian architecture {arch!r} (known: {', '.join(_DEB_TO_OCI)})") from None
    return Platform(os="linux", architecture=oci_arch, variant=variant)


def debian_arch(platform: Platform) -> str:
    """The Debian architecture of an OCI platform (``linux/arm/v7`` -> ``armhf``)."""
    if platform.os != "linux":
        raise ConfigError(f"Debian base images are linux only, not {platform}")
    variant = platform.variant or ""
    for deb, (oci_arch, oci_variant) in _DEB_TO_OCI.items():
        if platform.architecture == oci_arch and (variant == oci_variant or (oci_arch != "arm" and not variant)):
            return deb
    if platform.architecture == "arm" and variant in ("v6", "v5"):
        return "armel"
    raise ConfigError(f"no Debian architecture for platform {platform} (supported: "
                      + ", ".join(str(platform_for(a)) for a in _DEB_TO_OCI) + ")")

"""What a Debian base image is made of (``DebianSpec``) and the Debian <-> OCI architecture names."""

from __future__ import annotations

from ..debianspec import DEFAULT_EXCLUDE, NONROOT_UID, DebianSpec
from ..errors import ConfigError
from ..spec import Platform

__all__ = ["DEFAULT_EXCLUDE", "NONROOT_UID", "DebianSpec", "debian_arch", "platform_for"]

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

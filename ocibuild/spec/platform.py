"""Target platforms (``os/architecture[/variant]``) with the normalisation container tools use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .document import SpecError, as_object, get_str, get_str_list

_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "arm": ("arm", ""),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "x86": ("386", ""),
    "386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "ppc64el": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64le": ("mips64le", ""),
    "mips64el": ("mips64le", ""),
    "loong64": ("loong64", ""),
}
# Variant assumed when none is given (so ``linux/arm64`` equals ``linux/arm64/v8``).
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
_KNOWN_OS = {"linux", "windows", "freebsd", "darwin", "netbsd", "openbsd", "solaris", "illumos",
             "aix", "plan9", "dragonfly", "android", "ios", "js", "wasip1"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Platform:
    """An image platform.

    >>> Platform.parse("linux/aarch64")
    Platform(os='linux', architecture='arm64', variant='v8', os_version='', os_features=())
    """

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = field(default=())

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` (or just ``arch``, meaning linux), normalising aliases."""
        parts = text.strip().lower().split("/")
        if len(parts) == 1 and parts[0] in _ARCH_ALIASES:
            parts = ["linux", parts[0]]
        if not 2 <= len(parts) <= 3 or not all(parts):
            raise SpecError(
                f"invalid platform {text!r}: expected os/architecture[/variant], e.g. 'linux/amd64' "
                "or 'linux/arm64/v8'"
            )
        os_name, arch = parts[0], parts[1]
        if os_name not in _KNOWN_OS:
            raise SpecError(f"invalid platform {text!r}: unknown operating system {os_name!r} (e.g. 'linux')")
        if arch not in _ARCH_ALIASES:
            known = ", ".join(sorted({a for a, _ in _ARCH_ALIASES.values()}))
            raise SpecError(f"invalid platform {text!r}: unknown architecture {arch!r} (known: {known})")
        return cls.create(os_name, arch, parts[2] if len(parts) == 3 else "")

    @classmethod
    def create(cls, os_name: str, architecture: str, variant: str = "", **extra: Any) -> Platform:
        """Build a normalised platform from possibly aliased parts."""
        arch, implied = _ARCH_ALIASES.get(architecture.lower(), (architecture.lower(), ""))
        variant = (variant or implied).lower()
        if variant and not variant.startswith("v") and variant.isdigit():
            variant = "v" + variant
        if arch == "arm64" and variant in ("v8.0", "8"):
            variant = "v8"
        return cls(os=os_name.lower(), architecture=arch, variant=variant or _DEFAULT_VARIANT.get(arch, ""),
                   **extra)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> Platform:
        """A platform object (or an image config, which has the same fields); ``SpecError`` naming the
        field (``path`` prefixes it) if one has the wrong type."""
        data = as_object(data, path)
        return cls.create(
            get_str(data, "os", path),
            get_str(data, "architecture", path),
            get_str(data, "variant", path),
            os_version=get_str(data, "os.version", path),
            os_features=get_str_list(data, "os.features", path) or (),
        )

    def to_dict(self) -> dict[str, Any]:
        """OCI ``platform`` object. ``arm64`` keeps its ``v8`` variant, as official images do."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def matches(self, other: Platform) -> bool:
        """Same os, architecture and (defaulted) variant."""
        return (self.os, self.architecture, self.variant) == (other.os, other.architecture, other.variant)

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")

"""The Python an image is built for: version, platform and C library, and what follows from them.

:class:`TargetPython` knows the wheel tags its interpreter accepts (computed for the image's platform,
not the host's) and the matching ``uv --python-platform``; :func:`wheel_arch` names an image
platform's machine the way wheel tags do. Finding these facts in a base image is ``detect.py``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..spec import Platform

if TYPE_CHECKING:
    from packaging.tags import Tag

__all__ = ["TargetPython", "wheel_arch"]

# image architecture (OCI name, variant) -> the machine name in wheel platform tags
_WHEEL_ARCH = {
    ("amd64", ""): "x86_64",
    ("arm64", ""): "aarch64",
    ("arm", "v7"): "armv7l",
    ("arm", "v6"): "armv6l",
    ("386", ""): "i686",
    ("ppc64le", ""): "ppc64le",
    ("s390x", ""): "s390x",
    ("riscv64", ""): "riscv64",
    ("loong64", ""): "loongarch64",
}
# glibc minors uv's --python-platform can name per wheel architecture (uv 0.13; checked by the tests)
_UV_GLIBC_MINORS = {
    "x86_64": (17, 28, *range(31, 41)),
    "aarch64": (17, 28, *range(31, 41)),
    "s390x": (17, 28, *range(31, 41)),
    "ppc64le": (17, 28, *range(31, 41)),
    "loongarch64": tuple(range(36, 41)),
}
_UV_RISCV64_GLIBC = 39  # "riscv64-unknown-linux" means manylinux_2_39 to uv
_UV_MUSL_ARCHS = ("x86_64", "aarch64")  # "<arch>-unknown-linux-musl" means musllinux_1_2 to uv
_LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


def wheel_arch(platform: Platform) -> str:
    """The machine name wheels use for ``platform`` (``linux/arm64`` -> ``aarch64``)."""
    variant = platform.variant if platform.architecture == "arm" else ""
    try:
        return _WHEEL_ARCH[(platform.architecture, variant)]
    except KeyError:
        raise ConfigError(
            f"no Python wheel platform is known for {platform}; build for linux/amd64, linux/arm64, "
            "linux/arm/v7, linux/386, linux/ppc64le, linux/s390x or linux/riscv64"
        ) from None


@dataclass(frozen=True, kw_only=True, slots=True)
class TargetPython:
    """The Python of a base image: where it is, its version, and the C library it is built against."""

    interpreter: str  # absolute path in the image: /usr/bin/python3.11, /usr/local/bin/python3.12
    version: str  # major.minor: "3.11"
    full_version: str  # "3.11.2" if known, else ""
    implementation: str  # "cp"
    platform: Platform
    libc: str  # "glibc" or "musl"
    libc_version: str  # "2.36" (glibc) or "1.2" (musl)

    @property
    def version_tuple(self) -> tuple[int, int]:
        major, minor = self.version.split(".")
        return int(major), int(minor)

    @property
    def libc_version_tuple(self) -> tuple[int, int]:
        major, minor = self.libc_version.split(".")
        return int(major), int(minor)

    def manylinux_platform_tags(self) -> list[str]:
        """Platform tags best-first, in the order ``packaging.tags`` gives them on such a machine.

        glibc 2.36 on x86_64: ``manylinux_2_36_x86_64`` ... ``manylinux_2_17_x86_64``,
        ``manylinux2014_x86_64`` ... ``manylinux1_x86_64``, ``linux_x86_64``. musl 1.2:
        ``musllinux_1_2_<arch>``, ``musllinux_1_1_<arch>``, ``musllinux_1_0_<arch>``, ``linux_<arch>``.
        """
        arch = wheel_arch(self.platform)
        major, minor = self.libc_version_tuple
        tags: list[str] = []
        if self.libc == "musl":
            tags += [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
        elif major == 2:
            # manylinux starts at glibc 2.17 except on x86 (2.5); same rule and order as packaging
            oldest = 5 if arch in ("x86_64", "i686") else 17
            for m in range(minor, oldest - 1, -1):
                tags.append(f"manylinux_2_{m}_{arch}")
                legacy = _LEGACY_MANYLINUX.get(m)
                if legacy and (legacy == "manylinux2014" or arch in ("x86_64", "i686")):
                    tags.append(f"{legacy}_{arch}")
        tags.append(f"linux_{arch}")
        return tags

    def tags(self) -> list[Tag]:
        """Wheel tags this interpreter accepts, best first (``packaging.tags.cpython_tags`` followed by
        ``compatible_tags``), computed for the image's platform, not the host's."""
        return list(_tags(tuple(self.version_tuple), tuple(self.manylinux_platform_tags())))

    def uv_python_platform(self) -> str:
        """The value for ``uv pip compile/install --python-platform`` that matches this target.

        glibc: the newest ``<arch>-manylinux_2_NN`` uv knows that is not newer than the image's glibc
        (so uv never picks a wheel the image cannot load). musl: ``<arch>-unknown-linux-musl``.
        """
        arch = wheel_arch(self.platform)
        major, minor = self.libc_version_tuple
        if self.libc == "musl":
            if arch in _UV_MUSL_ARCHS and (major, minor) >= (1, 2):
                return f"{arch}-unknown-linux-musl"
            raise ConfigError(
                f"uv cannot resolve for musl {self.libc_version} on {arch} (it knows musl 1.2 on x86_64 and "
                "aarch64 only); use a glibc base image, or resolve with pip and these platform tags: "
                + ", ".join(self.manylinux_platform_tags())
            )
        if arch == "riscv64" and major == 2 and minor >= _UV_RISCV64_GLIBC:
            return "riscv64-unknown-linux"
        usable = [m for m in _UV_GLIBC_MINORS.get(arch, ()) if major == 2 and m <= minor]
        if usable:
            return f"{arch}-manylinux_2_{max(usable)}"
        raise ConfigError(
            f"uv cannot resolve for glibc {self.libc_version} on {arch}; use a newer base image "
            "(glibc 2.17 or later on x86_64/aarch64/ppc64le/s390x), or resolve with pip and these platform "
            "tags: " + ", ".join(self.manylinux_platform_tags())
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "interpreter": self.interpreter,
            "version": self.version,
            "full_version": self.full_version,
            "implementation": self.implementation,
            "platform": str(self.platform),
            "libc": self.libc,
            "libc_version": self.libc_version,
        }


@functools.lru_cache(maxsize=16)
def _tags(version: tuple[int, ...], platforms: tuple[str, ...]) -> tuple[Tag, ...]:
    """``TargetPython.tags``, computed once per version and platform tags (each wheel of a build asks)."""
    from packaging.tags import compatible_tags, cpython_tags

    nodot = f"{version[0]}{version[1]}"
    return (*cpython_tags(python_version=version, abis=[f"cp{nodot}"], platforms=platforms),
            *compatible_tags(python_version=version, interpreter=f"cp{nodot}", platforms=platforms))

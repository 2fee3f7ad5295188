"""A package index for one architecture: every candidate ``.deb`` by name and by what it provides."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import SourceError
from .control import Alternatives, parse_relations
from .version import DebVersion


@dataclass(frozen=True, kw_only=True, slots=True)
class PackageInfo:
    """One binary package as an index (or a ``.deb``'s control file) describes it."""

    name: str
    version: str
    architecture: str  # the package's own: "amd64", "all", ...
    filename: str  # path below the mirror root (``pool/main/...``) or the file name in a deb folder
    sha256: str
    size: int
    origin: str = ""  # mirror base URL when not the main source's
    fields: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def essential(self) -> bool:
        return self.fields.get("Essential", "no").strip().lower() == "yes"

    def relations(self, name: str) -> tuple[Alternatives, ...]:
        """A parsed relationship field (``Depends``, ``Pre-Depends``, ``Provides``...)."""
        text = self.fields.get(name, "")
        return parse_relations(text, field=name, package=self.name) if text.strip() else ()

    @property
    def deb_version(self) -> DebVersion:
        return DebVersion.parse(self.version)

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.architecture})"

    @classmethod
    def from_fields(cls, fields: Mapping[str, str], *, filename: str = "", sha256: str = "",
                    size: int = 0, origin: str = "") -> PackageInfo:
        try:
            return cls(name=fields["Package"], version=fields["Version"],
                       architecture=fields.get("Architecture", "all"),
                       filename=filename or fields.get("Filename", ""),
                       sha256=(sha256 or fields.get("SHA256", "")).lower(),
                       size=size or int(fields.get("Size", "0") or 0), origin=origin, fields=dict(fields))
        except (KeyError, ValueError) as exc:
            raise SourceError(f"malformed package stanza {fields.get('Package', '?')!r}: {exc}") from None


_KEEP = ("Package", "Version", "Architecture", "Multi-Arch", "Essential", "Depends", "Pre-Depends", "Provides",
         "Filename", "SHA256", "Size", "Priority", "Section", "Source")
# Archive ``Packages`` files keep these fields on one line, so a regex over each paragraph is enough
# (and ~4x faster than a general deb822 parse of the 50 MB file).
_FIELD = re.compile(r"^(" + "|".join(re.escape(k) for k in _KEEP) + r"):[ \t]*(.*?)[ \t]*$", re.MULTILINE)


class PackageIndex:
    """Packages usable on one architecture (its own and ``all``), by name and by provided name."""

    def __init__(self, arch: str, packages: Iterable[PackageInfo] = ()) -> None:
        self.arch = arch
        self.by_name: dict[str, list[PackageInfo]] = {}
        self.providers: dict[str, list[tuple[PackageInfo, str]]] = {}  # virtual -> (package, provided version)
        for p in packages:
            self.add(p)

    def add(self, package: PackageInfo) -> None:
        """Add a candidate (packages for other architectures are ignored)."""
        if package.architecture not in (self.arch, "all"):
            return
        self.by_name.setdefault(package.name, []).append(package)
        provides = package.fields.get("Provides", "")
        for item in provides.split(","):  # "name[:arch] [(= version)]", cheaper than parse_relations
            name, _, rest = item.partition("(")
            name = name.strip().partition(":")[0]
            if name:
                op, _, version = rest.rstrip(") \t").strip().partition(" ")
                self.providers.setdefault(name, []).append((package, version.strip() if op == "=" else ""))

    def add_packages_file(self, text: str, *, origin: str = "") -> None:
        """Add every stanza of a ``Packages`` file (only the fields resolution and locking need are kept);
        ``origin`` is the mirror the files come from, if not the main one."""
        for paragraph in text.split("\n\n"):
            fields = dict(_FIELD.findall(paragraph))
            if fields:
                self.add(PackageInfo.from_fields(fields, origin=origin))

    def candidates(self, name: str) -> list[PackageInfo]:
        """Real packages called ``name``, newest first."""
        return sorted(self.by_name.get(name, ()), key=lambda p: p.deb_version, reverse=True)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name or name in self.providers

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_name.values())

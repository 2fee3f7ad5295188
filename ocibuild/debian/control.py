"""Debian control data: deb822 stanzas (``Packages``, ``Release``, a ``.deb``'s ``control``) and
relationship fields (``Depends``, ``Pre-Depends``, ``Provides``).

>>> parse_relations("libc6 (>= 2.34), python3:any | python3-minimal")[1][0].name
'python3'
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import SourceError

_RELATION = re.compile(
    r"^\s*(?P<name>[a-z0-9][a-z0-9+.\-]*)(?::(?P<qual>[a-z0-9\-]+))?\s*"
    r"(?:\(\s*(?P<op><<|<=|>=|>>|=|<|>)\s*(?P<version>[^)\s<>=][^)\s]*)\s*\))?\s*"
    r"(?:\[(?P<archs>[^\]]*)\])?\s*(?P<profiles>(?:<[^>]*>\s*)*)$"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Relation:
    """One ``name[:qualifier] [(op version)] [[arch list]]`` of a relationship field."""

    name: str
    qualifier: str = ""  # "any", "native" or an architecture name
    op: str = ""
    version: str = ""
    archs: tuple[str, ...] = ()  # restriction list: "amd64", "!armel", ...

    def applies_to(self, arch: str) -> bool:
        """Whether an ``[arch ...]`` restriction (if any) includes ``arch``."""
        if not self.archs:
            return True
        negated = [a[1:] for a in self.archs if a.startswith("!")]
        if negated:
            return arch not in negated
        return arch in self.archs

    def __str__(self) -> str:
        text = self.name + (f":{self.qualifier}" if self.qualifier else "")
        return text + (f" ({self.op} {self.version})" if self.op else "")


Alternatives = tuple[Relation, ...]


def parse_relations(text: str, *, field: str = "Depends", package: str = "") -> tuple[Alternatives, ...]:
    """Parse a relationship field into a list of alternatives (``a | b, c`` -> ``((a, b), (c,))``)."""
    out: list[Alternatives] = []
    for group in text.split(","):
        if not group.strip():
            continue
        alts: list[Relation] = []
        for item in group.split("|"):
            m = _RELATION.match(item)
            if not m:
                where = f" of {package}" if package else ""
                raise SourceError(f"cannot parse {field}{where}: {item.strip()!r} in {text!r}")
            op = m["op"] or ""
            op = {"<": "<=", ">": ">="}.get(op, op)
            alts.append(Relation(name=m["name"], qualifier=m["qual"] or "", op=op, version=m["version"] or "",
                                 archs=tuple((m["archs"] or "").split())))
        out.append(tuple(alts))
    return tuple(out)


def iter_stanzas(text: str) -> Iterator[dict[str, str]]:
    """Yield each deb822 paragraph as ``{field: value}``; continuation lines are kept (joined by
    newlines), PGP armour lines and comments are skipped."""
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
                fields, key = {}, ""
            continue
        if line[0] in " \t":
            if key:
                fields[key] += "\n" + line
            continue
        if line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            continue
        key = name.strip()
        fields[key] = value.strip()
    if fields:
        yield fields


def parse_stanza(text: str) -> dict[str, str]:
    """The first paragraph of ``text`` (a ``control`` file)."""
    for stanza in iter_stanzas(text):
        return stanza
    return {}

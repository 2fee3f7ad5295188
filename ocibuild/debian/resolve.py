"""Dependency resolution over one architecture's index.

``Pre-Depends`` and ``Depends`` are followed with version constraints, alternatives (the first one
that can be installed wins, with backtracking) and virtual packages (``Provides``, versioned or not).
What a runtime image does not need is left out on purpose:

* a dependency on an ``Essential: yes`` package (dpkg, tar, bash, perl-base, coreutils...) counts as
  met unless that package is requested: Debian lets packages omit such dependencies, so the ones that
  are declared serve maintainer scripts, which are never run here;
* a dependency on an *excluded* name (by default ``debconf`` and its virtual ``debconf-2.0``, only
  used by maintainer scripts) counts as met.

There is one architecture per resolution: ``:any``/``:native`` qualifiers and ``Multi-Arch`` only
matter across architectures, so they reduce to the plain name (``Architecture: all`` packages are
candidates for every architecture). ``Conflicts``/``Breaks`` are not checked (a single suite is
self-consistent). ``Recommends`` and ``Suggests`` are not followed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..debianspec import DEFAULT_EXCLUDE
from ..errors import ResolutionError, UnknownPackage
from .control import Alternatives, Relation, parse_relations
from .index import PackageIndex, PackageInfo
from .version import satisfies


def parse_request(text: str) -> Relation:
    """``python3``, ``python3=3.11.2-1+b1`` (apt style) or ``python3 (>= 3.11)``."""
    name, eq, version = text.partition("=")
    if eq and "(" not in text:
        text = f"{name.strip()} (= {version.strip()})"
    rels = parse_relations(text, field="package list")
    if len(rels) != 1 or len(rels[0]) != 1:
        raise ResolutionError(f"invalid package request {text!r}: give one package name, optionally with a "
                              "version such as 'python3=3.11.2-1+b1' or 'python3 (>= 3.11)'")
    return rels[0][0]


class Resolver:
    """Choose a closed set of packages for ``requested`` from ``index`` (see the module docstring)."""

    def __init__(self, index: PackageIndex, *, exclude: Iterable[str] = DEFAULT_EXCLUDE,
                 where: str = "") -> None:
        self.index = index
        self.exclude = frozenset(exclude)
        self.where = where or f"the {index.arch} index"
        self.selected: dict[str, PackageInfo] = {}
        self.requested: frozenset[str] = frozenset()

    # --- queries -------------------------------------------------------------------------------
    def _met_by_selected(self, rel: Relation) -> bool:
        pkg = self.selected.get(rel.name)
        if pkg is not None and self._version_ok(pkg.version, rel):
            return True
        for provider, provided_version in self.index.providers.get(rel.name, ()):
            if self.selected.get(provider.name) is provider and (
                    not rel.op or (provided_version and satisfies(provided_version, rel.op, rel.version))):
                return True
        return False

    @staticmethod
    def _version_ok(version: str, rel: Relation) -> bool:
        return not rel.op or satisfies(version, rel.op, rel.version)

    def _qualifier_ok(self, rel: Relation, pkg: PackageInfo) -> bool:
        return rel.qualifier in ("", "any", "native", self.index.arch) or rel.qualifier == pkg.architecture

    def _ignored(self, rel: Relation) -> bool:
        """Excluded names, and Essential packages nobody asked for."""
        if rel.name in self.requested:
            return False
        if rel.name in self.exclude:
            return True
        return any(p.essential for p in self.index.by_name.get(rel.name, ()))

    def _candidates(self, rel: Relation) -> list[PackageInfo]:
        real = [p for p in self.index.candidates(rel.name) if self._version_ok(p.version, rel)
                and self._qualifier_ok(rel, p)]
        virtual = sorted(
            (p for p, v in self.index.providers.get(rel.name, ())
             if not rel.op or (v and satisfies(v, rel.op, rel.version))),
            key=lambda p: (p.name, p.deb_version))
        return real + [p for p in virtual if p not in real]

    def _why_not(self, rel: Relation) -> str:
        have = self.index.by_name.get(rel.name, ())
        if rel.name in self.selected:
            return f"{self.selected[rel.name]} is already chosen"
        if have:
            return "only " + ", ".join(sorted({p.version for p in have})) + f" in {self.where}"
        if rel.name in self.index.providers:
            return "no provider with a matching version in " + self.where
        return f"no such package in {self.where}"

    # --- search --------------------------------------------------------------------------------
    def _install(self, pkg: PackageInfo, chain: tuple[str, ...]) -> None:
        self.selected[pkg.name] = pkg
        for field in ("Pre-Depends", "Depends"):
            for alts in pkg.relations(field):
                self._satisfy(alts, (*chain, pkg.name))

    def _satisfy(self, alts: Alternatives, chain: tuple[str, ...]) -> None:
        alts = tuple(r for r in alts if r.applies_to(self.index.arch))
        if not alts or any(self._met_by_selected(r) or self._ignored(r) for r in alts):
            return
        first_error: ResolutionError | None = None
        for rel in alts:
            for cand in self._candidates(rel):
                if cand.name in self.selected:
                    continue  # another version of it is already chosen
                saved = dict(self.selected)
                try:
                    self._install(cand, chain)
                    return
                except ResolutionError as exc:
                    self.selected = saved
                    first_error = first_error or exc
        if first_error is not None:
            raise first_error
        text = " | ".join(str(r) for r in alts)
        reasons = "; ".join(f"{r.name}: {self._why_not(r)}" for r in alts)
        path = " -> ".join((*chain, text))
        raise ResolutionError(f"unsatisfiable dependency {path} ({reasons})")

    def resolve(self, requested: Sequence[str]) -> list[PackageInfo]:
        """The packages to install, sorted by name. Raises ``UnknownPackage`` for a requested name the
        index does not have and ``ResolutionError`` (with the chain) when a dependency cannot be met."""
        rels = [parse_request(r) for r in requested]
        self.requested = frozenset(r.name for r in rels)
        self.selected = {}
        for rel in rels:
            if rel.name not in self.index:
                raise UnknownPackage(f"unknown package {rel.name!r}: it is not in {self.where}; check the spelling "
                                     "(e.g. 'apt-cache search', packages.debian.org), the suite and the components")
            if not self._candidates(rel):
                raise ResolutionError(f"no version of {rel} in {self.where} ({self._why_not(rel)})")
        for rel in rels:
            self._satisfy((rel,), ())
        return [self.selected[n] for n in sorted(self.selected)]

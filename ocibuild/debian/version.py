"""Debian version numbers (``[epoch:]upstream[-revision]``) compared the way dpkg compares them.

>>> compare_versions("1:1.0", "2.0")
1
>>> compare_versions("1.0~rc1", "1.0")
-1
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


def _order(c: str) -> int:
    """dpkg's character weight: ``~`` sorts before everything (even the end), letters before others."""
    if c == "~":
        return -1
    if c.isdigit():
        return 0
    if c.isascii() and c.isalpha():
        return ord(c)
    return ord(c) + 256


def _verrevcmp(a: str, b: str) -> int:
    """Compare two upstream (or revision) strings: alternating non-digit and digit runs."""
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


@functools.total_ordering
@dataclass(frozen=True, slots=True)
class DebVersion:
    """A parsed Debian version; ordering follows dpkg (``1.0~rc1 < 1.0 < 1.0+b1 < 1:0.1``)."""

    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> DebVersion:
        """Split ``[epoch:]upstream[-revision]``; raise ``ValueError`` for an empty or malformed version."""
        text = text.strip()
        epoch = 0
        if ":" in text:
            head, _, text = text.partition(":")
            if not head.isdigit():
                raise ValueError(f"invalid Debian version epoch {head!r}")
            epoch = int(head)
        upstream, sep, revision = text.rpartition("-")
        if not sep:
            upstream, revision = text, ""
        if not upstream or not upstream[0].isdigit():
            raise ValueError(f"invalid Debian version {text!r}: the upstream part must start with a digit")
        return cls(epoch, upstream, revision)

    def compare(self, other: DebVersion) -> int:
        """Negative, zero or positive as ``self`` is older than, equal to or newer than ``other``."""
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        return _sign(_verrevcmp(self.upstream, other.upstream)) or _sign(_verrevcmp(self.revision, other.revision))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, DebVersion):
            return NotImplemented
        return self.compare(other) < 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DebVersion):
            return NotImplemented
        return self.compare(other) == 0

    def __hash__(self) -> int:
        return hash(self.epoch)  # equal versions can be spelt differently (1.0 == 1.00)

    def __str__(self) -> str:
        out = f"{self.epoch}:{self.upstream}" if self.epoch else self.upstream
        return f"{out}-{self.revision}" if self.revision else out


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as version ``a`` is older than, equal to or newer than ``b`` (dpkg --compare-versions)."""
    return DebVersion.parse(a).compare(DebVersion.parse(b))


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether ``version`` meets the relation ``op wanted`` (``<<``, ``<=``, ``=``, ``>=``, ``>>``;
    the obsolete ``<`` and ``>`` mean ``<=`` and ``>=`` as in dpkg)."""
    c = compare_versions(version, wanted)
    if op in ("<=", "<"):
        return c <= 0
    if op in (">=", ">"):
        return c >= 0
    if op == "<<":
        return c < 0
    if op == ">>":
        return c > 0
    if op == "=":
        return c == 0
    raise ValueError(f"unknown version relation {op!r}")

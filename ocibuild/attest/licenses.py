"""The license a Python distribution declares, from its ``METADATA``, as an SBOM can state it.

Order (first that gives something): ``License-Expression`` (PEP 639) if it is a valid SPDX expression;
``License`` if it is one (``MIT``, ``Apache-2.0 OR MIT``); the ``License ::`` classifiers if every one
of them names exactly one SPDX license (joined with ``OR``); else the ``License`` text, else the
classifiers' names, kept as free text (an SBOM writes it as a ``LicenseRef-``); else nothing. A
classifier that does not pin a license version (``Apache Software License``, ``BSD License``) is
never guessed into an identifier.

>>> declared_license({"License": ["mit"]})
DeclaredLicense(value='MIT', spdx=True)
>>> declared_license({"Classifier": ["License :: OSI Approved :: BSD License"]})
DeclaredLicense(value='BSD License', spdx=False)
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .spdx_ids import SPDX_EXCEPTIONS, SPDX_LICENSES

__all__ = ["CLASSIFIERS", "DeclaredLicense", "declared_license", "spdx_expression"]

MAX_TEXT = 8192  # free license text kept at most (a License field may hold the whole license)

CLASSIFIERS: Mapping[str, str] = {
    "MIT License": "MIT",
    "MIT No Attribution License (MIT-0)": "MIT-0",
    "ISC License (ISCL)": "ISC",
    "Zero-Clause BSD (0BSD)": "0BSD",
    "Python Software Foundation License": "PSF-2.0",
    "Mozilla Public License 1.1 (MPL 1.1)": "MPL-1.1",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "Eclipse Public License 1.0 (EPL-1.0)": "EPL-1.0",
    "Eclipse Public License 2.0 (EPL-2.0)": "EPL-2.0",
    "European Union Public Licence 1.1 (EUPL 1.1)": "EUPL-1.1",
    "European Union Public Licence 1.2 (EUPL 1.2)": "EUPL-1.2",
    "GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "Common Development and Distribution License 1.0 (CDDL-1.0)": "CDDL-1.0",
    "Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "The Unlicense (Unlicense)": "Unlicense",
    "Universal Permissive License (UPL)": "UPL-1.0",
    "Blue Oak Model License (BlueOak-1.0.0)": "BlueOak-1.0.0",
    "Mulan Permissive Software License v2 (MulanPSL-2.0)": "MulanPSL-2.0",
    "SIL Open Font License 1.1 (OFL-1.1)": "OFL-1.1",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}
"""The trove license classifiers (their last part) that name exactly one SPDX license."""

_BY_LOWER = {i.lower(): i for i in SPDX_LICENSES}
_EXCEPTION_BY_LOWER = {i.lower(): i for i in SPDX_EXCEPTIONS}
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_OPERATORS = {"and": "AND", "or": "OR", "with": "WITH"}
_GROUPS = frozenset({"OSI Approved", "DFSG approved"})  # classifiers that group others and name no license


@dataclass(frozen=True, kw_only=True, slots=True)
class DeclaredLicense:
    """What a distribution declares: a valid SPDX license expression (``spdx``), or free text."""

    value: str
    spdx: bool


class _Parser:
    """Recursive descent over SPDX expression tokens; ``out`` collects them in canonical form."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.out: list[str] = []

    def _peek(self) -> str:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else ""

    def _next(self) -> str:
        token = self._peek()
        self.pos += 1
        return token

    def parse(self) -> bool:
        return self._or() and self.pos == len(self.tokens)

    def _or(self) -> bool:
        if not self._and():
            return False
        while self._peek().lower() == "or":
            self.out.append(_OPERATORS[self._next().lower()])
            if not self._and():
                return False
        return True

    def _and(self) -> bool:
        if not self._with():
            return False
        while self._peek().lower() == "and":
            self.out.append(_OPERATORS[self._next().lower()])
            if not self._with():
                return False
        return True

    def _with(self) -> bool:
        if not self._atom():
            return False
        if self._peek().lower() == "with":
            self.out.append(_OPERATORS[self._next().lower()])
            exception = _EXCEPTION_BY_LOWER.get(self._next().lower())
            if exception is None:
                return False
            self.out.append(exception)
        return True

    def _atom(self) -> bool:
        token = self._next()
        if token == "(":
            self.out.append("(")
            if not self._or() or self._next() != ")":
                return False
            self.out.append(")")
            return True
        plus = token.endswith("+") and len(token) > 1
        known = _BY_LOWER.get((token[:-1] if plus else token).lower())
        if known is None:
            return False
        self.out.append(known + ("+" if plus else ""))
        return True


def spdx_expression(text: str) -> str | None:
    """``text`` as a canonical SPDX license expression (identifiers in the list's case, operators in
    upper case, single spaces), or None if it is not one made of SPDX License List identifiers.

    >>> spdx_expression("(mit or apache-2.0) and bsd-3-clause")
    '(MIT OR Apache-2.0) AND BSD-3-Clause'
    >>> spdx_expression("BSD") is None
    True
    """
    tokens = _TOKEN.findall(text)
    if not tokens or len(tokens) > 200:
        return None
    parser = _Parser(tokens)
    if not parser.parse():
        return None
    return " ".join(parser.out).replace("( ", "(").replace(" )", ")")


def _clean(text: str) -> str:
    text = text.strip()
    return "" if text.upper() in ("UNKNOWN", "NONE", "") else text[:MAX_TEXT]


def declared_license(fields: Mapping[str, Sequence[str]]) -> DeclaredLicense | None:
    """The declared license from ``METADATA`` header fields (name -> every value it has), by the
    order in the module docstring; None if the distribution declares none."""
    expression = _clean((fields.get("License-Expression") or [""])[0])
    if expression and (valid := spdx_expression(expression)) is not None:
        return DeclaredLicense(value=valid, spdx=True)
    text = _clean((fields.get("License") or [""])[0])
    if text and (valid := spdx_expression(text)) is not None:
        return DeclaredLicense(value=valid, spdx=True)
    names = sorted({parts[-1] for c in fields.get("Classifier", ())
                    if len(parts := [p.strip() for p in c.split("::")]) >= 2 and parts[0] == "License"
                    and parts[-1] not in _GROUPS})
    mapped = [CLASSIFIERS.get(n) for n in names]
    if names and all(mapped):
        return DeclaredLicense(value=" OR ".join(sorted({m for m in mapped if m})), spdx=True)
    if expression or text:
        return DeclaredLicense(value=expression or text, spdx=False)
    if names:
        return DeclaredLicense(value="; ".join(names), spdx=False)
    return None

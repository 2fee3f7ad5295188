"""``.dockerignore``-style exclude patterns (``.ociignore``).

Patterns are relative to the layer's source folder; ``*`` and ``?`` stay within one path segment,
``**`` spans any number of segments, a pattern also excludes everything below a matching folder,
``!pattern`` re-includes, and the last matching pattern wins.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

IGNORE_FILE = ".ociignore"
# besides these, any folder holding a pyvenv.cfg (a virtual environment, whatever its name) is left out
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", ".hg", ".svn", ".venv", "**/__pycache__", "**/*.pyc", ".mypy_cache", ".pytest_cache",
    ".ruff_cache", ".tox", ".nox", "**/node_modules", "dist", "build", "**/*.egg-info",
)


def _translate(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    # a pattern matches the path itself or any folder above it
    return re.compile("^" + "".join(out) + "(?:/.*)?$")


@dataclass(frozen=True, slots=True)
class _Rule:
    regex: re.Pattern[str]
    negate: bool


class IgnoreRules:
    """Compiled exclude patterns.

    >>> IgnoreRules(["*.md", "!README.md"]).excluded("README.md")
    False

    ``skip_venvs``: a virtual environment folder (one holding ``pyvenv.cfg``) is excluded unless a
    ``!`` pattern re-includes it; the caller says which folders are ones (:meth:`excluded`'s ``venv``).
    """

    def __init__(self, patterns: Iterable[str], *, skip_venvs: bool = False) -> None:
        self.skip_venvs = skip_venvs
        self.patterns = tuple(p for p in (x.strip() for x in patterns) if p and not p.startswith("#"))
        rules = []
        for pattern in self.patterns:
            negate = pattern.startswith("!")
            body = pattern[1:].strip() if negate else pattern
            body = body.replace("\\", "/").lstrip("/")
            while body.startswith("./"):
                body = body[2:]
            body = body.rstrip("/")
            if body:
                rules.append(_Rule(_translate(body), negate))
        self._rules = tuple(rules)
        self.has_negations = any(r.negate for r in self._rules)

    def excluded(self, rel_path: str, *, venv: bool = False) -> bool:
        """Whether ``rel_path`` is left out; ``venv``: it is a virtual environment folder."""
        result = venv and self.skip_venvs  # as if the first pattern: any later one may re-include it
        for rule in self._rules:
            if rule.regex.match(rel_path):
                result = not rule.negate
        return result


def load_rules(src: Path, extra: Sequence[str] = (), *, defaults: bool = True) -> IgnoreRules:
    """Defaults (virtual environments and ``DEFAULT_EXCLUDES``), then ``src/.ociignore`` if present,
    then ``extra`` patterns."""
    patterns: list[str] = list(DEFAULT_EXCLUDES) if defaults else []
    ignore_file = src / IGNORE_FILE
    if src.is_dir() and ignore_file.is_file():
        patterns += ignore_file.read_text(encoding="utf-8").splitlines()
    patterns += list(extra)
    return IgnoreRules(patterns, skip_venvs=defaults)

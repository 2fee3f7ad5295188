"""What a project's ``pyproject.toml`` says about itself: whether it is a package to build and install,
and, for a uv workspace (``[tool.uv.workspace]``), which members it has.

Read only from the files (nothing is run), with uv's rules: a ``[project]`` is a package when it has
a ``[build-system]`` or ``tool.uv.package = true`` (``uv init`` writes an application without one,
and uv does not install that); workspace members are the folders the ``members`` globs match, minus
the ``exclude`` globs, each with its own ``pyproject.toml``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .wheel import normalize_name

__all__ = ["check_member", "is_package", "read_pyproject", "workspace_members"]


def read_pyproject(path: Path) -> dict[str, Any]:
    """The parsed ``pyproject.toml`` (``{}`` when there is none)."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}; fix the syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def is_package(data: dict[str, Any]) -> bool:
    """Whether a parsed ``pyproject.toml`` describes a project to build as a wheel (uv's rule).

    >>> is_package({"project": {"name": "app"}, "build-system": {"build-backend": "hatchling.build"}})
    True
    >>> is_package({"project": {"name": "app"}})  # an application as 'uv init' writes it
    False
    """
    if "project" not in data:
        return False
    explicit = data.get("tool", {}).get("uv", {}).get("package")
    if isinstance(explicit, bool):
        return explicit
    return "build-system" in data


def workspace_members(root: Path) -> dict[str, Path]:
    """Normalized name -> folder of every member of the uv workspace at ``root`` (the root's own
    ``[project]`` included); just the root project when it is not a workspace."""
    data = read_pyproject(root / "pyproject.toml")
    members: dict[str, Path] = {}
    name = data.get("project", {}).get("name")
    if isinstance(name, str):
        members[normalize_name(name)] = root
    workspace = data.get("tool", {}).get("uv", {}).get("workspace")
    if not isinstance(workspace, dict):
        return members
    excluded = {p.resolve() for pattern in workspace.get("exclude", []) for p in root.glob(str(pattern))}
    for pattern in workspace.get("members", []):
        for folder in sorted(root.glob(str(pattern))):
            if folder.resolve() in excluded or not (folder / "pyproject.toml").is_file():
                continue
            member = read_pyproject(folder / "pyproject.toml").get("project", {}).get("name")
            if isinstance(member, str):
                members[normalize_name(member)] = folder
    return members


def check_member(root: Path, package: str) -> Path:
    """The folder of workspace member ``package``; a ``ConfigError`` listing the members if there is none."""
    members = workspace_members(root)
    found = members.get(normalize_name(package))
    if found is None:
        have = ", ".join(sorted(members)) or "none"
        raise ConfigError(f"python.package {package!r} is not a member of the uv workspace at {root} (members: "
                          f"{have}); name one of them")
    return found

"""The ``manifest.json`` of a ``docker save`` / ``podman save`` archive: one entry per image."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .document import SpecError, as_object, get_str, get_str_list, kind_of, parse_json


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveEntry:
    """One image of a docker archive: the member names of its config and layers, and its tags."""

    config: str
    layers: tuple[str, ...] = ()
    repo_tags: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str = "") -> ArchiveEntry:
        """Parse one entry; ``SpecError`` naming the field if it is missing or mistyped."""
        data = as_object(data, path)
        config = get_str(data, "Config", path, require=True)
        layers = get_str_list(data, "Layers", path) or ()
        for name in (config, *layers):
            if not name or "\x00" in name:
                raise SpecError(f"{path or 'entry'!r} names an empty member or one with a NUL byte")
        return cls(config=config, layers=layers, repo_tags=get_str_list(data, "RepoTags", path) or ())


def archive_manifest(raw: bytes) -> tuple[ArchiveEntry, ...]:
    """Parse a docker archive's ``manifest.json`` (a JSON list of entries).

    >>> archive_manifest(b'[{"Config": "c.json", "Layers": ["l/layer.tar"], "RepoTags": null}]')[0].layers
    ('l/layer.tar',)
    """
    data = parse_json(raw, "manifest.json")
    if not isinstance(data, list):
        raise SpecError(f"manifest.json is not a JSON list (got {kind_of(data)})")
    return tuple(ArchiveEntry.from_dict(entry, f"[{i}]") for i, entry in enumerate(data))

"""MkDocs hooks (``hooks:`` in mkdocs.yml): the generated reference of ``ocibuild._docs`` joins the site.

Generated pages are added as files and listed in the nav after the page they belong under; a hand-written
page pulls in a generated section with ``<!-- ocibuild-docs: NAME -->``. A section no page uses, or a marker
naming no section, fails the build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from ocibuild import _docs

MARKER = re.compile(r"<!--\s*ocibuild-docs:\s*([\w-]+)\s*-->")
_site: _docs.Site | None = None
_used: set[str] = set()


def _extend_nav(nav: list[Any], anchor: str, entries: list[dict[str, str]]) -> bool:
    """Insert ``entries`` after the nav item naming ``anchor`` (in the same list); False if there is none."""
    for i, item in enumerate(nav):
        path = item if isinstance(item, str) else next(iter(item.values())) if isinstance(item, dict) else None
        if path == anchor:
            nav[i + 1:i + 1] = entries
            return True
        if isinstance(path, list) and _extend_nav(path, anchor, entries):
            return True
    return False


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    global _site
    try:
        _site = _docs.site(Path(config.config_file_path).resolve().parent)
    except LookupError as exc:  # UndocumentedKey, a public name from nowhere: say it in one line
        raise PluginError(str(exc)) from None
    _used.clear()
    if config.nav is not None:
        for anchor, entries in _site.nav.items():
            if not _extend_nav(config.nav, anchor, entries):
                raise PluginError(f"mkdocs.yml: the nav does not list {anchor}, which generated pages go after")
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    assert _site is not None
    for path, content in _site.pages.items():
        if files.get_file_from_path(path) is not None:
            raise PluginError(f"docs/{path} exists but is generated; remove it")
        files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    assert _site is not None
    sections = _site.sections

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in sections:
            raise PluginError(f"{page.file.src_uri}: no generated section {name!r} (known: {', '.join(sections)})")
        _used.add(name)
        return sections[name]

    return MARKER.sub(fill, markdown)


def on_post_build(config: MkDocsConfig) -> None:
    assert _site is not None
    unused = sorted(set(_site.sections) - _used)
    if unused:
        raise PluginError(f"generated sections no page shows: {', '.join(unused)} (add <!-- ocibuild-docs: NAME -->)")

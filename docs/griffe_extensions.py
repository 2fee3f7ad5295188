"""A griffe extension (mkdocstrings' ``extensions`` option): docstrings written for ``help()`` and doctest
render as Markdown (``ocibuild._docs.markdown_docstring``)."""

from __future__ import annotations

from typing import Any

import griffe

from ocibuild._docs import markdown_docstring


class DocstringsAsMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)

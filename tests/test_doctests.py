"""The examples in the package's docstrings run and print what they say (``>>>`` lines marked
``# doctest: +SKIP`` need a registry, a project or the network and are only shown)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ocibuild"
MODULES = sorted(".".join(("ocibuild", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")
                 for p in PACKAGE.rglob("*.py") if p.name != "__main__.py")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {name} failed " \
                               f"(run: python -m pytest --doctest-modules {name.replace('.', '/')}.py)"


def test_examples_exist() -> None:
    """The parametrization above found the package (a test that collected nothing would pass)."""
    assert len(MODULES) > 50 and "ocibuild.cacherepo" in MODULES

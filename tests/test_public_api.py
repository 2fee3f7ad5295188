"""The public surface is exactly ``ocibuild.__all__`` (httpx-style discipline), every exported name
has a hand-written docstring, and importing ocibuild stays lean."""

from __future__ import annotations

import ast
import inspect
import itertools
import subprocess
import sys
import types
import typing
from pathlib import Path

import ocibuild

PACKAGE = Path(ocibuild.__file__).parent


def _alias_docs() -> dict[str, str]:
    """Module-level ``NAME = ...`` followed by a string literal: the docstring of a type alias."""
    docs: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        body = ast.parse(path.read_text()).body
        for stmt, nxt in itertools.pairwise(body):
            if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[stmt.targets[0].id] = nxt.value.value
    return docs


def test_all_names_exist_and_have_hand_written_docstrings() -> None:
    aliases = _alias_docs()
    for name in ocibuild.__all__:
        obj = getattr(ocibuild, name)
        if name == "__version__":
            continue
        if isinstance(obj, types.UnionType) or typing.get_origin(obj) is not None:  # a type alias
            assert aliases.get(name, "").strip(), f"type alias ocibuild.{name} has no docstring after it"
            continue
        doc = inspect.getdoc(obj) or ""
        assert doc.strip(), f"ocibuild.{name} has no docstring"
        # a dataclass without one gets "Name(*, field: type, ...)" generated: not a docstring
        assert not doc.startswith(f"{name}("), f"ocibuild.{name} has only the generated dataclass docstring"


def test_no_unlisted_public_names() -> None:
    public = {n for n, v in vars(ocibuild).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public - set(ocibuild.__all__) == set()


def test_issue_names_are_exported() -> None:
    for name in ("Platform", "PythonSpec", "Image", "Index", "Layer", "Sink", "sink_for", "publish", "mutate",
                 "BaseResolved", "LayerDone", "OutputDone", "BlobTransferred", "Progress", "Pushed", "Note"):
        assert name in ocibuild.__all__, name


LEAN = """
import sys
from pathlib import Path
import ocibuild
after_import = set(sys.modules)
out = Path(sys.argv[1])
(out / "app").mkdir()
(out / "app" / "main.py").write_text("print(1)\\n")
plan = ocibuild.BuildPlan(project_dir=out / "app", layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),))
result = ocibuild.build(plan, store=ocibuild.ContentStore(out / "cache"))
ocibuild.publish(result, [f"oci:{out / 'layout'}:v1"])
heavy = ("requests", "zstandard", "urllib3", "ocibuild.registry", "ocibuild.debian", "ocibuild.sources.registry",
         "ocibuild.sinks.registry", "ocibuild.python")
for label, loaded in (("import ocibuild", after_import), ("a scratch build to an OCI layout", set(sys.modules))):
    bad = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy))
    print(label, bad)
    assert not bad, (label, bad)
"""


def test_start_up_stays_lean(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", LEAN, str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "layout" / "index.json").is_file()

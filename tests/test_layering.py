"""The module layering holds: no module imports one above it (imports under ``TYPE_CHECKING`` are
types only and do not count). Lower layers first; a module may import its own layer and below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ocibuild"

LAYERS: list[tuple[str, ...]] = [
    ("spec",),
    ("errors", "version", "events"),
    ("store", "timestamps", "records", "explain", "progress"),
    ("layers",),
    ("image", "mutate", "imagefs"),
    ("transports", "plan", "debianspec", "transfer", "kube"),
    ("registry",),
    ("sources", "sinks", "inspect", "debian", "python", "referrers", "models", "signing", "cliargs", "cacherepo"),
    ("build", "publish", "config", "attest", "rebuild", "resolve", "evidence", "dev", "devrun", "rebase", "batch",
     "diff", "init"),
    ("cli", "signing_cli", "init_cli", "__main__", "__init__", "_docs"),
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _top(module: str) -> str:
    """``ocibuild.sinks.layout`` -> ``sinks``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every runtime import in ``path``, lazy ones inside functions too."""
    tree = ast.parse(path.read_text())
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "ocibuild"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] != "ocibuild":
                continue
            if target == "ocibuild":  # from . import x: x is a module of the package (or a root name)
                found += [(node.lineno, f"ocibuild.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


FILES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_it(path: Path) -> None:
    own = _top(_module_name(path))
    assert own in RANK, f"{own} is not placed in LAYERS; add it"
    bad = []
    for line, target in _imports(path):
        other = _top(target)
        if other not in RANK:
            if other == "__version__":
                bad.append(f"line {line}: imports the package root for __version__; use ocibuild.version")
            continue
        if RANK[other] > RANK[own]:
            bad.append(f"line {line}: {own} (layer {RANK[own]}) imports {target} (layer {RANK[other]})")
    assert not bad, "\n".join(bad)


def test_registry_client_never_imports_the_build_or_the_package_root() -> None:
    for path in (PACKAGE / "registry").glob("*.py"):
        for line, target in _imports(path):
            assert _top(target) not in ("build", "publish", "config", "cli", "plan", "__init__"), (path, line, target)
            assert target != "ocibuild", (path, line)


def test_plan_imports_no_implementation_module() -> None:
    allowed = {"errors", "spec", "layers", "timestamps", "records", "transports", "debianspec"}
    for line, target in _imports(PACKAGE / "plan.py"):
        assert _top(target) in allowed, (line, target)
        if _top(target) == "layers":
            assert target == "ocibuild.layers.compress", (line, target)  # the Compression value type

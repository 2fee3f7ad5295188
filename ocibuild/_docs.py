"""The docs site's generated reference, made from code while ``mkdocs build`` runs (``docs/hooks.py`` calls it).

A page per command from the argparse definitions, the build-file keys from the lists ``config`` checks keys
against with each key's description from its plan field's docstring, the Python API pages from
``ocibuild.__all__``, and the benchmark results from ``benchmarks/results``. None of it is written by hand,
so a new flag, key or public name appears in the docs by itself, and a key nobody described stops the build:

>>> from ocibuild.cli import _parser
>>> [c.name for c in commands(_parser())][:2]
['ocibuild', 'ocibuild build']
>>> page_for(("base", "debian"))
'reference/cli/base-debian.md'
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import html
import importlib
import inspect
import json
import os
import re
import sys
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLI_DIR = "reference/cli"
API_DIR = "reference/api"
RESULTS_DIR = "benchmarks/results"
METHODOLOGY = "benchmarks/methodology.md"
USAGE_WIDTH = 100

# --------------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|#])")


def escape(text: str) -> str:
    """``text`` (an argparse help or description: plain text) as Markdown that shows it as written.

    >>> escape("PREFIX/<name> *.yaml | x")
    'PREFIX/&lt;name&gt; \\\\*.yaml \\\\| x'
    """
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def code(text: str) -> str:
    """``text`` as a Markdown code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(markdown: str) -> str:
    """``markdown`` fit for a table cell: one line. Text has its ``|`` escaped already (``escape``); inside a
    code span a ``|`` needs no escape (Python-Markdown's tables do not split cells there) and must have none."""
    return markdown.replace("\n", " ")


# --------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Command:
    """One parser of the command line: ``path`` () is ``ocibuild`` itself, ("base", "debian") is
    ``ocibuild base debian``; ``help`` is the one line its parent lists it with."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str

    @property
    def name(self) -> str:
        return " ".join(("ocibuild", *self.path))

    @property
    def page(self) -> str:
        return page_for(self.path)


def page_for(path: Sequence[str]) -> str:
    """The docs page (relative to ``docs/``) of the command at ``path``."""
    return f"{CLI_DIR}/{'-'.join(path) or 'index'}.md"


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction[argparse.ArgumentParser]]:
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> list[Command]:
    """``parser`` and every sub-command below it, depth first, in the order they were added."""
    out = [Command(path=path, parser=parser, help=help or parser.description or "")]
    for action in _subparsers(parser):
        helps = {a.dest: a.help or "" for a in action._choices_actions}
        for name, sub in action.choices.items():
            if helps.get(name) == argparse.SUPPRESS:
                continue
            out += commands(sub, (*path, name), helps.get(name, ""))
    return out


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]


def _metavar(action: argparse.Action) -> str:
    """How argparse shows ``action``'s value(s), e.g. ``LOCATION``, ``[PROJECT ...]``, ``{spdx,cyclonedx,none}``."""
    if action.metavar is not None:
        name = " ".join(action.metavar) if isinstance(action.metavar, tuple) else str(action.metavar)
    elif action.choices is not None:
        name = "{" + ",".join(str(c) for c in action.choices) + "}"
    else:
        name = action.dest.upper() if action.option_strings else action.dest
    nargs = action.nargs
    if nargs is None or nargs == 1:
        return name
    if nargs == "?":
        return f"[{name}]"
    if nargs == "*":
        return f"[{name} ...]"
    if nargs == "+":
        return f"{name} [{name} ...]"
    if isinstance(nargs, int):
        return " ".join([name] * nargs)
    return name  # argparse.REMAINDER / PARSER


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def invocation(action: argparse.Action) -> list[str]:
    """The ways to write ``action``: ``["-o LOCATION", "--output LOCATION"]``, ``["--json"]``, ``["SRC"]``."""
    if not action.option_strings:
        return [_metavar(action)]
    value = f" {_metavar(action)}" if _takes_value(action) else ""
    return [f"{flag}{value}" for flag in action.option_strings]


def expand_help(action: argparse.Action, prog: str) -> str:
    """``action.help`` with argparse's ``%(default)s``-style fields filled in, as ``--help`` shows it."""
    text = action.help or ""
    if "%" not in text:
        return text
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = prog
    for key, value in list(params.items()):
        if hasattr(value, "__name__"):
            params[key] = value.__name__
    if params.get("choices") is not None:
        params["choices"] = ", ".join(str(c) for c in params["choices"])
    return text % params


def _default(action: argparse.Action) -> str | None:
    """The default worth showing: not for flags, "not given" or empty repeatable options."""
    value = action.default
    if not _takes_value(action) or value is None or value is argparse.SUPPRESS or value == []:
        return None
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _notes(action: argparse.Action) -> list[str]:
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if isinstance(action, argparse._AppendAction | argparse._ExtendAction) and "repeatable" not in (action.help or ""):
        notes.append("repeatable")
    default = _default(action)
    if default is not None and "default" not in (action.help or ""):
        notes.append(f"default: {code(default)}")
    return notes


def usage(parser: argparse.ArgumentParser) -> str:
    """``parser``'s usage line(s) at a fixed width (not the terminal's), without the ``usage:`` prefix."""
    formatter = argparse.HelpFormatter(prog=parser.prog, width=USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _action_table(actions: Sequence[argparse.Action], prog: str) -> list[str]:
    lines = ["| Option | Description |" if any(a.option_strings for a in actions) else "| Argument | Description |",
             "|---|---|"]
    for action in actions:
        spelled = ", ".join(code(x) for x in invocation(action))
        text = escape(expand_help(action, prog))
        notes = _notes(action)
        if notes:
            text += (" " if text else "") + "(" + "; ".join(notes) + ")"
        lines.append(f"| {_cell(spelled)} | {_cell(text)} |")
    return lines


def _groups(parser: argparse.ArgumentParser) -> list[tuple[str, list[argparse.Action]]]:
    """The parser's visible arguments by group: positionals, options, then the named groups."""
    out = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a in _visible(parser)]
        if actions:
            out.append((group.title or "options", actions))
    return out


def command_section(command: Command, level: int = 2) -> str:
    """Usage, description, sub-commands and every visible argument of ``command`` (headings at ``level``)."""
    h = "#" * level
    parser = command.parser
    lines = ["```text", usage(parser), "```", ""]
    if parser.description:
        lines += [escape(parser.description), ""]
    for title, actions in _groups(parser):
        lines += [f"{h} {escape(title[:1].upper() + title[1:])}", "", *_action_table(actions, parser.prog), ""]
    children = [c for c in commands(parser, command.path) if len(c.path) == len(command.path) + 1]
    if children:
        lines += [f"{h} Commands", "", "| Command | Description |", "|---|---|"]
        lines += [f"| [{c.name}]({_relative(command.page, c.page)}) | {_cell(escape(c.help))} |" for c in children]
        lines.append("")
    if parser.epilog:
        lines += [escape(parser.epilog), ""]
    return "\n".join(lines)


def _relative(from_page: str, to_page: str) -> str:
    return os.path.relpath(to_page, os.path.dirname(from_page))


def command_page(command: Command) -> str:
    """The whole page of one command."""
    intro = f"{escape(command.help)}\n\n" if command.help and command.help != command.parser.description else ""
    return (f"# {command.name}\n\n{intro}{command_section(command)}\n"
            "*Generated from the argparse definitions of `ocibuild` (`ocibuild._docs`).*\n")


@contextlib.contextmanager
def _portable_defaults() -> Iterator[None]:
    """Defaults that name the user's cache folder show ``~/.cache/ocibuild``, not the build machine's."""
    saved = {k: os.environ.get(k) for k in ("OCIBUILD_CACHE", "XDG_CACHE_HOME")}
    os.environ.pop("OCIBUILD_CACHE", None)
    os.environ["XDG_CACHE_HOME"] = "~/.cache"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def cli_commands() -> list[Command]:
    """Every command of ``ocibuild``'s own parser."""
    from .cli import _parser

    with _portable_defaults():
        return commands(_parser())


# --------------------------------------------------------------------------------------------------
# build file
# --------------------------------------------------------------------------------------------------


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a class's fields (``name: type`` then a string), read from its source."""
    source = Path(inspect.getfile(cls)).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            docs = {}
            for stmt, nxt in zip(node.body, node.body[1:], strict=False):
                if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                        and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                        and isinstance(nxt.value.value, str)):
                    docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
            return docs
    raise LookupError(f"class {cls.__name__} not found in {inspect.getfile(cls)}")


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyTable:
    """One table of a TOML file: its ``keys`` (the list the parser checks keys against), described by the
    same-named field of the first of ``classes`` that has one, by ``aliases`` (key -> field name), or by
    ``notes`` (key -> text) for keys that are no field."""

    title: str
    prefix: str
    keys: tuple[str, ...]
    classes: tuple[type, ...] = ()
    aliases: Mapping[str, str] = dataclasses.field(default_factory=dict)
    notes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    intro: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class KeyDoc:
    key: str
    text: str
    field: str = ""
    type: str = ""


class UndocumentedKey(LookupError):
    """A key the parser accepts that nothing describes."""


def describe(table: KeyTable) -> list[KeyDoc]:
    """Every key of ``table`` with its description; ``UndocumentedKey`` if one has none."""
    out = []
    for key in table.keys:
        if key in table.notes:
            out.append(KeyDoc(key=key, text=table.notes[key]))
            continue
        name = table.aliases.get(key, key)
        for cls in table.classes:
            fields = {f.name: f for f in dataclasses.fields(cls)}
            if name in fields:
                text = field_docs(cls).get(name, "")
                if not text.strip():
                    raise UndocumentedKey(f"{table.prefix}{key}: {cls.__name__}.{name} has no docstring; write one "
                                          f"under the field in {inspect.getfile(cls)}")
                if name != key:
                    text = f"The same as [`{table.prefix}{name}`](#{key_anchor(table.prefix + name)})."
                out.append(KeyDoc(key=key, text=text, field=f"{cls.__name__}.{name}", type=str(fields[name].type)))
                break
        else:
            raise UndocumentedKey(f"{table.prefix}{key}: no field of {', '.join(c.__name__ for c in table.classes)} "
                                  f"is named {name!r}; describe it in ocibuild/_docs.py")
    return out


WORKSPACE_NOTES = {
    "projects": "Globs of project folders (each with an `ocibuild.toml` or a `pyproject.toml`), relative to the "
                "workspace file; a matching folder that is no project stands for every project below it.",
    "output": "The default output of every project, a location or a list of them; `{name}` is the project "
              "folder's name, e.g. `\"docker://127.0.0.1:5000/fleet/{name}:latest\"`.",
}
PROJECT_NOTES = {
    "path": "The project folder, relative to the workspace file. Required.",
    "name": "The project's name, for `{name}` and the summary (lowercase letters and digits, separated by `.`, "
            "`_` or `-`). Default: the folder's name.",
    "output": "The project's own outputs (a location or a list of them), instead of `[workspace] output`.",
}


def build_file_tables() -> list[KeyTable]:
    """The tables of a build file (``ocibuild.toml`` or ``[tool.ocibuild]``), each with the keys it accepts."""
    from . import config
    from .debianspec import DebianSpec
    from .plan import BuildPlan, ImageSettings, LayerSpec, ModelSpec, PythonSpec
    from .transports import DebianBase

    return [
        KeyTable(title="Top level", prefix="", keys=config.TOP_KEYS, classes=(ImageSettings, BuildPlan),
                 aliases={"platform": "platforms"}),
        KeyTable(title="[[layers]]", prefix="layers.", keys=config.LAYER_KEYS, classes=(LayerSpec,),
                 intro="One table per layer, in order."),
        KeyTable(title="[python]", prefix="python.", keys=config.PYTHON_KEYS, classes=(PythonSpec,),
                 intro="Python dependencies, installed into a virtual environment without running pip in the image."),
        KeyTable(title="[[models]]", prefix="models.", keys=config.MODEL_KEYS, classes=(ModelSpec,),
                 intro="One table per model: files built into an image of their own that the app refers to."),
        KeyTable(title="[base.debian]", prefix="base.debian.", keys=config.DEBIAN_KEYS,
                 classes=(DebianSpec, DebianBase),
                 intro="A base assembled from Debian packages (instead of a `base` location)."),
    ]


def workspace_tables() -> list[KeyTable]:
    """The tables of a workspace file (``ocibuild-workspace.toml``, ``ocibuild build --workspace``)."""
    from . import batch

    return [
        KeyTable(title="[workspace]", prefix="workspace.", keys=batch.WORKSPACE_KEYS, notes=WORKSPACE_NOTES),
        KeyTable(title="[[project]]", prefix="project.", keys=batch.PROJECT_KEYS, notes=PROJECT_NOTES,
                 intro="Optional and repeatable: a project with settings of its own."),
    ]


def key_anchor(qualified: str) -> str:
    """The HTML id of a key's heading: ``python.requirements`` -> ``python-requirements``."""
    return "key-" + re.sub(r"[^a-z0-9]+", "-", qualified.lower()).strip("-")


def keys_section(tables: Sequence[KeyTable], level: int = 2) -> str:
    """A heading per table and per key (``python.requirements``), each key with its description."""
    lines = []
    for table in tables:
        anchor = re.sub(r"[^a-z0-9]+", "-", table.title.lower()).strip("-")
        lines += [f"{'#' * level} {code(table.title) if '[' in table.title else table.title} {{ #{anchor} }}", ""]
        if table.intro:
            lines += [table.intro, ""]
        for doc in describe(table):
            qualified = table.prefix + doc.key
            lines += [f"{'#' * (level + 1)} {code(qualified)} {{ #{key_anchor(qualified)} }}", "", doc.text, ""]
            if doc.field:
                lines += [f"<small>In a build plan: {code(doc.field)}, {code(doc.type)}.</small>", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the Python API
# --------------------------------------------------------------------------------------------------

API_GROUPS = (  # (page, title, the modules whose public names it shows); a module not listed gets a page of its own
    ("build", "Build and publish", ("plan", "config", "build", "publish", "store", "layers")),
    ("images", "Images and layers", ("image", "mutate", "spec", "inspect")),
    ("locations", "Locations, sources and sinks", ("transports", "sources", "sinks")),
    ("workflows", "Workflows: models, fleets, rebase, dev, init", ("models", "batch", "rebase", "dev", "init")),
    ("events", "Events", ("events",)),
    ("errors", "Errors", ("errors",)),
)


def public_names() -> list[tuple[str, str]]:
    """``(module, name)`` for each name of ``ocibuild.__all__`` in the order ``ocibuild/__init__.py`` imports
    them, ``module`` being where it comes from (``mutate`` is a module itself: ``("mutate", "mutate")``)."""
    import ocibuild

    found: dict[str, str] = {}
    for node in ast.parse(Path(ocibuild.__file__).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                found[alias.asname or alias.name] = node.module or alias.name
    missing = sorted(set(ocibuild.__all__) - set(found))
    if missing:
        raise LookupError(f"ocibuild.__all__ names {', '.join(missing)}, which ocibuild/__init__.py does not import "
                          "from a module of its own")
    return [(module, name) for name, module in found.items() if name in ocibuild.__all__ and not name.startswith("__")]


def api_pages() -> dict[str, tuple[str, list[str]]]:
    """``page path -> (title, the public names on it)``: every name of ``ocibuild.__all__`` on one page."""
    place = {module: (i, j, slug, title) for i, (slug, title, modules) in enumerate(API_GROUPS)
             for j, module in enumerate(modules)}
    names = public_names()
    ordered = sorted(names, key=lambda mn: place.get(mn[0], (len(API_GROUPS), 0, mn[0], ""))[:3])
    pages: dict[str, tuple[str, list[str]]] = {}
    for module, name in ordered:
        _, _, slug, title = place.get(module, (0, 0, module, f"ocibuild.{module}"))
        pages.setdefault(f"{API_DIR}/{slug}.md", (title, []))[1].append(name)
    return pages


def api_identifier(name: str) -> str:
    """What mkdocstrings renders for ``ocibuild.<name>``: the name itself, unless a function shares its name
    with the module defining it (``build``, ``publish``, ``rebase``), where the module would be found instead.

    >>> api_identifier("BuildPlan"), api_identifier("build"), api_identifier("mutate")
    ('ocibuild.BuildPlan', 'ocibuild.build.build', 'ocibuild.mutate')
    """
    import ocibuild

    obj = getattr(ocibuild, name)
    if not isinstance(obj, types.ModuleType) and getattr(obj, "__module__", "") == f"ocibuild.{name}":
        return f"ocibuild.{name}.{name}"
    return f"ocibuild.{name}"


API_INTROS = {"errors": "errors"}  # page -> the module whose docstring opens it, as written (the exception tree)


def api_page(title: str, names: Sequence[str], intro: str = "") -> str:
    parts = [f"# {title}", ""]
    if intro:
        parts += ["```text", intro.strip(), "```", ""]
    parts += [f"::: {api_identifier(name)}\n" for name in names]
    parts.append("*Generated from the docstrings of `ocibuild.__all__`.*\n")
    return "\n".join(parts)


_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")


def markdown_docstring(text: str) -> str:
    """A docstring written for ``help()`` and doctest, as Markdown: ``>>>`` examples (with their output, up to
    a blank line) fenced as ``pycon``, a paragraph's closing ``::`` (reST's "code follows") as ``:``, and
    Sphinx roles such as ``:func:`name``` as code."""
    out: list[str] = []
    lines = _ROLE.sub(r"``\1``", text).split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(">>>"):
            indent = line[:len(line) - len(stripped)]
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i].removeprefix(indent))
                i += 1
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        if stripped.endswith("::") and not stripped.startswith("::"):
            line = line[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------------


def benchmark_pages(repo: Path) -> dict[str, str | bytes]:
    """``benchmarks/results/*.md`` (and the plots they show) as pages, as the last run left them, and
    ``benchmarks/README.md`` as the methodology."""
    results = repo / "benchmarks" / "results"
    out: dict[str, str | bytes] = {}
    readme = repo / "benchmarks" / "README.md"
    if readme.is_file():
        out[METHODOLOGY] = readme.read_text(encoding="utf-8")
    for path in sorted(results.glob("*.md"), key=lambda p: (p.stem != "summary", p.stem)):
        out[f"{RESULTS_DIR}/{path.name}"] = path.read_text(encoding="utf-8")
    for path in sorted(results.glob("*.png")):
        out[f"{RESULTS_DIR}/{path.name}"] = path.read_bytes()
    return out


def page_title(markdown: str, fallback: str) -> str:
    """A short title for the nav: the page's first ``# heading`` up to a colon or parenthesis, else ``fallback``.

    >>> page_title("# Inner loop: one-line edit -> image (2026-12-07 15:14)", "inner_loop")
    'Inner loop'
    """
    for line in markdown.splitlines():
        if line.startswith("# "):
            title = re.split(r"[:(]", line[2:], maxsplit=1)[0].strip().replace("`", "")
            return title if 0 < len(title) <= 40 else fallback
    return fallback


# --------------------------------------------------------------------------------------------------
# everything
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Site:
    """What the docs build adds: ``pages`` (path under ``docs/`` -> content), ``nav`` (a page the nav lists ->
    entries to list after it, as ``{title: path}``) and ``sections`` (a marker's name -> the Markdown that
    replaces ``<!-- ocibuild-docs: NAME -->`` in a hand-written page)."""

    pages: dict[str, str | bytes]
    nav: dict[str, list[dict[str, str]]]
    sections: dict[str, str]


def site(repo: Path) -> Site:
    """Generate everything from the code and results under ``repo``."""
    pages: dict[str, str | bytes] = {}
    nav: dict[str, list[dict[str, str]]] = {}
    cmds = cli_commands()
    root, rest = cmds[0], cmds[1:]
    for command in rest:
        pages[command.page] = command_page(command)
    nav[page_for(())] = [{" ".join(c.path): c.page} for c in rest]
    sections = {
        "cli": command_section(root),
        "build-file-keys": keys_section(build_file_tables()),
        "workspace-keys": keys_section(workspace_tables(), level=3),
    }
    api = api_pages()
    for path, (title, names) in api.items():
        intro = API_INTROS.get(Path(path).stem)
        pages[path] = api_page(title, names, inspect.getdoc(importlib.import_module(f"ocibuild.{intro}")) or ""
                               if intro else "")
    nav[f"{API_DIR}/index.md"] = [{title: path} for path, (title, _) in api.items()]
    bench = benchmark_pages(repo)
    pages.update(bench)
    nav["benchmarks/index.md"] = [
        {"How they are measured" if path == METHODOLOGY else "Summary" if Path(path).stem == "summary"
         else page_title(text, Path(path).stem): path}
        for path, text in bench.items() if isinstance(text, str)]
    return Site(pages=pages, nav=nav, sections=sections)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ocibuild._docs [DIR]``: write the generated pages under DIR (to read them without mkdocs)."""
    args = list(sys.argv[1:] if argv is None else argv)
    out = Path(args[0] if args else "site-generated")
    generated = site(Path(__file__).resolve().parents[1])
    for rel, content in generated.pages.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    for name, text in generated.sections.items():
        (out / f"section-{name}.md").write_text(text, encoding="utf-8")
    print(json.dumps({"pages": len(generated.pages), "sections": sorted(generated.sections)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The docs site builds with ``mkdocs build --strict`` (a broken link or anchor fails), and its generated
reference matches the code: every flag of every command (walked from the parser here, not taken from the
generator), every build-file key (from the lists ``config`` checks keys against) and every public name."""

from __future__ import annotations

import argparse
import dataclasses
import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import ocibuild
from ocibuild import _docs, batch, config
from ocibuild.cli import _parser

REPO = Path(__file__).resolve().parents[1]

# each list of keys the build-file and workspace parsers check against, and where its keys sit in the file
KEY_LISTS = {
    (config, "TOP_KEYS"): "",
    (config, "LAYER_KEYS"): "layers.",
    (config, "PYTHON_KEYS"): "python.",
    (config, "MODEL_KEYS"): "models.",
    (config, "DEBIAN_KEYS"): "base.debian.",
}
WORKSPACE_KEY_LISTS = {(batch, "WORKSPACE_KEYS"): "workspace.", (batch, "PROJECT_KEYS"): "project."}


class _Page(HTMLParser):
    """The article of a built page: its text, the text of each ``<code>`` and every element id."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.codes: list[str] = []
        self.ids: set[str] = set()
        self._code: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(v for k, v in attrs if k == "id" and v)
        if tag == "code":
            self._code = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "code" and self._code is not None:
            self.codes.append("".join(self._code))
            self._code = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._code is not None:
            self._code.append(data)


def _read(path: Path) -> _Page:
    assert path.is_file(), f"{path} was not built"
    source = path.read_text(encoding="utf-8")
    start, end = source.find("<article"), source.find("</article>")
    assert start >= 0 and end > start, f"{path} has no article"
    page = _Page()
    page.feed(source[start:end])
    return page


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return out


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...],
                                                                                       argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            hidden = {a.dest for a in action._choices_actions if a.help == argparse.SUPPRESS}
            for name, sub in action.choices.items():
                if name not in hidden:
                    found += _commands(sub, (*path, name))
    return found


def _cli_page(site: Path, path: tuple[str, ...]) -> Path:
    rel = Path(_docs.page_for(path)).with_suffix("")
    return site / (rel.parent if rel.name == "index" else rel) / "index.html"


def test_site_builds_with_every_page(site: Path) -> None:
    for rel in ("index.html", "getting-started/index.html", "reference/build-file/index.html",
                "reference/locations/index.html", "reference/api/index.html", "benchmarks/index.html",
                "benchmarks/methodology/index.html", "development/index.html"):
        assert (site / rel).is_file(), rel
    for sub in ("concepts", "guides"):
        for md in (REPO / "docs" / sub).glob("*.md"):
            assert (site / sub / md.stem / "index.html").is_file(), md
    for path in (REPO / "benchmarks" / "results").glob("*.md"):
        assert (site / "benchmarks" / "results" / path.stem / "index.html").is_file(), path
    for path in (REPO / "benchmarks" / "results").glob("*.png"):
        assert (site / "benchmarks" / "results" / path.name).read_bytes() == path.read_bytes()
    assert not list(site.rglob("*.py")), "the hooks must not be published"


def test_every_command_and_flag_is_on_its_page(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCIBUILD_CACHE", raising=False)  # the docs show the cache folder as ~/.cache/ocibuild
    monkeypatch.setenv("XDG_CACHE_HOME", "~/.cache")
    commands = _commands(_parser())
    assert {"build", "base", "verify"} <= {p[0] for p, _ in commands if p} and ("base", "debian") in dict(commands)
    for path, parser in commands:
        page = _read(_cli_page(site, path))
        text = _flat("".join(page.text))
        shown = {}
        for spelled in page.codes:
            first, _, rest = spelled.partition(" ")
            shown.setdefault(first, []).append(rest)
        assert f"ocibuild {' '.join(path)}".strip() in text
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, argparse._SubParsersAction):
                for name in action.choices:
                    if not any(a.dest == name and a.help == argparse.SUPPRESS for a in action._choices_actions):
                        assert f"ocibuild {' '.join((*path, name))}" in text, (path, name)
                        assert _cli_page(site, (*path, name)).is_file()
                continue
            where = f"ocibuild {' '.join(path)}: {action.option_strings or action.dest}"
            metavar = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices
                                         else action.dest.upper() if action.option_strings else action.dest)
            for flag in action.option_strings:
                assert flag in shown, f"{where}: {flag} is not on the page"
                if action.nargs != 0:
                    assert any(str(metavar) in rest for rest in shown[flag]), f"{where}: no {metavar} after {flag}"
            if not action.option_strings:
                assert any(str(metavar) in c for c in page.codes), f"{where}: positional {metavar} not shown"
            assert _flat(formatter._expand_help(action)) in text, f"{where}: its help is not on the page"
            default = action.default
            if action.nargs != 0 and default not in (None, [], argparse.SUPPRESS):
                spelled = " ".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
                assert spelled in text, f"{where}: default {default!r} not shown"


def test_every_build_file_key_is_described(site: Path) -> None:
    found = {(module, name) for module in (config, batch) for name in vars(module) if name.endswith("_KEYS")}
    assert found == set(KEY_LISTS) | set(WORKSPACE_KEY_LISTS), \
        "a new list of keys: give it a table in ocibuild/_docs.py (build_file_tables) and list it here"
    page = _read(site / "reference" / "build-file" / "index.html")
    text = _flat("".join(page.text))
    for (module, name), prefix in {**KEY_LISTS, **WORKSPACE_KEY_LISTS}.items():
        keys = getattr(module, name)
        assert keys, name
        for key in keys:
            anchor = _docs.key_anchor(prefix + key)
            assert anchor in page.ids, f"build-file key {prefix + key} ({module.__name__}.{name}) has no entry"
            after = text.split(f"{prefix + key}", 1)[1][:200]
            assert len(after.strip()) > 20, f"{prefix + key} has no description"


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    ids: set[str] = set()
    for page in (site / "reference" / "api").glob("*/index.html"):
        ids |= _read(page).ids
    for name in ocibuild.__all__:
        if name == "__version__":
            continue
        assert {f"ocibuild.{name}", f"ocibuild.{name}.{name}"} & ids, f"ocibuild.{name} is on no API page"
    assert "ocibuild.BuildPlan.platforms" in ids  # fields are documented with their docstrings


def test_a_new_flag_appears_without_docs_work() -> None:
    parser = _parser()
    commands = _docs.commands(parser)
    build = next(c for c in commands if c.path == ("build",))
    build.parser.add_argument("--brand-new", metavar="THING", default="x1", help="a flag %(prog)s just grew")
    page = _docs.command_page(build)
    assert "`--brand-new THING`" in page and "a flag ocibuild build just grew" in page and "`x1`" in page


def test_a_key_without_a_docstring_stops_the_build() -> None:
    @dataclasses.dataclass
    class Table:
        documented: int = 0
        """Has a docstring."""
        undocumented: int = 0

    ok = _docs.KeyTable(title="[t]", prefix="t.", keys=("documented",), classes=(Table,))
    assert [d.text for d in _docs.describe(ok)] == ["Has a docstring."]
    with pytest.raises(_docs.UndocumentedKey, match=r"t\.undocumented"):
        _docs.describe(_docs.KeyTable(title="[t]", prefix="t.", keys=("undocumented",), classes=(Table,)))
    with pytest.raises(_docs.UndocumentedKey, match=r"t\.nowhere"):
        _docs.describe(_docs.KeyTable(title="[t]", prefix="t.", keys=("nowhere",), classes=(Table,)))


@pytest.mark.parametrize(("text", "markdown"), [
    ("Text.\n\n>>> f(1)\n2\n\nMore.", "Text.\n\n```pycon\n>>> f(1)\n2\n```\n\nMore."),
    ("Build, then publish::\n\n    code()", "Build, then publish:\n\n    code()"),
    ("Run :func:`ocibuild.build`.", "Run ``ocibuild.build``."),
    ("Plain ``code`` stays.", "Plain ``code`` stays."),
])
def test_docstrings_as_markdown(text: str, markdown: str) -> None:
    assert _docs.markdown_docstring(text) == markdown


def test_help_text_is_shown_as_written() -> None:
    raw = "PREFIX/<project folder name> *.yaml | [x] __main__.py `a`"
    rendered = _docs.escape(raw)
    assert "<" not in rendered and "|" not in rendered.replace("\\|", "")
    assert html.unescape(re.sub(r"\\(.)", r"\1", rendered)) == raw


def test_readme_keeps_the_commands_and_links_to_existing_pages() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.split("```bash")[1].split("```")[0].strip().splitlines()[0].startswith("bash examples/demo.sh")
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert len(links) > 15
    for link in links:
        assert (REPO / link).is_file(), link
    page = (REPO / "docs" / "benchmarks" / "index.md").read_text()
    assert "<!-- benchmark-table:start -->" in page and "<!-- benchmark-table:end -->" in page  # report.py's target

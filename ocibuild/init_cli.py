"""``ocibuild init [PROJECT]``: write a build file from what the project holds (:func:`ocibuild.init.init_project`),
saying what was decided and why, one line each on stderr; the files written go to stdout. The ``ocibuild``
command adds it with :func:`add_parsers`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parsers", "cmd_init"]


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``init`` to the ``ocibuild`` command's subcommands (run by :func:`cmd_init`)."""
    p = sub.add_parser(
        "init", help="write a build file (ocibuild.toml) from what a project holds",
        description="Write ocibuild.toml (or, with --pyproject, a [tool.ocibuild] table in pyproject.toml) and a "
                    ".ociignore for PROJECT (default: the current folder) from what it finds: the dependencies "
                    "(uv.lock, pylock.toml, requirements*.txt, [project]), the entrypoint ([project.scripts], a "
                    "FastAPI/Starlette/Flask/Django app, a __main__.py), folders of model weights. Nothing of the "
                    "project is imported or run. Prints what it decided and why; never replaces an existing file "
                    "without --force.")
    p.add_argument("project", nargs="?", default=".", type=Path, help="the project folder (default: .)")
    p.add_argument("--pyproject", action="store_true",
                   help="append a [tool.ocibuild] table to pyproject.toml instead of writing ocibuild.toml")
    p.add_argument("--base", metavar="LOCATION",
                   help="write base = LOCATION (default: none, i.e. Debian's python3 built from packages)")
    p.add_argument("--models", choices=("layers", "images"), default="layers",
                   help="model folders as layers of the app image (default) or as [[models]] images of their own")
    p.add_argument("--force", action="store_true",
                   help="replace an existing ocibuild.toml, [tool.ocibuild] table or .ociignore")
    p.add_argument("--dry-run", action="store_true", help="write nothing; print the build file on stdout")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    """Run ``ocibuild init``: 0 when the files are written, or left unchanged because they exist."""
    from .init import init_project

    result = init_project(args.project, base=args.base, pyproject=args.pyproject, models=args.models,
                          force=args.force, dry_run=args.dry_run)
    width = max((len(d.topic) for d in result.decisions), default=0)
    for decision in result.decisions:
        print(f"{decision.topic:<{width}}  {decision.text}", file=sys.stderr)
    if not result.text:  # the build file exists: nothing was looked at or written
        kept = result.kept[0]
        what = f"{kept} has a [tool.ocibuild] table" if kept.name == "pyproject.toml" else f"{kept} exists"
        print(f"{what}; left unchanged (use --force to overwrite)", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    elif args.dry_run:
        sys.stdout.write(result.text)
        print("nothing written (--dry-run)", file=sys.stderr)
    else:
        for path in result.written:
            print(path)
    return 0

"""The ``ocibuild`` command: a thin layer over the library (parse -> plan -> build -> report)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .build import build
from .config import Overrides, load_plan
from .errors import ConfigError, OcibuildError
from .events import BaseResolved, Event, LayerDone, OutputDone
from .store import ContentStore, default_cache_dir


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


class _Reporter:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: Event) -> None:
        if self.quiet:
            return
        if isinstance(event, BaseResolved):
            at = f"@{event.digest}" if event.digest else ""
            line = f"base    {event.base}{at} ({event.layers} layers, {event.platform})"
        elif isinstance(event, LayerDone):
            state = "cached" if event.cached else "built "
            line = (f"layer   {event.label:<20} {state} {_size(event.descriptor.size):>9}  "
                    f"{event.files:>5} files  {event.descriptor.digest.short}  {event.seconds:.2f}s")
        elif isinstance(event, OutputDone):
            line = f"wrote   {event.output}  ({event.seconds:.2f}s)"
        else:  # pragma: no cover - every event type is handled above
            return
        print(line, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocibuild", description="Build OCI images from Python projects, no daemon.")
    p.add_argument("--version", action="version", version=f"ocibuild {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("build", help="build an image from a project folder",
                       description="Build an image from PROJECT (default: the current folder).")
    b.add_argument("project", nargs="?", default=".", help="project folder (default: .)")
    b.add_argument("--base", help="base image: scratch, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE")
    b.add_argument("--output", "-o", action="append", default=[], metavar="LOCATION",
                   help="where to write the image (repeatable): oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                        "docker-archive:FILE[:REPO:TAG]")
    b.add_argument("--platform", help="target platform, e.g. linux/amd64 (default: the base's or the host's)")
    b.add_argument("--entrypoint", help='entrypoint as a JSON array or a plain command, e.g. \'["python3","app.py"]\'')
    b.add_argument("--cmd", help="default arguments (JSON array or plain command)")
    b.add_argument("--workdir", help="working directory in the image")
    b.add_argument("--user", help="user (name or uid[:gid]) the container runs as")
    b.add_argument("--env", action="append", default=[], metavar="K=V", help="environment variable (repeatable)")
    b.add_argument("--label", action="append", default=[], metavar="K=V", help="config label (repeatable)")
    b.add_argument("--annotation", action="append", default=[], metavar="K=V", help="manifest annotation")
    b.add_argument("--port", action="append", default=[], help="exposed port, e.g. 8080 or 53/udp")
    b.add_argument("--layer", action="append", default=[], metavar="SRC:DEST",
                   help="file layer (repeatable); replaces the build file's layers")
    b.add_argument("--compression", help="gzip (default), zstd or none, optionally :LEVEL")
    b.add_argument("--config", type=Path, help="build file (default: PROJECT/ocibuild.toml or pyproject.toml)")
    b.add_argument("--cache-dir", type=Path, help=f"content store (default: $OCIBUILD_CACHE or {default_cache_dir()})")
    b.add_argument("--quiet", "-q", action="store_true", help="print only the image digest")
    b.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    b.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return p


def _cmd_build(args: argparse.Namespace) -> int:
    overrides = Overrides(
        base=args.base, platform=args.platform, outputs=tuple(args.output), entrypoint=args.entrypoint,
        cmd=args.cmd, workdir=args.workdir, user=args.user, env=tuple(args.env), labels=tuple(args.label),
        annotations=tuple(args.annotation), ports=tuple(args.port), layers=tuple(args.layer),
        compression=args.compression,
    )
    plan = load_plan(Path(args.project), overrides=overrides, config_file=args.config)
    if not plan.outputs:
        raise ConfigError("no output given: add --output LOCATION (e.g. --output oci:out/app:latest) "
                          "or 'outputs = [...]' in the build file")
    store = ContentStore(args.cache_dir) if args.cache_dir else ContentStore.default()
    result = build(plan, store=store, on_event=_Reporter(args.quiet or args.json))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result.digest)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return _cmd_build(args)
    except OcibuildError as exc:
        if args.debug or os.environ.get("OCIBUILD_DEBUG"):
            traceback.print_exc()
        print(f"ocibuild: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ocibuild: interrupted; nothing was written to the outputs", file=sys.stderr)
        return 130
    except OSError as exc:  # an I/O failure no layer above turned into an OcibuildError
        if args.debug:
            traceback.print_exc()
        where = f" {exc.filename}" if exc.filename else ""
        print(f"ocibuild: error: cannot access{where}: {exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

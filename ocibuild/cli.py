"""The ``ocibuild`` command: a thin layer over the library (parse -> plan -> build -> report)."""

from __future__ import annotations

import argparse
import errno
import getpass
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .build import build
from .cliargs import (
    client_from,
    creds_from,
    platform_from,
    registry_options,
    store_and_registry_options,
    store_from,
)
from .config import DEFAULT_DEBIAN_PACKAGES, Overrides, load_plan
from .errors import ConfigError, OcibuildError
from .events import Event, Note, human_size
from .progress import Reporter as _Reporter
from .progress import close_reporters
from .publish import publish
from .sinks import sink_for
from .spec import Platform, Reference
from .store import ContentStore, atomic_write_bytes, default_cache_dir
from .version import __version__

if TYPE_CHECKING:  # the registry client (and requests) load only when a registry is involved
    from collections.abc import Callable

    from .dev import Cycle
    from .devrun import ContainerRunner
    from .evidence import Evidence
    from .plan import BuildPlan
    from .registry import CredentialProvider, RegistryClient
    from .transports import Location


_registry_options = registry_options
_store_and_registry_options = store_and_registry_options


def _result_options(p: argparse.ArgumentParser, what: str, *, debug: bool = True) -> None:
    p.add_argument("--digest-file", type=Path, metavar="FILE", help=f"write the {what} digest to FILE")
    p.add_argument("--quiet", "-q", action="store_true", help=f"print only the {what} digest")
    p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    p.add_argument("--result-json", type=Path, metavar="FILE",
                   help="write the --json document to FILE (for skaffold, Tilt and other build systems)")
    if debug:
        p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def _write_result_files(args: argparse.Namespace, digests: str, document: object) -> None:
    """``--digest-file`` (``digests``: one per line) and ``--result-json``, each written atomically."""
    for flag, path, data in (("--digest-file", args.digest_file, digests),
                             ("--result-json", args.result_json, json.dumps(document, indent=2) + "\n")):
        if path is not None:
            try:
                atomic_write_bytes(path, data.encode())
            except OSError as exc:
                raise ConfigError(f"{flag} {path}: {exc.strerror}") from None


def _write_results(args: argparse.Namespace, digest: str, document: dict[str, object]) -> None:
    """``--digest-file`` and ``--result-json`` (each written atomically), then stdout: the digest or ``--json``."""
    _write_result_files(args, digest + "\n", document)
    print(json.dumps(document, indent=2) if args.json else digest)


def _project_arguments(p: argparse.ArgumentParser) -> None:
    """What ``build`` and ``dev`` share: the project, the build file's overrides, the store, credentials."""
    p.add_argument("project", nargs="?", default=".", help="project folder (default: .)")
    p.add_argument("--base", help="base image: scratch, oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                                  "docker-archive:FILE, docker://REF or REF")
    p.add_argument("--output", "-o", action="append", default=[], metavar="LOCATION",
                   help="where to write the image (repeatable): oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                        "docker-archive:FILE[:REPO:TAG], docker://REGISTRY/REPO:TAG")
    p.add_argument("--platform", help="target platform, e.g. linux/amd64 (default: the base's or the host's)")
    p.add_argument("--entrypoint",
                   help="entrypoint as a JSON array or a plain command, e.g. '[\"python3\",\"app.py\"]'")
    p.add_argument("--cmd", help="default arguments (JSON array or plain command)")
    p.add_argument("--workdir", help="working directory in the image")
    p.add_argument("--user", help="user (name or uid[:gid]) the container runs as")
    p.add_argument("--env", action="append", default=[], metavar="K=V", help="environment variable (repeatable)")
    p.add_argument("--label", action="append", default=[], metavar="K=V", help="config label (repeatable)")
    p.add_argument("--annotation", action="append", default=[], metavar="K=V", help="manifest annotation")
    p.add_argument("--port", action="append", default=[], help="exposed port, e.g. 8080 or 53/udp")
    p.add_argument("--layer", action="append", default=[], metavar="SRC:DEST",
                   help="file layer (repeatable); replaces the build file's layers")
    p.add_argument("--compression", help="gzip (default), zstd or none, optionally :LEVEL")
    py = p.add_argument_group("python dependencies (or the build file's [python] table)")
    py.add_argument("--requirements", metavar="FILE", help="install this requirements.txt into the image's venv")
    py.add_argument("--python", metavar="PATH", help="the base image's interpreter (default: found in its layers)")
    py.add_argument("--python-version", metavar="X.Y", help="the base image's Python version (default: detected)")
    py.add_argument("--find-links", action="append", default=[], metavar="DIR",
                    help="a wheelhouse folder or page to take wheels from (repeatable)")
    py.add_argument("--index-url", metavar="URL", help="package index (default: PyPI, or UV_/PIP_INDEX_URL)")
    py.add_argument("--no-index", action="store_true", help="use only --find-links (air-gapped builds)")
    py.add_argument("--package", metavar="NAME",
                    help="the uv workspace member to install, with its dependencies from uv.lock")
    p.add_argument("--config", type=Path, help="build file (default: PROJECT/ocibuild.toml or pyproject.toml)")
    p.add_argument("--cache-dir", type=Path, help=f"content store (default: $OCIBUILD_CACHE or {default_cache_dir()})")
    p.add_argument("--cache-repo", metavar="REGISTRY/REPO",
                   help="a registry repository shared by every machine as a cache of resolutions and layers "
                        "(default: $OCIBUILD_CACHE_REPO or cache_repo in the build file; 'none' turns it off)")
    p.add_argument("--creds", metavar="USER:PASSWORD", help="registry credentials (default: docker/podman logins)")
    p.add_argument("--base-creds", metavar="USER:PASSWORD", help="credentials for the base's registry only")
    _registry_options(p)
    p.add_argument("--embed-models", action="store_true",
                   help="put the build file's [[models]] into the app image as layers (for runtimes without "
                        "image volumes) instead of model images of their own")


def _batch_arguments(b: argparse.ArgumentParser) -> None:
    """``build``'s batch form: several PROJECTs (the shared positional made ``nargs="*"``), ``--workspace``."""
    for action in b._actions:
        if action.dest == "project":
            action.nargs = "*"
            action.default = ["."]
            action.metavar = "PROJECT"
            action.help = "project folder (default: .); several are built in one batch, sharing their layers"
    batch = b.add_argument_group("batch builds (several PROJECTs or --workspace)")
    batch.add_argument("--workspace", type=Path, metavar="FILE",
                       help="build every project a workspace file lists (TOML: [workspace] projects = globs, "
                            "output = a template with {name}; [[project]] path = ..., output = ...)")
    batch.add_argument("--jobs", "-j", type=int, metavar="N",
                       help="images built side by side (default: min(4, CPUs))")


def _evidence_options(p: argparse.ArgumentParser) -> None:
    ev = p.add_argument_group("supply-chain evidence (OCI 1.1 referrers, never inside the image index)")
    ev.add_argument("--sbom", choices=("spdx", "cyclonedx", "none"),
                    help="SBOM per platform image (default: spdx for registry, oci: and oci-archive: outputs)")
    ev.add_argument("--provenance", dest="provenance", action="store_true", default=None,
                    help="SLSA v1 provenance (default: on where an SBOM is written)")
    ev.add_argument("--no-provenance", dest="provenance", action="store_false", help="no provenance")
    ev.add_argument("--sign-key", type=Path, metavar="KEY",
                    help="sign every manifest pushed (cosign's format) and attest the SBOM and provenance with "
                         "KEY (from 'ocibuild keygen'; its password from $OCIBUILD_SIGNING_PASSWORD or a prompt)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ocibuild", description="Build OCI images from Python projects, no daemon.")
    p.add_argument("--version", action="version", version=f"ocibuild {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks and HTTP requests (never secrets)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    b = sub.add_parser("build", help="build an image from a project folder",
                       description="Build an image from PROJECT (default: the current folder).")
    _project_arguments(b)
    _batch_arguments(b)
    b.add_argument("--plan", type=Path, metavar="FILE",
                   help="build from a JSON build plan (as --print-plan writes it) instead of the build file")
    b.add_argument("--print-plan", action="store_true",
                   help="print the build plan the build file and flags give as JSON on stdout; build nothing")
    b.add_argument("--update-lock", action="store_true",
                   help="rewrite weights.lock from the model files as they are now")
    b.add_argument("--explain", action="store_true",
                   help="for every layer not taken from the cache, print why: what differs from that layer's last "
                        "build in this cache (which file, which wheel version, which setting)")
    _evidence_options(b)
    _result_options(b, "image")

    d = sub.add_parser("dev", help="build, then rebuild and push on every save (the inner loop)",
                       description="Build PROJECT once, then watch its build file and every layer source: on each "
                                   "save, rebuild only the layers whose files changed and write or push only the "
                                   "new blobs and the manifest, printing one line per cycle (what changed, the new "
                                   "digest, the seconds from the save to the published manifest). A broken build "
                                   "prints its error and keeps watching. Ctrl-C stops (exit code 130).",
                       epilog="ARGS after -- are given to the container started by --run.")
    _project_arguments(d)
    d.add_argument("--run", action="store_true",
                   help="run the image with podman after each build (the old container is stopped first; its "
                        "exposed ports are published on the host; its output is shown behind 'app | ')")
    d.add_argument("--publish", "-p", action="append", default=[], metavar="HOST:CONTAINER",
                   help="with --run: publish container port CONTAINER on host port HOST (repeatable; default: each "
                        "port the image exposes, on the same host port)")
    d.add_argument("--stop-timeout", type=int, default=10, metavar="SECONDS",
                   help="with --run: seconds between the stop signal and SIGKILL (default: 10)")
    d.add_argument("--quiet", "-q", action="store_true", help="print only the cycle lines")
    d.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    m = sub.add_parser("model", help="build model files into an OCI image of their own (a mountable volume)",
                       description="Build the model at SRC (a file or folder) into its own OCI image: the files "
                                   "under /models/, each large file (>= 64 MB, and every .safetensors, .gguf, .onnx, "
                                   ".bin, .pt, .pth) in an uncompressed layer, the small ones in gzip layers. Mount "
                                   "it as a Kubernetes image volume, or with podman run --mount type=image.")
    m.add_argument("src", type=Path, help="the model's file or folder")
    m.add_argument("--output", "-o", action="append", default=[], required=True, metavar="LOCATION",
                   help="where to write the model image (repeatable): oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                        "docker-archive:FILE, docker://REGISTRY/REPO:TAG")
    m.add_argument("--name", help="the model's name (default: SRC's name, lowercased)")
    m.add_argument("--include", action="append", default=[], metavar="PATTERN",
                   help="only files matching PATTERN (repeatable), e.g. '*.safetensors'")
    m.add_argument("--exclude", action="append", default=[], metavar="PATTERN", help="leave out PATTERN (repeatable)")
    m.add_argument("--lock", type=Path, metavar="FILE",
                   help="a weights lock: the files must match it (written when it has no entry for the model)")
    m.add_argument("--update-lock", action="store_true", help="rewrite --lock from the files as they are now")
    _store_and_registry_options(m, "registry credentials")
    _result_options(m, "model image", debug=False)

    rb = sub.add_parser("rebase", help="put an image's own layers on a new base, without rebuilding them",
                        description="Replace the base layers of the image at LOCATION (each platform of an index) "
                                    "with those of --base: the image's own layers are kept as they are (the same "
                                    "blobs), the config is recomputed (diff_ids, history, the base's environment "
                                    "and entrypoint where the image took them from the old base) and the base "
                                    "annotations name the new base. The old base is found from the image's "
                                    "org.opencontainers.image.base.digest annotation (in the content store, where "
                                    "a build keeps it, or in the registry base.name names), or given with "
                                    "--old-base; it must be the image's first layers. Several LOCATIONs take one "
                                    "--output each, paired in order. Nothing is written unless every image "
                                    "rebases.")
    rb.add_argument("location", nargs="+", metavar="LOCATION",
                    help="the image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE, docker://REF")
    rb.add_argument("--base", required=True, metavar="NEW", help="the new base (any location, e.g. oci:DIR:TAG)")
    rb.add_argument("--old-base", metavar="OLD",
                    help="the base the image was built on (default: found from its base.digest annotation)")
    rb.add_argument("--output", "-o", action="append", default=[], required=True, metavar="LOCATION",
                    help="where to write the rebased image (repeatable; with several LOCATIONs, one each, in order)")
    _store_and_registry_options(rb, "registry credentials")
    _evidence_options(rb)
    _result_options(rb, "rebased image", debug=False)

    fetch = sub.add_parser("fetch", help="download the wheels a project needs into a wheelhouse folder",
                           description="Resolve PROJECT's Python dependencies for each platform of its base and "
                                       "download the wheels into DEST, for a later offline build with "
                                       "--find-links DEST --no-index.")
    fetch.add_argument("project", nargs="?", default=".", help="project folder (default: .)")
    fetch.add_argument("--dest", required=True, type=Path, help="wheelhouse folder to fill")
    fetch.add_argument("--base", help="base image (default: the build file's)")
    fetch.add_argument("--platform", help="comma-separated platforms, e.g. linux/amd64,linux/arm64")
    fetch.add_argument("--requirements", metavar="FILE", help="requirements.txt (default: the build file's)")
    fetch.add_argument("--config", type=Path, help="build file")
    _store_and_registry_options(fetch, "registry credentials for the base")

    base = sub.add_parser("base", help="make a base image")
    base_sub = base.add_subparsers(dest="base_kind", metavar="KIND", required=True)
    deb = base_sub.add_parser("debian", help="a base assembled from Debian packages (no registry, no root)",
                              description="Resolve, verify and unpack Debian packages into a base image: "
                                          "no maintainer script runs, nothing is emulated.")
    deb.add_argument("--suite", default="trixie", help="Debian suite (default: trixie, Python 3.13; bookworm has 3.11)")
    deb.add_argument("--packages", default=",".join(DEFAULT_DEBIAN_PACKAGES),
                     help=f"comma-separated packages (default: {','.join(DEFAULT_DEBIAN_PACKAGES)})")
    deb.add_argument("--platform", help="comma-separated platforms (default: the host's), e.g. linux/amd64,linux/arm64")
    deb.add_argument("--output", "-o", action="append", default=[], required=True, metavar="LOCATION",
                     help="where to write the base (repeatable): oci:DIR[:TAG], oci-archive:FILE, docker://...")
    deb.add_argument("--mirror", help="Debian mirror URL (default: the host's apt mirror, else deb.debian.org); "
                                      "file:// works")
    deb.add_argument("--deb-dir", type=Path, help="a folder of .deb files to use instead of a mirror (offline)")
    deb.add_argument("--lock", type=Path, help="lock file: reused if it matches, written otherwise")
    deb.add_argument("--update", action="store_true", help="resolve again and rewrite the lock file")
    deb.add_argument("--allow-unsigned", action="store_true", help="accept a release without a valid signature")
    deb.add_argument("--security", action="store_true", help="also take packages from SUITE-security")
    deb.add_argument("--no-bytecode", action="store_true",
                     help="leave out the .pyc of the Python standard library (default: compiled, reproducibly)")
    deb.add_argument("--compression", help="gzip (default), zstd or none")
    _store_and_registry_options(deb, "registry credentials for a docker:// output")
    deb.add_argument("--quiet", "-q", action="store_true", help="print only the digest")

    r = sub.add_parser("resolve", help="build and push every ocibuild:// image of Kubernetes YAML; print the YAML "
                                       "with digests",
                       description="Read Kubernetes YAML (files or folders of *.yaml / *.yml), build and push every "
                                   "ocibuild://PROJECT_DIR and ocibuild-model://PROJECT_DIR/NAME reference (relative "
                                   "to the YAML file's folder) once, and print the YAML with each replaced by "
                                   "REGISTRY/REPO@sha256:... (everything else kept as written). The app goes to "
                                   "PREFIX/<project folder name>, a model to PREFIX/<project folder name>-<name>.")
    r.add_argument("-f", "--filename", action="append", required=True, type=Path, metavar="FILE|DIR",
                   help="Kubernetes YAML file or folder (repeatable)")
    r.add_argument("--repo", metavar="REGISTRY/PREFIX", help="where to push (default: $OCIBUILD_REPO)")
    r.add_argument("--platform", help="platforms to build, e.g. linux/amd64,linux/arm64 (default: each build file's)")
    r.add_argument("--output-dir", type=Path, metavar="DIR",
                   help="write the resolved files into DIR instead of printing them")
    r.add_argument("--images-lock", type=Path, metavar="FILE",
                   help="write the resolved references with their digests to FILE (JSON), for promotion")
    r.add_argument("--result-json", type=Path, metavar="FILE", help="write the result document (JSON) to FILE")
    r.add_argument("--update-lock", action="store_true", help="rewrite the projects' weights.lock files")
    _store_and_registry_options(r, "registry credentials")
    r.add_argument("--quiet", "-q", action="store_true", help="print only the YAML")

    insp = sub.add_parser("inspect", help="show an image: platforms, config and layers with what each holds",
                          description="Show the image at LOCATION (oci:, oci-archive:, docker-archive:, docker://): "
                                      "its digest, platform, entrypoint and every layer with its size and what "
                                      "added it.")
    insp.add_argument("location", help="e.g. oci:out/app:v1 or docker://127.0.0.1:5000/app:1")
    insp.add_argument("--platform", help="which platform of an index (default: the host's)")
    insp.add_argument("--json", action="store_true", help="machine-readable output")
    _store_and_registry_options(insp, "registry credentials")

    df = sub.add_parser("diff", help="what differs between two images, layer by layer and file by file, and why",
                        description="Compare the images at A and B (oci:DIR[:TAG], oci-archive:FILE[:TAG], "
                                    "docker-archive:FILE, docker://REF): layers unchanged, changed, added and removed "
                                    "with their sizes; for a changed layer the files that differ; for two builds "
                                    "from the same content store the cause (which source file, which wheel or "
                                    "Debian package version, which setting); then the config changes. Two indexes "
                                    "are compared platform by platform. Exits 0 whether or not they differ.")
    df.add_argument("a", metavar="A", help="the first image (e.g. the one before a change)")
    df.add_argument("b", metavar="B", help="the second image")
    df.add_argument("--platform", help="compare only this platform of two indexes (default: every platform both "
                                       "have)")
    df.add_argument("--json", action="store_true", help="machine-readable output (every changed file listed)")
    _store_and_registry_options(df, "registry credentials")

    login = sub.add_parser("login", help="store registry credentials the way docker does",
                           description="Check credentials against REGISTRY and store them in $DOCKER_CONFIG/"
                                       "config.json (or its credential helper), where docker, podman, skopeo and "
                                       "ocibuild find them.")
    login.add_argument("registry", help="registry host[:port], e.g. ghcr.io or 127.0.0.1:5000")
    login.add_argument("--username", "-u", help="user name (prompted if omitted)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    _registry_options(login)
    login.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    from .init_cli import add_parsers as init_parsers
    from .referrers.cli import add_parsers as referrer_parsers
    from .signing_cli import add_parsers as signing_parsers

    referrer_parsers(sub)
    init_parsers(sub)
    verify = signing_parsers(sub)["verify"]
    verify.add_argument("--rebuild", action="store_true",
                        help="build the image again from the plan its provenance records, in a fresh store, and "
                             "compare layer by layer")
    verify.add_argument("--offline-from", type=Path, metavar="DIR",
                        help="with --rebuild: take the Python dependencies only from this wheelhouse")
    verify.add_argument("--project", type=Path, metavar="DIR",
                        help="with --rebuild: the project's source folder (default: where the provenance says)")
    verify.add_argument("--cache-dir", type=Path, help="with --rebuild: where to read the published image")
    return p


_store = store_from


def _creds(args: argparse.Namespace) -> list[CredentialProvider]:
    return creds_from(args)


def _client(args: argparse.Namespace, on_event: _Reporter | None = None,
            explicit: Sequence[CredentialProvider] = ()) -> RegistryClient:
    """The options' client; only ``explicit`` credentials (commands add ``--creds`` themselves)."""
    return client_from(args, on_event, explicit)


def _load_build_plan(args: argparse.Namespace) -> BuildPlan:
    """The plan from ``--plan FILE`` (no build file is read), else from the build file and the flags."""
    if args.plan is not None:
        from .plan import BuildPlan

        try:
            data = json.loads(args.plan.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--plan {args.plan}: cannot read: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"--plan {args.plan}: not valid JSON: {exc}") from None
        plan = BuildPlan.from_dict(data)
        if args.output:
            plan = plan.with_outputs(*args.output)
        return plan
    overrides = Overrides(
        base=args.base, platform=args.platform, outputs=tuple(args.output), entrypoint=args.entrypoint,
        cmd=args.cmd, workdir=args.workdir, user=args.user, env=tuple(args.env), labels=tuple(args.label),
        annotations=tuple(args.annotation), ports=tuple(args.port), layers=tuple(args.layer),
        compression=args.compression, requirements=args.requirements, python=args.python,
        python_version=args.python_version, find_links=tuple(args.find_links), index_url=args.index_url,
        no_index=args.no_index, package=args.package, cache_repo=args.cache_repo,
    )
    return load_plan(Path(args.project), overrides=overrides, config_file=args.config,
                     embed_models=args.embed_models)


def _cmd_build(args: argparse.Namespace) -> int:
    projects = args.project if isinstance(args.project, list) else [args.project]
    if args.workspace is not None or len(projects) > 1:
        return _cmd_build_many(args, projects)
    args.project = projects[0]
    if any("{name}" in o for o in args.output):  # as in a batch: the project folder's name
        from .batch import expand, project_name

        args.output = list(expand(args.output, project_name(Path(args.project).resolve())))
    plan = _load_build_plan(args)
    if args.print_plan:
        sys.stdout.write(plan.to_json())
        return 0
    if not plan.outputs:
        raise ConfigError("no output given: add --output LOCATION (e.g. --output oci:out/app:latest) "
                          "or 'outputs = [...]' in the build file")
    store = _store(args)
    reporter = _Reporter(args.quiet or args.json, live=True)
    client = _build_client(args, plan, store, reporter)
    evidence = _evidence(args, plan)  # the key is loaded (and its password asked) before anything is built
    result = publish(build(plan, store=store, on_event=reporter, client=client, update_lock=args.update_lock,
                           explain=args.explain),
                     on_event=reporter, client=client, evidence=evidence)
    reporter.close()  # the live view ends (its last frame stays) before the digest is printed
    _write_results(args, result.digest, result.to_dict())
    return 0


def _build_client(args: argparse.Namespace, plan: BuildPlan, store: ContentStore,
                  reporter: Callable[[Event], None]) -> RegistryClient | None:
    """The registry client a build of ``plan`` needs (None without registries): ``--base-creds`` for the
    base's registry, ``--creds``, the logins; it remembers in ``store`` the blobs each repository holds."""
    from .registry import KnownBlobs
    from .transports import Registry

    registries = any(isinstance(loc, Registry) for loc in (plan.base, *plan.bases.values(), *plan.outputs))
    if not (registries or args.ca_file or args.insecure_registry):
        return None
    explicit: list[CredentialProvider] = []
    if args.base_creds:
        from .registry import Credentials, StaticCredentials

        if isinstance(plan.base, Registry):
            explicit.append(StaticCredentials(Credentials.parse(args.base_creds, "--base-creds"),
                                              (plan.base.reference.api_host,)))
    explicit += _creds(args)
    client = _client(args, reporter, explicit)  # type: ignore[arg-type]
    client.known = KnownBlobs(store)
    return client


class _ProjectReporter(_Reporter):
    """A batch project's lines, each behind its name (no live progress: builds run side by side)."""

    _shared = threading.Lock()

    def __init__(self, quiet: bool, name: str, width: int) -> None:
        super().__init__(quiet)
        self.tty = False
        self._lock = self._shared
        self.prefix = f"{name:<{width}} | "

    def _line(self, text: str) -> None:
        super()._line(self.prefix + text)


def _cmd_build_many(args: argparse.Namespace, projects: list[str]) -> int:
    """``build A B ...`` / ``build --workspace FILE``: every project in one batch (``ocibuild.batch``)."""
    from dataclasses import replace

    from .batch import BatchProject, build_many, load_workspace, plan_projects, summary_lines
    from .transports import Registry

    for flag, given in (("--plan", args.plan is not None), ("--print-plan", args.print_plan),
                        ("--config", args.config is not None)):
        if given:
            raise ConfigError(f"{flag} is for one project; build the projects one by one, or drop {flag}")
    if args.jobs is not None and args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: give a number of images to build side by side, 1 or more")
    if args.workspace is not None:
        if projects != ["."]:
            raise ConfigError("give PROJECT folders or --workspace FILE, not both")
        entries = load_workspace(args.workspace)
    else:
        entries = [BatchProject.at(p) for p in projects]
    if len(entries) > 1:
        for output in args.output:
            if "{name}" not in output:
                raise ConfigError(f"--output {output}: with several projects each needs its own output; put {{name}} "
                                  "(the project folder's name) in it, e.g. docker://REGISTRY/fleet/{name}:latest")

    def load(project: BatchProject, outputs: tuple[str, ...]) -> BuildPlan:
        return _load_build_plan(argparse.Namespace(**{**vars(args), "project": str(project.path),
                                                      "output": list(outputs)}))

    plans = plan_projects(entries, overrides=Overrides(outputs=tuple(args.output)), load=load)
    good = [p.plan for p in plans if p.plan is not None]
    store = _store(args)
    reporter = _Reporter(args.quiet or args.json)
    reporter._lock = _ProjectReporter._shared  # the batch's lines and the projects' never cut into each other
    client = None
    if good:
        registries = [p for p in good if any(isinstance(loc, Registry)
                                             for loc in (p.base, *p.bases.values(), *p.outputs))]
        client = _build_client(args, (registries or good)[0], store, reporter)
    key = None
    if args.sign_key is not None:  # loaded (and its password asked) once, before anything is built
        from .signing_cli import load_key

        key = load_key(args.sign_key)
    unsigned = argparse.Namespace(**{**vars(args), "sign_key": None})

    def evidence(plan: BuildPlan) -> Evidence:
        if key is not None and not any(isinstance(o, Registry) for o in plan.outputs):
            raise ConfigError("--sign-key: signatures are pushed to registries; add a docker:// output")
        return replace(_evidence(unsigned, plan), sign_key=key)

    width = max(len(e.name) for e in entries)
    batch = build_many(plans, store=store, client=client, on_event=reporter, jobs=args.jobs, explain=args.explain,
                       project_events=lambda name: _ProjectReporter(args.quiet or args.json, name, width),
                       update_lock=args.update_lock, evidence=evidence)
    debug = args.debug or bool(os.environ.get("OCIBUILD_DEBUG"))
    if not args.quiet:
        sys.stderr.write("".join(line + "\n" for line in summary_lines(batch)))
    for failure in batch.failed:
        if debug and failure.exception is not None:
            traceback.print_exception(failure.exception)
        print(f"ocibuild: error: {failure.name} ({failure.path}): {_with_flags(failure.error)}", file=sys.stderr)
    digests = "".join(r.digest + "\n" for r in batch.results)
    document = batch.to_dict()
    _write_result_files(args, digests, document)
    if args.json:
        print(json.dumps(document, indent=2))
    elif args.quiet:
        sys.stdout.write(digests)
    else:
        sys.stdout.write("".join(f"{r.digest}  {r.path}\n" for r in batch.results))
    return 0 if batch.ok else 1


def _cmd_dev(args: argparse.Namespace) -> int:
    from .dev import DevSession, watch

    args.plan = None
    plan = _load_build_plan(args)
    if not plan.outputs:
        raise ConfigError("no output given: add --output LOCATION (e.g. --output docker://127.0.0.1:5000/app:dev "
                          "or oci:out/app:dev) or 'outputs = [...]' in the build file")
    runner = None
    if args.run:
        from .devrun import ContainerRunner, run_reference

        if run_reference([str(o) for o in plan.outputs], "sha256:" + "0" * 64) is None:
            raise ConfigError("--run starts the image from a docker:// or oci:DIR:TAG output; add one")
        if args.stop_timeout < 0:
            raise ConfigError(f"--stop-timeout {args.stop_timeout}: give a number of seconds >= 0")
        for mapping in args.publish:
            if not re.fullmatch(r"(\d{1,5}:)?\d{1,5}(/(tcp|udp))?", mapping):
                raise ConfigError(f"--publish {mapping!r}: give HOST:CONTAINER ports, e.g. 8081:8080")
        runner = ContainerRunner(args=tuple(args.run_args), insecure=tuple(args.insecure_registry),
                                 stop_timeout=args.stop_timeout, out=sys.stdout, publish=tuple(args.publish))
        runner.check()
    store = _store(args)
    reporter = _Reporter(args.quiet)
    client = _build_client(args, plan, store, reporter)
    project = Path(args.project)
    session = DevSession(lambda: _load_build_plan(args), store=store, client=client, on_event=reporter,
                         project=project, inputs=(args.config,) if args.config is not None else ())
    session.plan = plan
    terminated = []

    def on_term(signum: int, frame: object) -> None:  # SIGTERM: stop as for Ctrl-C (the container too)
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        for cycle in watch(session, project=project):
            reporter.say(cycle.line())
            if session.cycles == 1:
                reporter.say(f"dev     watching {project} (Ctrl-C to stop)")
            if runner is not None and cycle.result is not None and not cycle.unchanged:
                _run_cycle(runner, cycle, reporter)
    except KeyboardInterrupt:
        if runner is not None:
            runner.stop()
        print("ocibuild: dev stopped; the last image pushed stays where it was written", file=sys.stderr)
        return 143 if terminated else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if runner is not None:
            runner.stop()
    return 0


def _run_cycle(runner: ContainerRunner, cycle: Cycle, reporter: _Reporter) -> None:
    from .devrun import RunError, run_reference

    assert cycle.result is not None and cycle.digest is not None
    reference = run_reference(cycle.outputs, cycle.digest)
    if reference is None:
        return
    saved = time.time() - cycle.seconds if cycle.changed else None
    image = cycle.result.image
    for p in cycle.result.platforms:
        if p.image is not None and p.image.config.platform.architecture == _host_arch():
            image = p.image
    try:
        started = runner.replace(reference, image)
    except RunError as exc:
        reporter.say(f"run     error: {exc} (still watching)")
        return
    after = f" {started - saved:.2f} s after the save" if saved is not None else ""
    reporter.say(f"run     started {cycle.digest[:19]}…{after}")


def _host_arch() -> str:
    from .sources import host_platform

    return host_platform().architecture


def _evidence(args: argparse.Namespace, plan: BuildPlan) -> Evidence:
    """``--sbom`` / ``--provenance`` / ``--sign-key``: by default an SPDX SBOM and provenance for the
    outputs that can hold them (registries, OCI layouts and archives)."""
    return _evidence_for(args, plan.outputs)


def _evidence_for(args: argparse.Namespace, outputs: Sequence[Location]) -> Evidence:
    from .evidence import Evidence
    from .transports import OciArchive, OciLayout, Registry

    holds = any(isinstance(o, Registry | OciLayout | OciArchive) for o in outputs)
    sbom = args.sbom or ("spdx" if holds else "none")
    provenance = args.provenance if args.provenance is not None else sbom != "none"
    key = None
    if args.sign_key is not None:
        if not any(isinstance(o, Registry) for o in outputs):
            raise ConfigError("--sign-key: signatures are pushed to registries; add a docker:// output")
        from .signing_cli import load_key

        key = load_key(args.sign_key)
    return Evidence(sbom=sbom, provenance=provenance, sign_key=key)


def _cmd_resolve(args: argparse.Namespace) -> int:
    from .resolve import repository_prefix, resolve

    repo = repository_prefix(args.repo)
    for path in args.filename:
        if not path.exists():
            raise ConfigError(f"-f {path}: no such file or folder")
    reporter = _Reporter(args.quiet)
    client = _client(args, reporter, _creds(args))
    out = resolve(args.filename, repo=repo, store=_store(args), client=client, on_event=reporter,
                  platform=args.platform, update_lock=args.update_lock)
    document = out.to_dict()
    for flag, path in (("--images-lock", args.images_lock), ("--result-json", args.result_json)):
        if path is not None:
            try:
                atomic_write_bytes(path, (json.dumps(document, indent=2) + "\n").encode())
            except OSError as exc:
                raise ConfigError(f"{flag} {path}: {exc.strerror}") from None
    if args.output_dir is None:
        texts = [_ends_with_newline(out.render(f)) for f in out.files]
        sys.stdout.write("".join(t if i == 0 or t.startswith("---") else "---\n" + t for i, t in enumerate(texts)))
        return 0
    for f in out.files:
        target = args.output_dir / _relative_to_roots(f.path, args.filename)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, out.render(f).encode())
        except OSError as exc:
            raise ConfigError(f"--output-dir {args.output_dir}: cannot write {target}: {exc.strerror}") from None
        reporter(Note(text=f"wrote   {target}"))
    return 0


def _ends_with_newline(text: str) -> str:
    return text if text.endswith("\n") or not text else text + "\n"


def _relative_to_roots(path: Path, roots: Sequence[Path]) -> Path:
    """``path`` below the -f folder it was found in, or its name for a -f file."""
    for root in roots:
        if root.is_dir():
            try:
                return path.absolute().relative_to(root.absolute())
            except ValueError:
                continue
    return Path(path.name)


def _cmd_model(args: argparse.Namespace) -> int:
    from .models import ModelSpec, WeightsLock, build_model
    from .plan import MODEL_NAME
    from .timestamps import source_date_epoch
    from .transports import Registry, parse_location

    name = args.name
    if name is None:
        name = re.sub(r"[^a-z0-9]+", "-", args.src.absolute().name.lower()).strip("-") or "model"
    elif not MODEL_NAME.fullmatch(name):
        raise ConfigError(f"--name {name!r}: use lowercase letters and digits, optionally separated by '.', '_' "
                          "or '-', e.g. 'weights'")
    outputs = [parse_location(o) for o in args.output]
    reporter = _Reporter(args.quiet or args.json, live=True)
    client = _client(args, reporter, _creds(args)) if any(isinstance(o, Registry) for o in outputs) else None
    sinks = [sink_for(o, client=client, mtime=source_date_epoch()) for o in outputs]
    for sink in sinks:
        sink.check()
    spec = ModelSpec(name=name, src=args.src.absolute(), include=tuple(args.include), exclude=tuple(args.exclude))
    lock = WeightsLock.read(args.lock) if args.lock else None
    model, updated = build_model(spec, _store(args), source_date_epoch=source_date_epoch(), lock=lock,
                                 update_lock=args.update_lock, on_event=reporter)
    written = publish(model.image, sinks, on_event=reporter)
    if updated is not None:
        updated.write()
        reporter(Note(text=f"wrote   {updated.path}"))
    reporter.close()
    _write_results(args, model.digest, {**model.to_dict(), "outputs": list(written)})
    return 0


def _cmd_rebase(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .evidence import with_documents
    from .rebase import rebase, rebase_documents
    from .timestamps import source_date_epoch
    from .transports import Registry, parse_location

    images = [parse_location(loc) for loc in args.location]
    outputs = [parse_location(o) for o in args.output]
    if len(images) > 1 and len(outputs) != len(images):
        raise ConfigError(f"rebase: {len(images)} images but {len(outputs)} --output; give one --output per image, "
                          "in the same order")
    pairs = [(images[0], outputs)] if len(images) == 1 else [(i, [o]) for i, o in zip(images, outputs, strict=True)]
    old = parse_location(args.old_base) if args.old_base else None
    new = parse_location(args.base)
    reporter = _Reporter(args.quiet or args.json, live=True)
    store = _store(args)
    client = None
    if any(isinstance(loc, Registry) for loc in (*images, *outputs, new, old)):
        from .registry import KnownBlobs

        client = _client(args, reporter, _creds(args))
        client.known = KnownBlobs(store)
    epoch = source_date_epoch()
    evidence = _evidence_for(args, outputs)  # the key is loaded (and its password asked) before any work
    sinks = [[sink_for(o, client=client, mtime=epoch) for o in outs] for _, outs in pairs]
    for sink in (s for group in sinks for s in group):
        sink.check()
    # every image is rebased (in memory) before anything is written: one that fails writes nothing
    results = [rebase(image, new, store=store, old_base=old, client=client, on_event=reporter) for image, _ in pairs]
    if not evidence.empty:
        docs = [rebase_documents(r, store=store, sbom=evidence.sbom, provenance=evidence.provenance, epoch=epoch)
                for r in results]
        sinks = [with_documents(group, d, created=epoch, sign_key=evidence.sign_key, on_event=reporter)
                 for group, d in zip(sinks, docs, strict=True)]
    done = [replace(r, outputs=publish(r.artifact, group, on_event=reporter)) for r, group in zip(results, sinks,
                                                                                                  strict=True)]
    reporter.close()
    if len(done) == 1:
        _write_results(args, done[0].digest, done[0].to_dict())
    else:
        _write_results(args, "\n".join(r.digest for r in done), {"images": [r.to_dict() for r in done]})
    return 0


def _platform_list(text: str | None) -> list[Platform]:
    try:
        return [Platform.parse(p) for p in text.split(",")] if text else []
    except ValueError as exc:
        raise ConfigError(f"--platform: {exc}") from None


def _cmd_fetch(args: argparse.Namespace) -> int:
    from .python.deps import fetch_wheelhouse
    from .sources import resolve_base

    plan = load_plan(Path(args.project), overrides=Overrides(base=args.base, requirements=args.requirements),
                     config_file=args.config)
    if plan.python is None:
        raise ConfigError("fetch: the project has no [python] table and no --requirements was given")
    platforms: list[Platform | None] = [*_platform_list(args.platform)]
    if not platforms:
        platforms = list(plan.platforms) if plan.platforms != "all" and plan.platforms else [None]
    store = _store(args)
    reporter = _Reporter(False)
    client = _client(args, reporter, _creds(args))
    bases = [resolve_base(plan.base_for(platform), store, platform, client=client) for platform in platforms]
    wheels = fetch_wheelhouse(plan.python, bases, store, plan.project_dir.absolute(), args.dest,
                              note=lambda text: reporter(Note(text=text)))
    print(f"{len(wheels)} wheels in {args.dest}")
    return 0


def _cmd_base(args: argparse.Namespace) -> int:
    from .debian import DebianSpec, build_base
    from .image import Artifact
    from .layers import Compression
    from .mutate import index_of
    from .sinks import sink_for
    from .sources import host_platform
    from .timestamps import source_date_epoch

    platforms = _platform_list(args.platform) or [host_platform()]
    try:
        compression = Compression.parse(args.compression) if args.compression else Compression()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    epoch = source_date_epoch()
    reporter = _Reporter(args.quiet)
    client = _client(args, reporter, _creds(args))
    sinks = [sink_for(o, client=client, mtime=epoch) for o in args.output]
    for sink in sinks:
        sink.check()
    packages = tuple(p.strip() for p in args.packages.split(",") if p.strip())
    if not packages:
        raise ConfigError("--packages: name at least one package, e.g. python3")
    spec = DebianSpec(suite=args.suite, packages=packages, mirror=args.mirror, deb_dir=args.deb_dir,
                      allow_unsigned=args.allow_unsigned, security=args.security, bytecode=not args.no_bytecode)
    started = time.monotonic()
    images = build_base(spec, platforms, _store(args), lock_path=args.lock, update=args.update,
                        compression=compression)
    reporter(Note(text=f"base    Debian {args.suite}: {', '.join(packages)} for "
                       f"{', '.join(str(i.config.platform) for i in images)} ({time.monotonic() - started:.1f}s)"))
    artifact: Artifact = images[0] if len(images) == 1 else index_of(images, created=epoch)
    publish(artifact, sinks, on_event=reporter)
    print(artifact.digest)
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from .inspect import inspect_image
    from .transports import parse_location

    location = parse_location(args.location)
    client = _client(args, None, _creds(args))
    info = inspect_image(location, _store(args), platform_from(args), client=client)
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
        return 0
    print(f"image      {info.location}")
    print(f"digest     {info.digest}")
    print(f"platform   {info.platform}" + (f"  (index: {', '.join(info.platforms)})" if len(info.platforms) > 1
                                           else ""))
    print(f"entrypoint {json.dumps(list(info.entrypoint))}  cmd {json.dumps(list(info.cmd))}")
    print(f"user       {info.user or '(root)'}  workdir {info.workdir or '/'}  ports {', '.join(info.ports) or '-'}")
    print(f"layers     {len(info.layers)}, {human_size(info.total_size)} compressed")
    for layer in info.layers:
        print(f"  {layer.digest[7:19]}  {human_size(layer.size):>9}  {layer.created_by or '-'}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    from .diff import diff_locations, render
    from .transports import parse_location

    a, b = parse_location(args.a), parse_location(args.b)
    result = diff_locations(a, b, store=_store(args), platform=platform_from(args),
                            client=_client(args, None, _creds(args)))
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(render(result)))
    return 0


def _cmd_login(args: argparse.Namespace) -> int:
    try:
        host = Reference.parse(f"{args.registry.removeprefix('https://').rstrip('/')}/probe").registry
    except ValueError:
        raise ConfigError(f"login: {args.registry!r} is not a registry host[:port]") from None
    username = args.username or input("Username: ")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    if not username or not password:
        raise ConfigError("login: user name and password must not be empty")
    from .registry import Credentials, StaticCredentials, store_login

    creds = Credentials(username=username, password=password, source="ocibuild login")
    _client(args, explicit=[StaticCredentials(creds, (host,))]).transport.check_login(host)
    where = store_login(host, creds)
    print(f"Login Succeeded (credentials stored in {where})")
    return 0


# build-file keys whose library errors a command-line flag can also fix
KEY_FLAGS = {"python.interpreter": "--python", "python.python_version": "--python-version",
             "python.requirements": "--requirements", "python.index_url": "--index-url",
             "python.find_links": "--find-links", "python.no_index": "--no-index",
             "python.package": "--package"}


def _with_flags(message: str) -> str:
    """Name the flag beside each build-file key an error mentions (``python.interpreter (--python)``)."""
    for key, flag in KEY_FLAGS.items():
        message = re.sub(rf"(?<![\w.]){re.escape(key)}(?![\w.\[])", f"{key} ({flag})", message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    run_args: list[str] = []
    if "dev" in argv and "--" in argv and argv.index("dev") < argv.index("--"):
        run_args, argv = argv[argv.index("--") + 1:], argv[:argv.index("--")]  # dev --run -- ARGS
    args = parser.parse_args(argv)
    args.run_args = run_args
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    debug = args.debug or bool(os.environ.get("OCIBUILD_DEBUG"))
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="debug: %(name)s: %(message)s", stream=sys.stderr)
        logging.getLogger("urllib3").setLevel(logging.INFO)  # its debug lines would show query strings
    from .referrers import cli as referrer_commands

    try:
        commands = {"login": _cmd_login, "fetch": _cmd_fetch, "build": _cmd_build, "dev": _cmd_dev, "base": _cmd_base,
                    "inspect": _cmd_inspect, "diff": _cmd_diff, "model": _cmd_model, "rebase": _cmd_rebase,
                    "resolve": _cmd_resolve,
                    "sbom": referrer_commands.cmd_sbom, "provenance": referrer_commands.cmd_provenance}
        command = commands.get(args.command) or args.func
        try:
            return int(command(args))
        finally:
            close_reporters()  # the live view stops, held lines are printed: an error line comes after them
    except OcibuildError as exc:
        if debug:
            traceback.print_exc()
        print(f"ocibuild: error: {_with_flags(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ocibuild: interrupted; nothing was written to the outputs", file=sys.stderr)
        return 130
    except OSError as exc:  # an I/O failure no layer above turned into an OcibuildError
        if debug:
            traceback.print_exc()
        where = f" {exc.filename}" if exc.filename else ""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"ocibuild: error: no space left on device while writing{where or ' an output'}; free space "
                  "there, or choose another --cache-dir or output", file=sys.stderr)
            return 1
        print(f"ocibuild: error: cannot access{where}: {exc.strerror or exc}; check the path and its permissions",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

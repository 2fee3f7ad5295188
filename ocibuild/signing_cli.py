"""The ``ocibuild keygen``, ``sign`` and ``verify`` commands: their parsers (:func:`add_parsers`, which
``ocibuild.cli`` calls) and what they run. The library is :mod:`ocibuild.signing`, imported only
when one of these commands runs (it needs ``cryptography`` and the registry client).

Passwords come from ``OCIBUILD_SIGNING_PASSWORD`` or a terminal prompt, never from a flag (it would
be in the shell history and the process list) and never into any output.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .cliargs import client_from, store_and_registry_options
from .errors import ConfigError, VerificationFailed
from .transports import Registry, parse_location

if TYPE_CHECKING:
    from .registry import RegistryClient
    from .signing import SigningKey
    from .spec import Reference

__all__ = ["add_parsers", "cmd_keygen", "cmd_sign", "cmd_verify", "load_key", "verify_rebuild"]

PASSWORD_ENV = "OCIBUILD_SIGNING_PASSWORD"  # the same as ocibuild.signing.PASSWORD_ENV, without importing it


def _registry_options(p: argparse.ArgumentParser) -> None:
    store_and_registry_options(p, cache=False)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> dict[str, argparse.ArgumentParser]:
    """Add ``keygen``, ``sign`` and ``verify`` to the CLI's subcommands; returns their parsers by name (so
    ``verify`` can be given more options, e.g. ``--rebuild``). Each parser sets ``func`` to its command."""
    kg = sub.add_parser("keygen", help="make a signing key pair (ECDSA P-256)",
                        description="Write PREFIX.key (PKCS#8 PEM, encrypted with a password from "
                                    f"${PASSWORD_ENV} or asked on the terminal; mode 0600) and PREFIX.pub (the "
                                    "public key for 'ocibuild verify --key', policy.json keyPath and cosign).")
    kg.add_argument("prefix", nargs="?", default="ocibuild", type=Path,
                    help="path prefix of the two files (default: ocibuild -> ocibuild.key, ocibuild.pub)")
    kg.add_argument("--no-password", action="store_true",
                    help="write the private key unencrypted (anyone who can read the file can sign)")
    kg.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    kg.set_defaults(func=cmd_keygen)

    sg = sub.add_parser("sign", help="sign an image in a registry (cosign's format, read by podman/skopeo/CRI-O)",
                        description="Sign the manifest LOCATION names and, for an index, every manifest it lists, "
                                    "as cosign signatures at tag sha256-<hex>.sig of the same repository "
                                    "(signatures already there are kept). --attestation attaches signed in-toto "
                                    "statements (tag sha256-<hex>.att).")
    sg.add_argument("location", help="e.g. docker://registry.example.com/team/app:1.0 (or a bare reference)")
    sg.add_argument("--key", required=True, type=Path, metavar="KEY",
                    help=f"private key from 'ocibuild keygen' (its password: ${PASSWORD_ENV} or a prompt)")
    sg.add_argument("--identity", metavar="REF",
                    help="docker-reference to sign (default: REGISTRY/REPO:TAG of LOCATION, or REGISTRY/REPO "
                         "when LOCATION is a digest)")
    sg.add_argument("--annotation", "-a", action="append", default=[], metavar="KEY=VALUE",
                    help="a claim in the signed payload's 'optional' object (repeatable)")
    sg.add_argument("--attestation", action="append", default=[], type=Path, metavar="STATEMENT",
                    help="an in-toto statement (JSON) to sign and attach to each manifest among its subjects "
                         "(repeatable)")
    _registry_options(sg)
    sg.set_defaults(func=cmd_sign)

    vf = sub.add_parser("verify", help="check an image's signatures and attestations",
                        description="With --key: every manifest LOCATION names (the index and each platform's) "
                                    "must carry a signature by the key naming exactly its digest and repository, "
                                    "and every attestation attached to them must be signed by the key and name "
                                    "its manifest as subject. Exit 0 when all hold, 1 naming what did not.")
    vf.add_argument("location", help="e.g. docker://registry.example.com/team/app:1.0 (or a bare reference)")
    vf.add_argument("--key", type=Path, metavar="PUB", help="public key (PEM) the signatures must verify with")
    vf.add_argument("--json", action="store_true", help="print the report as JSON")
    _registry_options(vf)
    vf.set_defaults(func=cmd_verify)
    return {"keygen": kg, "sign": sg, "verify": vf}


# ------------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> RegistryClient:
    return client_from(args)


def _registry_ref(text: str, command: str) -> Reference:
    location = parse_location(text)
    if not isinstance(location, Registry):
        raise ConfigError(f"{command}: {text!r} is not in a registry; {command} works on pushed images "
                          "(docker://REGISTRY/REPO:TAG)")
    return location.reference


def _ask(prompt: str) -> bytes:
    if not sys.stdin.isatty():
        raise ConfigError(f"no password: set {PASSWORD_ENV} (no terminal to ask on)")
    try:
        return getpass.getpass(prompt).encode("utf-8")
    except EOFError:
        raise ConfigError(f"no password: set {PASSWORD_ENV}") from None


def _env_password() -> bytes | None:
    value = os.environ.get(PASSWORD_ENV)
    return None if value is None else value.encode("utf-8")


def cmd_keygen(args: argparse.Namespace) -> int:
    """``ocibuild keygen [PREFIX] [--no-password]``."""
    from .signing import keygen, load_public_key

    password = _env_password()
    if args.no_password:
        if password:
            raise ConfigError(f"keygen: --no-password, but {PASSWORD_ENV} is set; unset one of them")
        password = b""
    elif password is None:
        password = _ask("Password for the new private key: ")
        if password and _ask("Again: ") != password:
            raise ConfigError("keygen: the two passwords differ; nothing was written")
    if not password and not args.no_password:
        raise ConfigError("keygen: the password is empty; give one (or --no-password for an unencrypted key)")
    private, public = keygen(args.prefix, password, allow_empty_password=args.no_password)
    state = "encrypted" if password else "NOT encrypted"
    print(f"private key {private} ({state}, mode 0600): keep it secret", file=sys.stderr)
    print(f"public key  {public} ({load_public_key(public).fingerprint})", file=sys.stderr)
    print(public)
    return 0


def _optional_claims(pairs: list[str]) -> dict[str, str] | None:
    if not pairs:
        return None
    from .version import __version__

    claims = {"creator": f"ocibuild {__version__}"}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--annotation {pair!r}: expected KEY=VALUE")
        claims[key] = value
    return claims


def cmd_sign(args: argparse.Namespace) -> int:
    """``ocibuild sign LOCATION --key KEY``: sign every manifest LOCATION names; attach attestations."""
    from .signing import attest, read_statement, sign_image, subjects_of

    ref = _registry_ref(args.location, "sign")
    claims = _optional_claims(args.annotation)
    statements = []
    for path in args.attestation:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"--attestation {path}: {exc.strerror}") from None
        statements.append((path, raw, read_statement(raw, f"--attestation {path}")))
    key = load_key(args.key)
    client = _client(args)
    subjects = subjects_of(client, ref)
    wanted = {str(s.digest) for s in subjects}
    for path, _raw, (_kind, named) in statements:
        if not wanted & set(named):
            raise ConfigError(f"--attestation {path}: its subjects ({', '.join(named[:4])}) are none of the "
                              f"manifests of {ref} ({', '.join(sorted(wanted)[:4])})")
    signed = sign_image(client, ref, [s.digest for s in subjects], key, identity=args.identity, optional=claims)
    for subject, done in zip(subjects, signed, strict=True):
        print(f"signed   {subject.label:<24} {subject.digest}  {ref.name}:{done.tag}")
    for path, raw, (kind, named) in statements:
        for subject in subjects:
            if str(subject.digest) in named:
                done = attest(client, ref, subject.digest, raw, key)
                print(f"attested {subject.label:<24} {subject.digest}  {ref.name}:{done.tag}  {kind}  ({path})")
    return 0


def load_key(path: Path) -> SigningKey:
    """The private key at ``path``; its password from ``$OCIBUILD_SIGNING_PASSWORD`` or a prompt."""
    from .signing import load_signing_key, private_key_is_encrypted

    password: bytes | None = None
    if private_key_is_encrypted(path):
        password = _env_password() or _ask(f"Password for {path}: ")
    return load_signing_key(path, password)


def verify_rebuild(args: argparse.Namespace) -> int:
    """``ocibuild verify LOCATION --rebuild [--offline-from DIR] [--project DIR]``: build again from the
    recorded provenance in a fresh store; ``reproduced sha256:...`` or the first layer that differs."""
    from .rebuild import rebuild_location
    from .store import ContentStore

    location = parse_location(args.location)
    store = ContentStore(args.cache_dir) if args.cache_dir else ContentStore.default()
    client = _client(args) if isinstance(location, Registry) else None
    report = rebuild_location(location, store=store, client=client, wheelhouse=args.offline_from,
                              project=args.project)
    print(report.summary())
    return 0 if report.reproduced else 1


def cmd_verify(args: argparse.Namespace) -> int:
    """``ocibuild verify LOCATION --key PUB`` (and ``--rebuild``, handled by :func:`verify_rebuild`)."""
    rebuild = bool(getattr(args, "rebuild", False))
    if args.key is None and not rebuild:
        raise ConfigError("verify: give --key PUB to check signatures and attestations")
    if args.key is not None:
        from .signing import load_public_key, verify

        ref = _registry_ref(args.location, "verify")
        public = load_public_key(args.key)
        report = verify(_client(args), ref, public)
        if args.json:
            print(json.dumps(report.to_dict(), indent=2))
        else:
            for check in report.checks:
                print(f"{'ok' if check.ok else 'FAILED':<7} {check.message}")
        from .evidence import verify_documents
        from .store import ContentStore

        documents = verify_documents(_client(args), ref, public, ContentStore.default())
        if not args.json:
            for held, message in documents:
                print(f"{'ok' if held else 'FAILED':<7} {message}")
        report.raise_for_failures()
        failed = [m for held, m in documents if not held]
        if failed:
            raise VerificationFailed(failed[0] + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""))
        signatures = sum(1 for c in report.checks if c.kind == "signature")
        attestations = len(report.checks) - signatures
        documents_text = f" and {len(documents)} attached document{'s' if len(documents) != 1 else ''}" \
            if documents else ""
        print(f"verified {signatures} signature{'s' if signatures != 1 else ''} and {attestations} "
              f"attestation{'s' if attestations != 1 else ''}{documents_text} of {ref} with {args.key}",
              file=sys.stderr)
    if rebuild:
        return verify_rebuild(args)
    return 0

"""Command-line options every registry-facing command shares, and the content store and registry
client they describe (one place for ``ocibuild``'s own commands and the supply-chain ones)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError
from .store import ContentStore

if TYPE_CHECKING:
    from .events import EventHandler
    from .registry import CredentialProvider, RegistryClient
    from .spec import Platform

__all__ = ["client_from", "creds_from", "registry_options", "store_and_registry_options", "store_from"]


def registry_options(p: argparse.ArgumentParser) -> None:
    """``--insecure-registry HOST`` and ``--ca-file PEM`` (both repeatable)."""
    p.add_argument("--insecure-registry", action="append", default=[], metavar="HOST",
                   help="allow plain HTTP / unverified TLS for HOST[:PORT] (repeatable)")
    p.add_argument("--ca-file", action="append", default=[], type=Path, metavar="PEM",
                   help="extra CA certificate(s) to trust for registries (repeatable)")


def store_and_registry_options(p: argparse.ArgumentParser, creds_help: str = "registry credentials", *,
                               cache: bool = True) -> None:
    """``--cache-dir`` (unless ``cache`` is False), ``--creds``, the registry options and ``--debug``."""
    if cache:
        p.add_argument("--cache-dir", type=Path, help="content store")
    p.add_argument("--creds", metavar="USER:PASSWORD", help=creds_help)
    registry_options(p)
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)


def store_from(args: argparse.Namespace) -> ContentStore:
    """``--cache-dir``, else ``$OCIBUILD_CACHE`` or the default store."""
    cache = getattr(args, "cache_dir", None)
    return ContentStore(cache) if cache else ContentStore.default()


def creds_from(args: argparse.Namespace) -> list[CredentialProvider]:
    """``--creds USER:PASSWORD`` for every registry, if given."""
    from .registry import Credentials, StaticCredentials

    return [StaticCredentials(Credentials.parse(args.creds, "--creds"))] if getattr(args, "creds", None) else []


def client_from(args: argparse.Namespace, on_event: EventHandler | None = None,
                explicit: Sequence[CredentialProvider] | None = None) -> RegistryClient:
    """A registry client with the options' TLS settings and credentials (``explicit``, default
    ``--creds``), before the docker/podman logins."""
    from .registry import RegistryClient, TLSConfig, default_credentials

    for ca in args.ca_file:
        if not ca.is_file():
            raise ConfigError(f"--ca-file {ca}: no such file")
    tls = TLSConfig(insecure_registries=tuple(args.insecure_registry), ca_files=tuple(args.ca_file))
    return RegistryClient(credentials=default_credentials(creds_from(args) if explicit is None else explicit),
                          tls=tls, on_event=on_event if on_event is not None else (lambda _: None))


def platform_from(args: argparse.Namespace) -> Platform | None:
    """``--platform`` as a Platform (None when not given); one clear error when it is not one."""
    from .spec import Platform

    try:
        return Platform.parse(args.platform) if args.platform else None
    except ValueError as exc:
        raise ConfigError(f"--platform: {exc}") from None

"""``ocibuild sbom LOCATION`` and ``ocibuild provenance LOCATION``: print the document attached to an
image, byte for byte (so ``ocibuild sbom X | sha256sum`` is the digest of the layer that holds it).
The ``ocibuild`` command adds them with :func:`add_parsers`; everything heavy loads only when one runs."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..cliargs import client_from, platform_from, store_and_registry_options, store_from
from ..errors import ImageNotFound
from .artifact import CYCLONEDX_JSON, IN_TOTO_JSON, SPDX_JSON

if TYPE_CHECKING:
    from ..registry.client import RegistryClient
    from ..transports import Location
    from .read import Attached

SBOM_FORMATS = {"spdx": SPDX_JSON, "cyclonedx": CYCLONEDX_JSON}
_NAMES = {SPDX_JSON: "SPDX", CYCLONEDX_JSON: "CycloneDX"}
_ONE = {SPDX_JSON: "an SPDX one", CYCLONEDX_JSON: "a CycloneDX one"}


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("location", help="e.g. oci:out/app:v1, oci-archive:app.tar or docker://127.0.0.1:5000/app:1")
    p.add_argument("--platform", help="which image of an index (default: the host's)")
    store_and_registry_options(p)


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sbom`` and ``provenance`` to the ``ocibuild`` command's subcommands (run them with
    :func:`cmd_sbom` / :func:`cmd_provenance`)."""
    s = sub.add_parser("sbom", help="print the SBOM attached to an image",
                       description="Print the SBOM (SPDX or CycloneDX JSON) attached to the image at LOCATION as "
                                   "an OCI referrer; for an index, to the image for --platform.")
    _common(s)
    s.add_argument("--format", choices=sorted(SBOM_FORMATS),
                   help="which SBOM format (default: SPDX if attached, else CycloneDX)")
    p = sub.add_parser("provenance", help="print the SLSA provenance attached to an image",
                       description="Print the in-toto statement (SLSA provenance) attached to the image at LOCATION "
                                   "(or to its index) as an OCI referrer.")
    _common(p)


def _client(args: argparse.Namespace, location: Location) -> RegistryClient | None:
    from ..transports import Registry

    return client_from(args) if isinstance(location, Registry) else None


def _find(args: argparse.Namespace, types: tuple[str, ...], *,
          index_first: bool) -> tuple[str, list[Attached]]:
    """``LOCATION@digest`` of the subject looked at first, and the documents of ``types`` found."""
    from ..transports import parse_location
    from .read import find_attached

    location = parse_location(args.location)
    chain, found = find_attached(location, platform_from(args), types, store=store_from(args),
                                 client=_client(args, location), index_first=index_first)
    return f"{location}@{(chain[0] if index_first else chain[-1]).digest}", found


def _print(found: list[Attached], artifact_type: str) -> bool:
    """Write the last listed document of ``artifact_type`` to stdout, byte for byte; False if none."""
    chosen = [a for a in found if a.descriptor.artifact_type == artifact_type]
    if not chosen:
        return False
    sys.stdout.buffer.write(chosen[-1].payload)
    sys.stdout.flush()
    return True


def cmd_sbom(args: argparse.Namespace) -> int:
    """``ocibuild sbom LOCATION [--platform P] [--format spdx|cyclonedx]``: print the attached SBOM (for
    an index, its image for the platform; default the host's)."""
    where, found = _find(args, (SPDX_JSON, CYCLONEDX_JSON), index_first=False)
    formats = [args.format] if args.format else list(SBOM_FORMATS)
    for name in formats:
        if _print(found, SBOM_FORMATS[name]):
            return 0
    if found:  # only the other format is attached
        other = next(k for k, v in SBOM_FORMATS.items() if v == found[-1].descriptor.artifact_type)
        raise ImageNotFound(f"no {_NAMES[SBOM_FORMATS[args.format]]} SBOM is attached to {where} "
                            f"({_ONE[SBOM_FORMATS[other]]} is: --format {other}); build with --sbom {args.format}")
    raise ImageNotFound(f"no SBOM is attached to {where}; build with --sbom {args.format or 'spdx'}")


def cmd_provenance(args: argparse.Namespace) -> int:
    """``ocibuild provenance LOCATION [--platform P]``: print the attached in-toto provenance statement
    (the index's, else the platform image's)."""
    where, found = _find(args, (IN_TOTO_JSON,), index_first=True)
    if not _print(found, IN_TOTO_JSON):
        raise ImageNotFound(f"no provenance is attached to {where}; build with --provenance")
    return 0

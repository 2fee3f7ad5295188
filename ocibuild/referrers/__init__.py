"""Documents attached to images as OCI 1.1 referrers (an SBOM, a provenance statement), never inside
the image index: each is an artifact manifest (``artifactType``, the empty config, one layer holding
the document, ``subject`` = the image's manifest or index), pushed by digest.

- registries: :func:`attach`; found by the referrers API, or the fallback tag ``sha256-<hex>`` (an
  index merged with what other tools listed there, never overwritten blindly);
- OCI layouts: :func:`attach_to_layout` (listed untagged in ``index.json``); OCI archives: the sink
  writes :func:`layout_additions` with the image;
- reading: :func:`list_attached`, and the ``ocibuild sbom`` / ``ocibuild provenance`` commands
  (:mod:`ocibuild.referrers.cli`).

Importing this package loads no registry code (requests); the registry functions load it when called.
"""

from .artifact import (
    CYCLONEDX_JSON,
    EMPTY,
    IN_TOTO_JSON,
    SBOM_TYPES,
    SPDX_JSON,
    Attachment,
    artifact_blobs,
    artifact_manifest,
    fallback_tag,
)
from .layout import LayoutAdditions, attach_to_layout, layout_additions
from .read import Attached, find_attached, list_attached, resolve_subjects
from .remote import attach, listed_referrers

__all__ = [
    "CYCLONEDX_JSON",
    "EMPTY",
    "IN_TOTO_JSON",
    "SBOM_TYPES",
    "SPDX_JSON",
    "Attached",
    "Attachment",
    "LayoutAdditions",
    "artifact_blobs",
    "artifact_manifest",
    "attach",
    "attach_to_layout",
    "fallback_tag",
    "find_attached",
    "layout_additions",
    "list_attached",
    "listed_referrers",
    "resolve_subjects",
]

"""Exact SBOMs and SLSA provenance of a build, generated from what the build installed (every wheel
and ``.deb`` by its sha256, the base digest, model file hashes), never scanned guesses, and
reproducible: the same build gives the same bytes. Pure generation: nothing is written or pushed
here; referrer and signing code attaches each :class:`Document` to its ``subject``.

- :func:`inventory`: what one platform image holds (:class:`Inventory`);
- :func:`spdx_document` (SPDX 2.3 JSON) and :func:`cyclonedx_document` (CycloneDX 1.6 JSON) of it;
- :func:`slsa_provenance`: an in-toto Statement v1 with a SLSA provenance v1 predicate (build type
  :data:`BUILD_TYPE`) over every image manifest and the index;
- :func:`documents`: all of them for a build, one :class:`Document` per document and subject.

>>> from ocibuild import attest
>>> docs = attest.documents(ocibuild.build(plan), kind="cyclonedx")  # doctest: +SKIP
>>> [(d.artifact_type, str(d.subject.digest)) for d in docs]  # doctest: +SKIP
"""

from __future__ import annotations

from .document import SBOM_KINDS, Document, documents
from .inventory import Inventory, Package, inventory
from .provenance import BUILD_TYPE, IN_TOTO_JSON, PREDICATE_TYPE, STATEMENT_TYPE, slsa_provenance
from .sbom import CYCLONEDX_JSON, SPDX_JSON, cyclonedx_document, spdx_document

__all__ = ["BUILD_TYPE", "CYCLONEDX_JSON", "IN_TOTO_JSON", "PREDICATE_TYPE", "SBOM_KINDS", "SPDX_JSON",
           "STATEMENT_TYPE", "Document", "Inventory", "Package", "cyclonedx_document", "documents", "inventory",
           "slsa_provenance", "spdx_document"]

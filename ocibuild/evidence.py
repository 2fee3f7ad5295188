"""Supply-chain evidence written with a build: SBOMs and SLSA provenance attached to each output as
OCI 1.1 referrers (never inside the image index), and with a signing key, cosign signatures of every
manifest and signed DSSE attestations of the documents.

``publish(result, evidence=Evidence(sbom="spdx", provenance=True, sign_key=key))`` does it for every
sink that can hold it: registries (referrers API, else the ``sha256-<hex>`` fallback tag), OCI layouts
and ``oci-archive:`` files (untagged ``index.json`` entries); a ``docker-archive:`` cannot.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .errors import ConfigError
from .events import EventHandler, Note, ignore

if TYPE_CHECKING:
    from .attest import Document
    from .build import BuildResult
    from .referrers import Attachment
    from .registry import RegistryClient
    from .signing import PublicKey, SigningKey
    from .sinks import Sink
    from .spec import Descriptor, Reference
    from .store import ContentStore

__all__ = ["SBOM_FORMATS", "Evidence", "evidence_documents", "verify_documents", "with_documents", "with_evidence"]

SBOM_FORMATS = ("spdx", "cyclonedx", "none")
SPDX_PREDICATE = "https://spdx.dev/Document"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"


@dataclass(frozen=True, kw_only=True, slots=True)
class Evidence:
    """What to attach to a build's outputs: an SBOM (``spdx``, ``cyclonedx`` or ``none``), the SLSA
    provenance, and with ``sign_key`` signatures of every manifest and signed attestations."""

    sbom: str = "spdx"
    provenance: bool = True
    sign_key: SigningKey | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.sbom not in SBOM_FORMATS:
            raise ConfigError(f"--sbom {self.sbom!r}: use one of {', '.join(SBOM_FORMATS)}")

    @property
    def empty(self) -> bool:
        return self.sbom == "none" and not self.provenance and self.sign_key is None


def evidence_documents(result: BuildResult, evidence: Evidence) -> list[Document]:
    """The documents ``evidence`` asks for (deterministic: the same build gives the same bytes)."""
    from .attest import documents

    if evidence.sbom == "none" and not evidence.provenance:
        return []
    return documents(result, kind=evidence.sbom, provenance=evidence.provenance)


def _by_subject(docs: Sequence[Document], created: int | None) -> list[tuple[Descriptor, list[Attachment]]]:
    from .referrers import Attachment

    grouped: dict[str, tuple[Descriptor, list[Attachment]]] = {}
    for doc in docs:
        _, atts = grouped.setdefault(str(doc.subject.digest), (doc.subject, []))
        atts.append(Attachment.of(doc.artifact_type, doc.payload, created=created))
    return list(grouped.values())


def _predicate_type(doc: Document) -> str:
    from .attest import IN_TOTO_JSON, PREDICATE_TYPE

    if doc.artifact_type == IN_TOTO_JSON:
        return PREDICATE_TYPE
    return SPDX_PREDICATE if "spdx" in doc.artifact_type else CYCLONEDX_PREDICATE


def _statement(doc: Document) -> bytes:
    """An SBOM as an in-toto statement about its image (how cosign attests one); provenance is one already."""
    from .attest import IN_TOTO_JSON

    if doc.artifact_type == IN_TOTO_JSON:
        return doc.payload
    statement = {"_type": "https://in-toto.io/Statement/v1", "predicateType": _predicate_type(doc),
                 "predicate": json.loads(doc.payload),
                 "subject": [{"name": str(doc.subject.digest),
                              "digest": {"sha256": str(doc.subject.digest).split(":", 1)[1]}}]}
    return json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, kw_only=True, slots=True)
class _EvidenceSink:
    """A sink that writes the artifact, then attaches the documents (and signatures) to it."""

    inner: Sink
    attached: tuple[tuple[Descriptor, tuple[Attachment, ...]], ...]
    docs: tuple[Document, ...]
    sign_key: SigningKey | None
    on_event: EventHandler

    def __str__(self) -> str:
        return str(self.inner)

    def check(self) -> None:
        self.inner.check()

    def write(self, artifact: object) -> Descriptor:
        from .image import Artifact, images_of
        from .referrers import attach, attach_to_layout
        from .sinks import LayoutSink, RegistrySink

        assert isinstance(artifact, Artifact)
        descriptor = self.inner.write(artifact)
        if isinstance(self.inner, LayoutSink):
            for subject, atts in self.attached:
                attach_to_layout(self.inner.path, subject, atts)
        elif isinstance(self.inner, RegistrySink):
            # each subject has its own fallback tag (read, merged, written, read again after a pause):
            # side by side, a multi-platform build waits for those pauses once, not once per platform
            from concurrent.futures import ThreadPoolExecutor

            from .referrers.remote import push_attachment_blobs

            sink = self.inner
            present = push_attachment_blobs(sink.client, sink.reference, [a for _, atts in self.attached for a in atts])
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(self.attached)))) as pool:
                for _ in pool.map(lambda item: attach(sink.client, sink.reference, *item, present=present),
                                  self.attached):
                    pass
            if self.sign_key is not None:
                from .referrers import Attachment
                from .signing import DSSE_MEDIA_TYPE, attest, dsse_envelope, sign_image

                digests = [i.digest for i in images_of(artifact)]
                if len(digests) > 1 or digests[0] != artifact.digest:
                    digests.append(artifact.digest)
                sign_image(self.inner.client, self.inner.reference, digests, self.sign_key)
                for doc in self.docs:
                    statement = _statement(doc)
                    attest(self.inner.client, self.inner.reference, doc.subject.digest, statement, self.sign_key)
                    # the signed envelope is a referrer too, beside the document (cosign's OCI 1.1 layout)
                    attach(self.inner.client, self.inner.reference, doc.subject,
                           [Attachment.of(DSSE_MEDIA_TYPE, dsse_envelope(statement, self.sign_key),
                                          annotations={"in-toto.io/predicate-type": _predicate_type(doc)})])
                self.on_event(Note(text=f"signed  {len(digests)} manifest{'s' if len(digests) > 1 else ''} and "
                                        f"{len(self.docs)} attestation{'s' if len(self.docs) != 1 else ''} "
                                        f"in {self.inner.reference.name}"))
        return descriptor


def with_evidence(sinks: Sequence[Sink], result: BuildResult, evidence: Evidence | None,
                  on_event: EventHandler = ignore) -> list[Sink]:
    """``sinks`` that also attach ``evidence`` for ``result``: registries and layouts after the image
    is written, ``oci-archive:`` files with it; a ``docker-archive:`` gets none (it cannot hold them), and
    signatures go only to registries (a note says so for the others)."""

    if evidence is None or evidence.empty:
        return list(sinks)
    return with_documents(sinks, evidence_documents(result, evidence), created=result.plan.source_date_epoch,
                          sign_key=evidence.sign_key, on_event=on_event)


def with_documents(sinks: Sequence[Sink], documents: Sequence[Document], *, created: int = 0,
                   sign_key: SigningKey | None = None, on_event: EventHandler = ignore) -> list[Sink]:
    """``sinks`` that also attach ``documents`` (and with ``sign_key`` sign every manifest): what
    ``with_evidence`` does for a build, for documents made otherwise (``ocibuild rebase``). ``created``
    (``SOURCE_DATE_EPOCH``, 0 for none) stamps the artifact manifests."""
    from .sinks import LayoutSink, MultiSink, OciArchiveSink, RegistrySink

    docs = tuple(documents)
    attached = tuple((subject, tuple(atts)) for subject, atts in _by_subject(docs, created or None))
    out: list[Sink] = []
    for sink in sinks:
        if isinstance(sink, MultiSink):
            out.append(MultiSink(sinks=tuple(with_documents(sink.sinks, docs, created=created, sign_key=sign_key,
                                                            on_event=on_event))))
        elif isinstance(sink, OciArchiveSink):
            from .referrers import layout_additions

            out.append(replace(sink, additions=layout_additions(attached)))
            if sign_key is not None:
                on_event(Note(text=f"note    {sink}: signatures go only to registries; sign after pushing"))
        elif isinstance(sink, LayoutSink | RegistrySink):
            out.append(_EvidenceSink(inner=sink, attached=attached, docs=docs,
                                     sign_key=sign_key if isinstance(sink, RegistrySink) else None,
                                     on_event=on_event))
        else:  # a docker archive cannot hold referrers; a sink of the caller's own is left as it is
            out.append(sink)
    return out


def verify_documents(client: RegistryClient, ref: Reference, public_key: PublicKey,
                     store: ContentStore) -> list[tuple[bool, str]]:
    """Where ``public_key`` attested a manifest (DSSE envelopes attached beside its documents), each SBOM
    and provenance document attached to it must be attested with exactly its bytes: a document changed
    or swapped after signing fails. Returns (held, message) per document."""
    from .attest import CYCLONEDX_JSON, IN_TOTO_JSON, SPDX_JSON, Document
    from .referrers import list_attached
    from .signing import DSSE_MEDIA_TYPE, envelope_statement, subjects_of
    from .spec import Descriptor, MediaType
    from .transports import Registry

    location = Registry(reference=ref)
    results: list[tuple[bool, str]] = []
    for subject in subjects_of(client, ref):
        found = list_attached(location, subject.digest, store=store, client=client,
                              artifact_types=(SPDX_JSON, CYCLONEDX_JSON, IN_TOTO_JSON, DSSE_MEDIA_TYPE))
        attested = {statement for a in found if a.descriptor.artifact_type == DSSE_MEDIA_TYPE
                    if (statement := envelope_statement(a.payload, public_key)[0]) is not None}
        for a in found:
            kind = a.descriptor.artifact_type
            if kind == DSSE_MEDIA_TYPE:
                continue
            doc = Document(artifact_type=str(kind), media_type=str(kind), payload=a.payload,
                           subject=Descriptor(media_type=MediaType.OCI_MANIFEST, digest=subject.digest, size=0))
            what = f"{kind} document {a.descriptor.digest} of the {subject.label} {subject.digest}"
            if not attested:  # signed without attestations (ocibuild sign): nothing to hold this document to
                continue
            if _statement(doc) in attested:
                results.append((True, f"{what}: attested by {public_key.source}"))
            else:
                results.append((False, f"{what} is not attested by {public_key.source}: it was changed or added "
                                       "after signing"))
    return results

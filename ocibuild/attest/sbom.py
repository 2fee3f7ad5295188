"""SPDX 2.3 and CycloneDX 1.6 JSON documents from an :class:`~.inventory.Inventory`, byte for byte
reproducible: canonical JSON (sorted keys, no spaces), everything sorted, the creation time from
``created_epoch`` (the plan's ``SOURCE_DATE_EPOCH``), never the clock, and the SPDX
``documentNamespace`` / CycloneDX ``serialNumber`` a UUID (version 5) of the sha256 of the rest of
the document, so a different content always gets a different identifier and the same content the same.

What the documents say:

- the image (SPDX ``primaryPackagePurpose: CONTAINER``, ``SPDXRef-DOCUMENT DESCRIBES SPDXRef-image``;
  CycloneDX ``metadata.component``), with its manifest digest and ``pkg:oci`` purl;
- the base image (``image DESCENDANT_OF base``), every package (``CONTAINED_BY image``), the project's
  own files (``SPDXRef-app``, ``CONTAINED_BY image``, ``DEPENDS_ON`` every distribution the build
  installed), wheels built from an sdist (``wheel GENERATED_FROM sdist``, the sdist a ``SOURCE``
  package), models (embedded: ``CONTAINED_BY image``; a model image: ``image DEPENDS_ON model``) and
  their files (packages of purpose ``FILE``: SPDX 2.3 files need a SHA1 that the build never computes);
- a license that is not an SPDX expression is kept as text (SPDX: a ``LicenseRef-ocibuild-<hash>``
  in ``hasExtractedLicensingInfos``; CycloneDX: ``license.name``);
- a download location only for an ``http(s)`` URL on a DNS name (the exact origin of every file,
  local ones included, is in the provenance).

PEP 770 SBOMs that wheels embed are merged, not copied: the components (CycloneDX ``components``,
nested ones flattened) or packages (SPDX ``packages``, except the ones the document describes,
which are the wheel itself) become packages ``CONTAINED_BY`` the wheel's package, with their name,
version, purl, hashes (MD5 / SHA-1 / SHA-2) and license; the wheel's package names every embedded
document with its sha256. A document that cannot be read is listed that way and skipped.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..referrers.artifact import CYCLONEDX_JSON, SPDX_JSON  # the one definition of the media types
from ..spec import canonical_json
from ..spec.annotations import rfc3339
from ..version import __version__
from .inventory import EmbeddedSbom, Inventory, Model, Package, safe_text
from .licenses import DeclaredLicense, spdx_expression
from .spdx_ids import SPDX_LIST_VERSION

__all__ = ["CYCLONEDX_JSON", "NAMESPACE", "SPDX_JSON", "content_uuid", "cyclonedx_document", "spdx_document"]


NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://ocibuild.dev/")
"""The UUID namespace of the identifiers ocibuild derives from content."""

_ORIGINS = {"base": "from the base image", "build": "installed by the build"}
MAX_MERGED = 10_000  # components taken from one embedded SBOM at most
_HEX = re.compile(r"[0-9a-fA-F]+")
_HASH_LENGTHS = {"MD5": 32, "SHA1": 40, "SHA256": 64, "SHA384": 96, "SHA512": 128}
_CDX_TO_SPDX = {"MD5": "MD5", "SHA-1": "SHA1", "SHA-256": "SHA256", "SHA-384": "SHA384", "SHA-512": "SHA512"}
_SPDX_TO_CDX = {v: k for k, v in _CDX_TO_SPDX.items()}
_CDX_TYPES = frozenset({"application", "framework", "library", "container", "platform", "operating-system",
                        "device", "device-driver", "firmware", "file", "machine-learning-model", "data",
                        "cryptographic-asset"})
_DNS_URL = re.compile(r"https?://[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*"
                      r"\.[A-Za-z]{2,5}(:[0-9]{1,5})?(/\S*)?")


def content_uuid(data: Any) -> str:
    """A version 5 UUID of the sha256 of ``data``'s canonical JSON (under :data:`NAMESPACE`).

    >>> content_uuid({"a": 1}) == content_uuid({"a": 1})
    True
    """
    return str(uuid.uuid5(NAMESPACE, "sha256:" + hashlib.sha256(canonical_json(data)).hexdigest()))


def _download(url: str) -> str:
    return url if url and _DNS_URL.fullmatch(url) and "#" not in url else "NOASSERTION"


def _spdx_id(text: str) -> str:
    return "SPDXRef-" + re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-")


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


# --------------------------------------------------------------------------------------------------
# PEP 770 SBOMs embedded in wheels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class _Merged:
    """A component taken from an embedded SBOM, reduced to what both formats can state."""

    key: str  # unique within the embedded document
    type: str
    name: str
    version: str
    purl: str
    hashes: tuple[tuple[str, str], ...]  # (SPDX algorithm, hex)
    license: DeclaredLicense | None


def _hashes(pairs: Iterator[tuple[Any, Any]]) -> tuple[tuple[str, str], ...]:
    out = set()
    for alg, value in pairs:
        if isinstance(alg, str) and isinstance(value, str) and alg in _HASH_LENGTHS \
                and len(value) == _HASH_LENGTHS[alg] and _HEX.fullmatch(value):
            out.add((alg, value.lower()))
    return tuple(sorted(out))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any, limit: int = 1024) -> str:
    return safe_text(value.strip(), limit) if isinstance(value, str) else ""


def _license_of(values: Any) -> DeclaredLicense | None:
    """The license of a CycloneDX component (``licenses``) or an SPDX package (a string)."""
    if isinstance(values, str):
        text = safe_text(values.strip())
        if not text or text in ("NOASSERTION", "NONE"):
            return None
        valid = spdx_expression(text)
        return DeclaredLicense(value=valid, spdx=True) if valid else DeclaredLicense(value=text[:1024], spdx=False)
    if not isinstance(values, list):
        return None
    parts: list[str] = []
    for item in values:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("expression"), str):
            parts.append(_text(item["expression"]))
        elif isinstance(item.get("license"), dict):
            lic = item["license"]
            parts.append(_text(lic.get("id")) or _text(lic.get("name")))
    parts = [p for p in parts if p]
    if not parts:
        return None
    joined = " AND ".join(f"({p})" if len(parts) > 1 else p for p in parts)
    valid = spdx_expression(joined)
    return DeclaredLicense(value=valid, spdx=True) if valid else DeclaredLicense(value="; ".join(parts)[:1024],
                                                                                 spdx=False)


def _cdx_components(items: Any, out: list[dict[str, Any]], depth: int = 0) -> None:
    if not isinstance(items, list) or depth > 16:
        return
    for item in items:
        if len(out) >= MAX_MERGED:
            return
        if isinstance(item, dict):
            out.append(item)
            _cdx_components(item.get("components"), out, depth + 1)


def _merged(sbom: EmbeddedSbom) -> list[_Merged] | None:
    """The components of an embedded SBOM; None if it cannot be read."""
    if sbom.data is None or sbom.format == "unknown":
        return None
    try:
        doc = json.loads(sbom.data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    out: list[_Merged] = []
    if sbom.format == "cyclonedx":
        found: list[dict[str, Any]] = []
        _cdx_components(doc.get("components"), found)
        for i, c in enumerate(found):
            name = _text(c.get("name"))
            if not name:
                continue
            hashes = _list(c.get("hashes"))
            kind = c.get("type") if c.get("type") in _CDX_TYPES else "library"
            out.append(_Merged(
                key=f"{i}-{_text(c.get('bom-ref'), 256)}", type=str(kind), name=name, version=_text(c.get("version")),
                purl=p if (p := _text(c.get("purl"), 4096)).startswith("pkg:") else "",
                hashes=_hashes((_CDX_TO_SPDX.get(str(h.get("alg"))), h.get("content")) for h in hashes
                               if isinstance(h, dict)),
                license=_license_of(c.get("licenses"))))
    else:
        described = {r.get("relatedSpdxElement") for r in _list(doc.get("relationships"))
                     if isinstance(r, dict) and r.get("relationshipType") == "DESCRIBES"}
        described |= {d for d in _list(doc.get("documentDescribes")) if isinstance(d, str)}
        packages = _list(doc.get("packages"))
        for i, p in enumerate(packages[:MAX_MERGED]):
            if not isinstance(p, dict) or p.get("SPDXID") in described or not _text(p.get("name")):
                continue
            refs = _list(p.get("externalRefs"))
            purls = [_text(r.get("referenceLocator"), 4096) for r in refs
                     if isinstance(r, dict) and r.get("referenceType") == "purl"]
            checksums = _list(p.get("checksums"))
            declared = p.get("licenseDeclared")
            out.append(_Merged(
                key=f"{i}-{_text(p.get('SPDXID'), 256)}", type="library", name=_text(p.get("name")),
                version=_text(p.get("versionInfo")),
                purl=next((u for u in purls if u.startswith("pkg:")), ""),
                hashes=_hashes((c.get("algorithm"), c.get("checksumValue")) for c in checksums if isinstance(c, dict)),
                license=_license_of(declared if isinstance(declared, str) else None)))
    return out


# --------------------------------------------------------------------------------------------------
# SPDX 2.3
# --------------------------------------------------------------------------------------------------


class _Licenses:
    """``LicenseRef-`` identifiers for free-text licenses, collected for ``hasExtractedLicensingInfos``."""

    def __init__(self) -> None:
        self.refs: dict[str, str] = {}

    def declared(self, lic: DeclaredLicense | None) -> str:
        if lic is None:
            return "NOASSERTION"
        if lic.spdx:
            return lic.value
        ref = "LicenseRef-ocibuild-" + hashlib.sha256(lic.value.encode()).hexdigest()[:16]
        self.refs[ref] = lic.value
        return ref

    def infos(self) -> list[dict[str, str]]:
        return [{"licenseId": ref, "extractedText": text,
                 "name": (text.strip().splitlines() or [ref])[0][:120]} for ref, text in sorted(self.refs.items())]


def _spdx_package(spdx_id: str, name: str, *, version: str = "", purpose: str = "", sha256: str = "",
                  purl: str = "", download: str = "NOASSERTION", license: str = "", filename: str = "",
                  comment: str = "", source_info: str = "",
                  hashes: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    pkg: dict[str, Any] = {"SPDXID": spdx_id, "name": name, "downloadLocation": download, "filesAnalyzed": False,
                           "copyrightText": "NOASSERTION", "licenseConcluded": "NOASSERTION"}
    if version:
        pkg["versionInfo"] = version
    if purpose:
        pkg["primaryPackagePurpose"] = purpose
    checksums = {("SHA256", sha256)} if sha256 else set()
    checksums |= set(hashes)
    if checksums:
        pkg["checksums"] = [{"algorithm": a, "checksumValue": v} for a, v in sorted(checksums)]
    if purl:
        pkg["externalRefs"] = [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                "referenceLocator": purl}]
    if license:
        pkg["licenseDeclared"] = license
    if filename:
        pkg["packageFileName"] = filename
    if comment:
        pkg["comment"] = comment
    if source_info:
        pkg["sourceInfo"] = source_info
    return pkg


def _sbom_note(p: Package) -> str:
    if not p.sboms:
        return ""
    return "PEP 770 SBOMs: " + "; ".join(f"{s.path} (sha256:{s.sha256 or 'unread'}, {s.format})" for s in p.sboms)


def _model_parts(m: Model) -> tuple[str, str, str]:
    """SPDXID, purpose and comment of a model."""
    what = "embedded in the image" if m.embedded else f"a model image the app refers to ({m.reference})"
    return _spdx_id(f"model-{m.name}"), "OTHER" if m.embedded else "CONTAINER", f"machine-learning model, {what}"


def spdx_document(inv: Inventory, *, created_epoch: int) -> bytes:
    """The SPDX 2.3 JSON document of ``inv`` (see the module docstring), as canonical JSON bytes.

    >>> spdx_document(inventory(result), created_epoch=result.plan.source_date_epoch)  # doctest: +SKIP
    b'{"SPDXID":"SPDXRef-DOCUMENT",...'
    """
    licenses = _Licenses()
    packages: list[dict[str, Any]] = []
    relations: set[tuple[str, str, str]] = {("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image")}
    packages.append(_spdx_package("SPDXRef-image", f"{inv.name} ({inv.platform})", version=inv.digest,
                                  purpose="CONTAINER", sha256=inv.digest.split(":", 1)[1], purl=inv.purl))
    if inv.base is not None:
        packages.append(_spdx_package("SPDXRef-base", inv.base.reference, version=inv.base.digest, purpose="CONTAINER",
                                      sha256=inv.base.digest.split(":", 1)[1],
                                      comment="the base image" + (", assembled from the Debian packages below"
                                                                  if inv.base.debian else "")))
        relations.add(("SPDXRef-image", "DESCENDANT_OF", "SPDXRef-base"))
    if inv.app is not None:
        packages.append(_spdx_package("SPDXRef-app", inv.app.name, purpose="APPLICATION", sha256=inv.app.sha256,
                                      comment="the project's own files: " + ", ".join(
                                          f"{label} (diff_id {d})" for label, d in inv.app.layers)))
        relations.add(("SPDXRef-app", "CONTAINED_BY", "SPDXRef-image"))
    for p in inv.packages:
        pid = _spdx_id(f"Package-{p.ref}")
        packages.append(_spdx_package(
            pid, p.name, version=p.version, purpose="LIBRARY" if p.ecosystem == "pypi" else "",
            sha256=p.file.sha256 if p.file else "", purl=p.purl, download=_download(p.file.url if p.file else ""),
            license=licenses.declared(p.license), filename=p.file.filename if p.file else "",
            comment=_sbom_note(p), source_info=f"{_ORIGINS[p.origin]}, recorded at {p.path}"))
        relations.add((pid, "CONTAINED_BY", "SPDXRef-image"))
        if p.origin == "build" and p.ecosystem == "pypi" and inv.app is not None:
            relations.add(("SPDXRef-app", "DEPENDS_ON", pid))
        if p.sdist is not None:
            sid = _spdx_id(f"Source-{p.ref}")
            packages.append(_spdx_package(sid, p.name, version=p.version, purpose="SOURCE", sha256=p.sdist.sha256,
                                          download=_download(p.sdist.url), filename=p.sdist.filename,
                                          comment="the sdist the wheel was built from on the build machine"))
            relations.add((pid, "GENERATED_FROM", sid))
        for n, sbom in enumerate(p.sboms):
            for m in _merged(sbom) or ():
                mid = _spdx_id(f"Embedded-{p.ref}-sbom{n}-{_short(m.key)}")
                packages.append(_spdx_package(mid, m.name, version=m.version, purl=m.purl, hashes=m.hashes,
                                              license=licenses.declared(m.license),
                                              comment=f"from the PEP 770 SBOM {sbom.path}"))
                relations.add((mid, "CONTAINED_BY", pid))
    for model in inv.models:
        mid, purpose, comment = _model_parts(model)
        packages.append(_spdx_package(mid, model.name, version=model.digest, purpose=purpose, comment=comment,
                                      sha256=model.digest.split(":", 1)[1] if model.digest else ""))
        relations.add((mid, "CONTAINED_BY", "SPDXRef-image") if model.embedded
                      else ("SPDXRef-image", "DEPENDS_ON", mid))
        for f in model.files:
            fid = _spdx_id(f"{mid.removeprefix('SPDXRef-')}-file-{_short(f.path)}")
            packages.append(_spdx_package(fid, f.path, purpose="FILE", sha256=f.sha256))
            relations.add((fid, "CONTAINED_BY", mid))
    doc: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{inv.name} {inv.platform} {inv.digest}",
        "creationInfo": {"created": rfc3339(created_epoch), "creators": [f"Tool: ocibuild-{__version__}"],
                         "licenseListVersion": ".".join(SPDX_LIST_VERSION.split(".")[:2])},
        "packages": sorted(packages, key=lambda x: x["SPDXID"]),
        "relationships": [{"spdxElementId": a, "relationshipType": t, "relatedSpdxElement": b}
                          for a, t, b in sorted(relations)],
    }
    if licenses.refs:
        doc["hasExtractedLicensingInfos"] = licenses.infos()
    doc["documentNamespace"] = f"https://ocibuild.dev/spdx/{inv.name}/{content_uuid(doc)}"
    return canonical_json(doc)


# --------------------------------------------------------------------------------------------------
# CycloneDX 1.6
# --------------------------------------------------------------------------------------------------


def _cdx_licenses(lic: DeclaredLicense | None) -> list[dict[str, Any]]:
    if lic is None:
        return []
    if lic.spdx:
        return [{"expression": lic.value}]
    return [{"license": {"name": lic.value}}]


def _cdx_hashes(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"alg": _SPDX_TO_CDX[a], "content": v} for a, v in sorted(pairs) if a in _SPDX_TO_CDX]


def _props(**values: str) -> list[dict[str, str]]:
    return [{"name": f"ocibuild:{k.replace('_', '-')}", "value": v} for k, v in sorted(values.items()) if v]


def _component(ref: str, kind: str, name: str, *, version: str = "", purl: str = "", sha256: str = "",
               lic: DeclaredLicense | None = None, refs: list[dict[str, Any]] | None = None,
               props: list[dict[str, str]] | None = None, description: str = "",
               hashes: tuple[tuple[str, str], ...] = (), children: list[dict[str, Any]] | None = None,
               ) -> dict[str, Any]:
    c: dict[str, Any] = {"bom-ref": ref, "type": kind, "name": name}
    if version:
        c["version"] = version
    if purl:
        c["purl"] = purl
    all_hashes = set(hashes) | ({("SHA256", sha256)} if sha256 else set())
    if all_hashes:
        c["hashes"] = _cdx_hashes(tuple(all_hashes))
    if lic is not None:
        c["licenses"] = _cdx_licenses(lic)
    if refs:
        c["externalReferences"] = refs
    if props:
        c["properties"] = props
    if description:
        c["description"] = description
    if children:
        c["components"] = sorted(children, key=lambda x: x["bom-ref"])
    return c


def cyclonedx_document(inv: Inventory, *, created_epoch: int) -> bytes:
    """The CycloneDX 1.6 JSON BOM of ``inv`` (see the module docstring), as canonical JSON bytes: the
    image is ``metadata.component``; packages, base, app and models are ``components`` (files of a
    model and components merged from PEP 770 SBOMs nested in theirs); ``dependencies`` has the image
    on everything at its top level and the app on the distributions the build installed.

    >>> cyclonedx_document(inventory(result), created_epoch=0)  # doctest: +SKIP
    """
    components: list[dict[str, Any]] = []
    image_deps: set[str] = set()
    app_deps: set[str] = set()
    if inv.base is not None:
        components.append(_component("base", "container", inv.base.reference, version=inv.base.digest,
                                     sha256=inv.base.digest.split(":", 1)[1],
                                     description="the base image" + (", assembled from Debian packages"
                                                                     if inv.base.debian else "")))
        image_deps.add("base")
    if inv.app is not None:
        components.append(_component("app", "application", inv.app.name, sha256=inv.app.sha256,
                                     description="the project's own files",
                                     props=[{"name": "ocibuild:layer", "value": f"{label} {d}"}
                                            for label, d in inv.app.layers]))
        image_deps.add("app")
    for p in inv.packages:
        refs: list[dict[str, Any]] = []
        if p.file is not None and p.file.url:
            refs.append({"type": "distribution", "url": p.file.url,
                         "hashes": [{"alg": "SHA-256", "content": p.file.sha256}]})
        if p.sdist is not None and p.sdist.url:
            refs.append({"type": "source-distribution", "url": p.sdist.url,
                         "hashes": [{"alg": "SHA-256", "content": p.sdist.sha256}]})
        children = []
        for n, sbom in enumerate(p.sboms):
            for m in _merged(sbom) or ():
                children.append(_component(f"{p.ref}/sbom{n}/{_short(m.key)}", m.type, m.name, version=m.version,
                                           purl=m.purl, hashes=m.hashes, lic=m.license,
                                           props=_props(embedded_sbom=sbom.path)))
        components.append(_component(
            p.ref, "library", p.name, version=p.version, purl=p.purl, sha256=p.file.sha256 if p.file else "",
            lic=p.license, refs=sorted(refs, key=lambda r: (r["type"], r["url"])) or None, children=children,
            props=_props(origin=p.origin, path=p.path, architecture=p.architecture,
                         file=p.file.filename if p.file else "",
                         sdist=f"{p.sdist.filename} sha256:{p.sdist.sha256}" if p.sdist else "",
                         embedded_sboms="; ".join(f"{s.path} sha256:{s.sha256 or 'unread'}" for s in p.sboms))))
        image_deps.add(p.ref)
        if p.origin == "build" and p.ecosystem == "pypi" and inv.app is not None:
            app_deps.add(p.ref)
    for model in inv.models:
        ref = f"model-{model.name}"
        files = [_component(f"{ref}/{_short(f.path)}", "file", f.path, sha256=f.sha256) for f in model.files]
        components.append(_component(ref, "machine-learning-model", model.name, version=model.digest,
                                     sha256=model.digest.split(":", 1)[1] if model.digest else "", children=files,
                                     props=_props(embedded="true" if model.embedded else "false",
                                                  reference=model.reference)))
        image_deps.add(ref)
    dependencies = [{"ref": "image", "dependsOn": sorted(image_deps)}]
    if inv.app is not None:
        dependencies.append({"ref": "app", "dependsOn": sorted(app_deps)})
    bom: dict[str, Any] = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(created_epoch),
            "tools": {"components": [{"type": "application", "name": "ocibuild", "version": __version__}]},
            "component": _component("image", "container", inv.name, version=inv.digest, purl=inv.purl,
                                    sha256=inv.digest.split(":", 1)[1], props=_props(platform=inv.platform)),
        },
        "components": sorted(components, key=lambda c: c["bom-ref"]),
        "dependencies": sorted(dependencies, key=lambda d: str(d["ref"])),
    }
    bom["serialNumber"] = f"urn:uuid:{content_uuid(bom)}"
    return canonical_json(bom)

"""An acceptance check for cosign simple signatures that is not ocibuild's: written from containers/image's
documented rules (containers-signature(5), containers-policy.json(5) ``sigstoreSigned``, and its
``signature/internal/sigstore_payload.go`` / ``policy_eval_sigstore.go`` / ``policy_reference_match.go``),
importing nothing from ocibuild, with the cryptography done by the ``openssl`` command line.

What containers/image accepts (and so this module):

- the signatures of a manifest are the layers of the OCI image manifest at tag ``sha256-<hex>.sig`` of the
  same repository, served as ``application/vnd.oci.image.manifest.v1+json``; only layers of media type
  ``application/vnd.dev.cosign.simplesigning.v1+json`` are signatures; a layer's blob is its payload
  (checked against its digest), its ``dev.cosignproject.cosign/signature`` annotation the base64 signature;
- one accepted signature is enough; none (no tag, or no signature layer) is "no signature exists";
- a signature is accepted when: the base64 decodes (standard alphabet, padded); it verifies over the
  payload bytes with the key (ECDSA or RSA PKCS#1 v1.5, SHA-256); the payload is a JSON object with
  exactly ``critical`` and ``optional``; ``critical`` has exactly ``type`` (= "cosign container image
  signature"), ``image`` (exactly ``docker-manifest-digest``, a string) and ``identity`` (exactly
  ``docker-reference``, a string); ``optional`` is null or an object whose ``creator`` is a string and
  ``timestamp`` an integer; duplicate keys are an error; the digest equals the manifest's; the identity
  passes the policy's ``signedIdentity`` rule (default ``matchRepoDigestOrExact``).

Use :func:`accept` on one payload + signature, :func:`check_image` on an image in a registry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import requests

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
ACCEPT = ", ".join([OCI_MANIFEST, *INDEX_TYPES, "application/vnd.docker.distribution.manifest.v2+json"])
COSIGN_TYPE = "cosign container image signature"


class Rejected(AssertionError):
    """The signature (or image) is not accepted; the message says why."""


# --- cryptography: the openssl command line ------------------------------------------------------


def public_key_pem(key_file: Path) -> bytes:
    """The ``PUBLIC KEY`` PEM of ``key_file`` (a public key, or a certificate whose key is taken)."""
    data = key_file.read_bytes()
    if b"BEGIN CERTIFICATE" in data:
        out = subprocess.run(["openssl", "x509", "-in", str(key_file), "-noout", "-pubkey"], capture_output=True,
                             check=True)
        return out.stdout
    return data


def openssl_verifies(key_pem: bytes, signature: bytes, payload: bytes) -> bool:
    """``openssl dgst -sha256 -verify KEY -signature SIG PAYLOAD``: ECDSA (DER) or RSA PKCS#1 v1.5."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "key.pem").write_bytes(key_pem)
        (d / "sig").write_bytes(signature)
        (d / "payload").write_bytes(payload)
        out = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(d / "key.pem"), "-signature",
                              str(d / "sig"), str(d / "payload")], capture_output=True, text=True, check=False)
    return out.returncode == 0 and out.stdout.strip() == "Verified OK"


# --- the payload -----------------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise Rejected(f"duplicate JSON key {k!r}")
        seen[k] = v
    return seen


def _exactly(obj: Any, fields: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise Rejected(f"{where} is not a JSON object")
    if set(obj) != fields:
        raise Rejected(f"{where} has fields {sorted(obj)}; exactly {sorted(fields)} are required")
    return obj


def read_payload(payload: bytes) -> tuple[str, str]:
    """``(docker-manifest-digest, docker-reference)`` of a payload, or :class:`Rejected`."""
    try:
        doc = json.loads(payload, object_pairs_hook=_pairs)
    except ValueError as exc:
        raise Rejected(f"payload is not JSON: {exc}") from None
    top = _exactly(doc, {"critical", "optional"}, "payload")
    opt = top["optional"]
    if opt is not None:
        if not isinstance(opt, dict):
            raise Rejected("optional is not an object")
        if "creator" in opt and not isinstance(opt["creator"], str):
            raise Rejected("optional.creator is not a string")
        if "timestamp" in opt:
            ts = opt["timestamp"]
            if isinstance(ts, bool) or not isinstance(ts, int | float) or int(ts) != ts:
                raise Rejected("optional.timestamp is not an integer")
    crit = _exactly(top["critical"], {"type", "image", "identity"}, "critical")
    if crit["type"] != COSIGN_TYPE:
        raise Rejected(f"unrecognized signature type {crit['type']!r}")
    image = _exactly(crit["image"], {"docker-manifest-digest"}, "critical.image")
    ident = _exactly(crit["identity"], {"docker-reference"}, "critical.identity")
    digest, ref = image["docker-manifest-digest"], ident["docker-reference"]
    if not isinstance(digest, str) or not isinstance(ref, str):
        raise Rejected("docker-manifest-digest / docker-reference are not strings")
    return digest, ref


# --- references and signedIdentity ----------------------------------------------------------------


def split_reference(text: str) -> tuple[str, str | None, str | None]:
    """``(name, tag, digest)`` of a docker reference, normalised as containers/image does
    (``busybox`` -> ``docker.io/library/busybox``)."""
    rest, _, digest = text.partition("@")
    tag = None
    if ":" in rest.rsplit("/", 1)[-1]:
        rest, tag = rest.rsplit(":", 1)
    first, slash, remainder = rest.partition("/")
    if not slash or not ("." in first or ":" in first or first == "localhost"):
        first, remainder = "docker.io", rest
    if first == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    return f"{first}/{remainder}", tag, digest or None


def identity_accepted(signed: str, intended: str, rule: str) -> bool:
    """Whether a signature for ``signed`` is accepted for an image pulled as ``intended`` under the
    ``signedIdentity`` ``rule`` (matchExact, matchRepoDigestOrExact, matchRepository)."""
    s_name, s_tag, s_digest = split_reference(signed)
    i_name, i_tag, i_digest = split_reference(intended)
    s_name_only = s_tag is None and s_digest is None
    if rule == "matchRepository":
        return s_name == i_name
    if rule == "matchExact":
        return not s_name_only and (s_name, s_tag, s_digest) == (i_name, i_tag, i_digest) and (
            i_tag is not None or i_digest is not None)
    if rule == "matchRepoDigestOrExact":
        if s_name_only:
            return False
        if i_tag is not None:
            return (s_name, s_tag, s_digest) == (i_name, i_tag, i_digest)
        if i_digest is not None:
            return s_name == i_name
        return False
    raise ValueError(f"unknown signedIdentity rule {rule!r}")


def accept(payload: bytes, b64_signature: str, key_pem: bytes, *, manifest_digest: str, intended: str,
           rule: str = "matchRepoDigestOrExact") -> None:
    """Accept one signature of the manifest ``manifest_digest`` (of the image pulled as ``intended``), or
    raise :class:`Rejected` saying why."""
    try:
        signature = base64.b64decode(b64_signature, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected(f"signature is not base64: {exc}") from None
    if not signature or not openssl_verifies(key_pem, signature, payload):
        raise Rejected("cryptographic signature verification failed")
    digest, signed_ref = read_payload(payload)
    if digest != manifest_digest:
        raise Rejected(f"Signature for digest {digest} does not match")
    if not identity_accepted(signed_ref, intended, rule):
        raise Rejected(f"Signature for identity {signed_ref!r} is not accepted")


# --- an image in a registry -------------------------------------------------------------------------


def _get(session: requests.Session, url: str, accept_types: str | None = None) -> requests.Response:
    return session.get(url, headers={"Accept": accept_types} if accept_types else {}, timeout=30)


def manifests_of(base_url: str, repo: str, ref: str, session: requests.Session) -> list[str]:
    """The manifest digests ``repo:ref`` stands for: its own, then each an index lists."""
    r = _get(session, f"{base_url}/v2/{repo}/manifests/{ref}", ACCEPT)
    r.raise_for_status()
    digests = ["sha256:" + hashlib.sha256(r.content).hexdigest()]
    doc = r.json()
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        digests += [m["digest"] for m in doc["manifests"]]
    return digests


def check_manifest(base_url: str, repo: str, digest: str, key_pem: bytes, *, intended: str,
                   rule: str = "matchRepoDigestOrExact", session: requests.Session) -> str:
    """Accept the signatures of manifest ``digest`` in ``repo`` as containers/image does: the
    ``docker-reference`` accepted, or :class:`Rejected` with the reasons."""
    tag = digest.replace(":", "-", 1) + ".sig"
    r = _get(session, f"{base_url}/v2/{repo}/manifests/{tag}", ACCEPT)
    if r.status_code == 404:
        raise Rejected("A signature was required, but no signature exists")
    r.raise_for_status()
    if r.headers.get("Content-Type", "").split(";")[0] != OCI_MANIFEST:
        raise Rejected(f"unexpected MIME type for sigstore attachment manifest: {r.headers.get('Content-Type')}")
    reasons: list[str] = []
    for layer in r.json().get("layers", []):
        if layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        blob = _get(session, f"{base_url}/v2/{repo}/blobs/{layer['digest']}")
        blob.raise_for_status()
        if "sha256:" + hashlib.sha256(blob.content).hexdigest() != layer["digest"]:
            reasons.append("digest mismatch of a signature payload")
            continue
        b64 = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if b64 is None:
            reasons.append(f"missing {SIGNATURE_ANNOTATION} annotation")
            continue
        try:
            accept(blob.content, b64, key_pem, manifest_digest=digest, intended=intended, rule=rule)
        except Rejected as exc:
            reasons.append(str(exc))
            continue
        return read_payload(blob.content)[1]
    if not reasons:
        raise Rejected("A signature was required, but no signature exists")
    raise Rejected("None of the signatures were accepted, reasons: " + "; ".join(reasons))


def check_image(base_url: str, repo: str, ref: str, key_pem: bytes, *, rule: str = "matchRepoDigestOrExact",
                session: requests.Session, host: str) -> dict[str, str]:
    """Every manifest ``repo:ref`` (``ref`` a tag or ``sha256:...``) stands for must be accepted, as the
    image ``host/repo:ref`` (or ``@digest``) would be pulled; ``{digest: identity}`` or :class:`Rejected`."""
    intended = f"{host}/{repo}" + (f"@{ref}" if ref.startswith("sha256:") else f":{ref}")
    return {d: check_manifest(base_url, repo, d, key_pem, intended=intended, rule=rule, session=session)
            for d in manifests_of(base_url, repo, ref, session)}

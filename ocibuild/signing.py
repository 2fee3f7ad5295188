"""Key-based signing in cosign's registry formats, the ones containers/image (podman, skopeo, CRI-O)
reads with a ``sigstoreSigned`` policy and ``cosign verify --key`` checks.

- **Keys**: :func:`keygen` writes an ECDSA P-256 key pair: ``PREFIX.key`` (PKCS#8 PEM, encrypted with
  the password, mode 0600 from its first byte, never replacing a file) and ``PREFIX.pub`` (the public key
  as PEM, what ``policy.json``'s ``keyPath`` and ``cosign verify --key`` read). Signatures are
  deterministic ECDSA-SHA256 (RFC 6979): the same key and image give the same bytes.
- **Signatures** (:func:`sign_image`): for each manifest digest, a simple-signing payload
  ``{"critical": {"identity": {"docker-reference": ...}, "image": {"docker-manifest-digest": ...},
  "type": "cosign container image signature"}, "optional": {...}}`` is a layer of media type
  ``application/vnd.dev.cosign.simplesigning.v1+json`` whose ``dev.cosignproject.cosign/signature``
  annotation is the base64 signature, in an OCI image manifest at tag ``sha256-<hex>.sig`` of the same
  repository. Signatures already there are kept (other keys, other tools); this key's earlier signature
  of the same digest is replaced, not duplicated.
- **Attestations** (:func:`attest`): an in-toto statement wrapped in a DSSE envelope (payload type
  ``application/vnd.in-toto+json``, signed over the DSSE pre-authentication encoding), a layer of media
  type ``application/vnd.dsse.envelope.v1+json`` with a ``predicateType`` annotation at tag
  ``sha256-<hex>.att``. This key's earlier attestation of the same predicate type is replaced.
- **Verification** (:func:`verify`): every manifest of an image or index (the index and each platform)
  must carry a signature by the key whose payload names exactly its digest and the repository, and
  every attestation attached to them must verify and name the manifest among its subjects.

The ``docker-reference`` signed is ``REGISTRY/REPO:TAG`` when the image was named by tag (what
containers/image's own signer writes; the default ``matchRepoDigestOrExact`` policy then accepts pulls
by that tag and by digest), else ``REGISTRY/REPO`` (what cosign writes; a policy needs
``signedIdentity: matchRepository`` for it).

Secrets: the password and the private key never reach a message, a log line or the registry; a wrong
password is one error line.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from .errors import ConfigError, ImageNotFound, OcibuildError, RegistryError, VerificationFailed
from .referrers.artifact import IN_TOTO_JSON
from .spec import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Digest,
    ImageIndex,
    ImageManifest,
    MediaType,
    Reference,
    SpecError,
    canonical_json,
    parse_manifest_or_index,
)
from .version import __version__

if TYPE_CHECKING:
    from .registry import RegistryClient, Repository

__all__ = [
    "ATTESTATION_TAG_SUFFIX",
    "DSSE_MEDIA_TYPE",
    "IN_TOTO_PAYLOAD_TYPE",
    "PASSWORD_ENV",
    "SIGNATURE_ANNOTATION",
    "SIGNATURE_TAG_SUFFIX",
    "SIMPLE_SIGNING_MEDIA_TYPE",
    "Check",
    "PublicKey",
    "SignedManifest",
    "SigningKey",
    "Subject",
    "VerifyReport",
    "attest",
    "attestation_tag",
    "dsse_pae",
    "keygen",
    "load_public_key",
    "load_signing_key",
    "parse_simple_signing",
    "private_key_is_encrypted",
    "read_statement",
    "sign_image",
    "signature_tag",
    "simple_signing_payload",
    "subjects_of",
    "verify",
]

SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO_PAYLOAD_TYPE = IN_TOTO_JSON
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
SIGNATURE_TYPE = "cosign container image signature"
SIGNATURE_TAG_SUFFIX = ".sig"
ATTESTATION_TAG_SUFFIX = ".att"
PASSWORD_ENV = "OCIBUILD_SIGNING_PASSWORD"
"""Environment variable the CLI reads the signing key's password from (else it asks on the terminal)."""
IN_TOTO_STATEMENT_TYPES = frozenset({"https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1"})
_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)
_MAX_KEY_FILE = 64 << 10


# ------------------------------------------------------------------------------------------------
# keys
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class PublicKey:
    """A public key that verifies signatures: ECDSA (SHA-256, as cosign and containers/image
    hard-code), RSA (PKCS#1 v1.5, SHA-256) or Ed25519. ``source`` names it in messages.

    >>> load_public_key(Path("ocibuild.pub")).fingerprint  # doctest: +SKIP
    'sha256:4f0c...'
    """

    key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey = field(repr=False)
    source: str

    @property
    def fingerprint(self) -> str:
        """``sha256:`` of the DER SubjectPublicKeyInfo: the same key gives the same fingerprint anywhere."""
        der = self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return "sha256:" + hashlib.sha256(der).hexdigest()

    def pem(self) -> bytes:
        """The key as a ``PUBLIC KEY`` PEM block (what ``keyPath`` in policy.json reads)."""
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def verifies(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's signature of ``data``."""
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                self.key.verify(signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True, kw_only=True, slots=True)
class SigningKey:
    """An ECDSA P-256 private key, loaded by :func:`load_signing_key`. Its ``repr`` shows only where
    it came from."""

    key: ec.EllipticCurvePrivateKey = field(repr=False)
    source: str

    @property
    def public(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(key=self.key.public_key(), source=f"the public key of {self.source}")

    def sign(self, data: bytes) -> bytes:
        """Deterministic ECDSA-SHA256 (RFC 6979) signature of ``data``, DER-encoded."""
        return self.key.sign(data, _ECDSA)


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``path`` atomically with ``mode`` from its first byte (a 0600 temp file in the same folder,
    hard-linked into place), never replacing an existing file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    except FileNotFoundError:
        raise ConfigError(f"keygen: folder {path.parent} does not exist") from None
    except PermissionError:
        raise ConfigError(f"keygen: cannot write in {path.parent}: permission denied") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise ConfigError(f"keygen: {path} already exists; remove it or choose another name") from None
        except OSError:  # a file system without hard links: a rename, after checking (a narrow race)
            if path.exists() or path.is_symlink():
                raise ConfigError(f"keygen: {path} already exists; remove it or choose another name") from None
            os.rename(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def keygen(prefix: Path, password: bytes, *, allow_empty_password: bool = False) -> tuple[Path, Path]:
    """Make an ECDSA P-256 key pair: ``PREFIX.key`` (PKCS#8 PEM encrypted with ``password``, mode 0600)
    and ``PREFIX.pub`` (public key PEM, mode 0644). Returns both paths; refuses to replace either file.
    An empty password writes an unencrypted key, only with ``allow_empty_password``.

    >>> keygen(Path("release"), b"correct horse")  # doctest: +SKIP
    (PosixPath('release.key'), PosixPath('release.pub'))
    """
    if not password and not allow_empty_password:
        raise ConfigError("keygen: the password is empty; give one (or ask explicitly for an unencrypted key)")
    private_path, public_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (private_path, public_path):
        if path.exists() or path.is_symlink():
            raise ConfigError(f"keygen: {path} already exists; remove it or choose another name")
    key = ec.generate_private_key(ec.SECP256R1())
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    _write_new_file(private_path, private_pem, 0o600)
    try:
        _write_new_file(public_path, public_pem, 0o644)
    except BaseException:
        private_path.unlink()
        raise
    return private_path, public_path


def _read_key_file(path: Path, what: str) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_KEY_FILE + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} {path}: is a folder, not a key file") from None
    except PermissionError:
        raise ConfigError(f"{what} {path}: permission denied") from None
    if len(data) > _MAX_KEY_FILE:
        raise ConfigError(f"{what} {path}: too large for a key file")
    return data


def private_key_is_encrypted(path: Path) -> bool:
    """Whether the PEM private key at ``path`` needs a password (an ``ENCRYPTED PRIVATE KEY`` block)."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in _read_key_file(path, "signing key")


def load_signing_key(path: Path, password: bytes | None) -> SigningKey:
    """The ECDSA P-256 private key in ``path`` (PKCS#8 PEM as :func:`keygen` writes it, or SEC1 ``EC
    PRIVATE KEY``), decrypted with ``password`` (None for an unencrypted key). A wrong password, a
    missing one or another kind of key is one ``ConfigError`` that never shows the password."""
    data = _read_key_file(path, "signing key")
    if b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----" in data:
        raise ConfigError(f"signing key {path}: a cosign key (ENCRYPTED SIGSTORE PRIVATE KEY) cannot be read; "
                          "make a key with 'ocibuild keygen' (cosign reads it with 'cosign import-key-pair')")
    encrypted = b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    if encrypted and not password:
        raise ConfigError(f"signing key {path} is encrypted: set {PASSWORD_ENV} or enter its password")
    try:
        key = serialization.load_pem_private_key(data, password if encrypted else None)
    except TypeError:  # a password for an unencrypted key, or none for an encrypted one
        raise ConfigError(f"signing key {path}: cannot read it with the password given") from None
    except (ValueError, UnsupportedAlgorithm):
        if encrypted:
            raise ConfigError(f"signing key {path}: wrong password (or the key file is corrupt)") from None
        raise ConfigError(f"signing key {path}: not a PEM private key (PKCS#8, as 'ocibuild keygen' writes)") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ConfigError(f"signing key {path}: not an ECDSA P-256 key; make one with 'ocibuild keygen'")
    return SigningKey(key=key, source=str(path))


def load_public_key(path: Path) -> PublicKey:
    """The public key in ``path``: a ``PUBLIC KEY`` PEM block (as :func:`keygen` and ``cosign
    generate-key-pair`` write), or a certificate whose key is used."""
    data = _read_key_file(path, "public key")
    if b"PRIVATE KEY-----" in data:
        raise ConfigError(f"public key {path} holds a private key; give the .pub file")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            from cryptography import x509

            loaded: Any = x509.load_pem_x509_certificate(data).public_key()
        else:
            loaded = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"public key {path}: not a PEM public key") from None
    if not isinstance(loaded, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise ConfigError(f"public key {path}: unsupported key type {type(loaded).__name__}; "
                          "use an ECDSA, RSA or Ed25519 key")
    return PublicKey(key=loaded, source=str(path))


# ------------------------------------------------------------------------------------------------
# documents
# ------------------------------------------------------------------------------------------------


def signature_tag(digest: Digest) -> str:
    """``sha256-<hex>.sig``: where cosign and containers/image look for the signatures of ``digest``."""
    return f"{digest.algorithm}-{digest.hex}{SIGNATURE_TAG_SUFFIX}"


def attestation_tag(digest: Digest) -> str:
    """``sha256-<hex>.att``: where cosign looks for the attestations of ``digest``."""
    return f"{digest.algorithm}-{digest.hex}{ATTESTATION_TAG_SUFFIX}"


def default_identity(ref: Reference) -> str:
    """The ``docker-reference`` to sign for ``ref``: ``REGISTRY/REPO:TAG`` if it names a tag, else
    ``REGISTRY/REPO``."""
    return f"{ref.name}:{ref.tag}" if ref.tag else ref.name


def simple_signing_payload(digest: Digest, identity: str, optional: Mapping[str, Any] | None = None) -> bytes:
    """The payload a cosign signature signs, as canonical JSON (the same bytes every time).

    >>> simple_signing_payload(Digest.parse("sha256:" + "a" * 64), "127.0.0.1:5000/app:1")[:60]
    b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/'
    """
    if not identity:
        raise ConfigError("the docker-reference to sign is empty")
    return canonical_json({
        "critical": {"identity": {"docker-reference": identity},
                     "image": {"docker-manifest-digest": str(digest)},
                     "type": SIGNATURE_TYPE},
        "optional": dict(optional) if optional is not None else None,
    })


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _strict_json(raw: bytes, what: str) -> Any:
    """Parse untrusted JSON; duplicate keys, NaN / Infinity and bad UTF-8 are ``ValueError``."""
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not valid JSON ({str(exc)[:100]})") from None


def _exact_object(value: Any, keys: set[str], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not a JSON object")
    if set(value) != keys:
        raise ValueError(f"{what} has fields {sorted(value)}, not exactly {sorted(keys)}")
    return value


def parse_simple_signing(payload: bytes) -> tuple[str, str]:
    """``(docker-manifest-digest, docker-reference)`` of a simple-signing payload, read as strictly as
    containers/image reads it: exactly ``critical`` and ``optional`` at the top, exactly ``type``,
    ``image`` and ``identity`` in ``critical``, the cosign signature type, string values, ``optional``
    null or an object (``creator`` a string, ``timestamp`` an integer). ``ValueError`` says what is wrong."""
    doc = _exact_object(_strict_json(payload, "the payload"), {"critical", "optional"}, "the payload")
    optional = doc["optional"]
    if optional is not None:
        if not isinstance(optional, dict):
            raise ValueError("'optional' is neither null nor an object")
        if "creator" in optional and not isinstance(optional["creator"], str):
            raise ValueError("'optional.creator' is not a string")
        stamp = optional.get("timestamp")
        if "timestamp" in optional and (isinstance(stamp, bool) or not isinstance(stamp, int | float)
                                        or stamp != int(stamp)):
            raise ValueError("'optional.timestamp' is not an integer")
    critical = _exact_object(doc["critical"], {"type", "image", "identity"}, "'critical'")
    if critical["type"] != SIGNATURE_TYPE:
        raise ValueError(f"'critical.type' is {str(critical['type'])[:80]!r}, not {SIGNATURE_TYPE!r}")
    image = _exact_object(critical["image"], {"docker-manifest-digest"}, "'critical.image'")
    identity = _exact_object(critical["identity"], {"docker-reference"}, "'critical.identity'")
    digest, reference = image["docker-manifest-digest"], identity["docker-reference"]
    if not isinstance(digest, str) or not isinstance(reference, str):
        raise ValueError("'docker-manifest-digest' and 'docker-reference' must be strings")
    return digest, reference


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """The DSSE v1 pre-authentication encoding, what a DSSE signature signs.

    >>> dsse_pae("t", b"hi")
    b'DSSEv1 1 t 2 hi'
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _statement(raw: bytes, what: str) -> dict[str, Any]:
    """An in-toto statement (v1 or v0.1), checked for the fields verification reads."""
    doc = _strict_json(raw, what)
    if not isinstance(doc, dict):
        raise ValueError(f"{what} is not a JSON object")
    if doc.get("_type") not in IN_TOTO_STATEMENT_TYPES:
        raise ValueError(f"{what} is not an in-toto statement ('_type' is {str(doc.get('_type'))[:80]!r})")
    if not isinstance(doc.get("predicateType"), str) or not doc["predicateType"]:
        raise ValueError(f"{what} has no 'predicateType'")
    subjects = doc.get("subject")
    if not isinstance(subjects, list) or not subjects or not all(
            isinstance(s, dict) and isinstance(s.get("digest"), dict) for s in subjects):
        raise ValueError(f"{what} has no 'subject' list with digests")
    return doc


def _subject_digests(statement: Mapping[str, Any]) -> list[str]:
    return [f"sha256:{s['digest']['sha256']}" for s in statement["subject"]
            if isinstance(s["digest"].get("sha256"), str)]


def read_statement(raw: bytes, what: str = "the statement") -> tuple[str, list[str]]:
    """``(predicateType, subject digests as "sha256:...")`` of an in-toto statement; ``ConfigError``
    naming ``what`` if it is not one."""
    try:
        doc = _statement(raw, what)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return doc["predicateType"], _subject_digests(doc)


# ------------------------------------------------------------------------------------------------
# registry: the attachment manifests
# ------------------------------------------------------------------------------------------------


def _repository(ref: Reference) -> Repository:
    from .registry import Repository

    return Repository.from_reference(ref)


def _config_for(layers: Sequence[Descriptor]) -> bytes:
    """The image config of an attachment manifest: empty but for ``rootfs.diff_ids`` (one per layer),
    as cosign and containers/image write it."""
    return canonical_json({"architecture": "", "config": {}, "os": "",
                           "rootfs": {"diff_ids": [str(d.digest) for d in layers], "type": "layers"}})


def _push_bytes(client: RegistryClient, repo: Repository, data: bytes, media_type: str,
                annotations: Mapping[str, str] | None = None) -> Descriptor:
    desc = Descriptor(media_type=media_type, digest=Digest.of(data), size=len(data),
                      annotations=dict(annotations or {}))
    client.push_blob(repo, desc, lambda: io.BytesIO(data))
    return desc


def _read_attachments(raw: bytes | None, repo: Repository, tag: str) -> ImageManifest | None:
    if raw is None:
        return None
    try:
        return ImageManifest.from_json(raw)
    except SpecError as exc:
        raise RegistryError(f"{repo}:{tag} holds something that is not an attachment manifest ({exc}); "
                            "remove that tag and sign again") from None


def _fetch_payload(client: RegistryClient, repo: Repository, layer: Descriptor) -> bytes | None:
    """A layer's blob, or None if the registry no longer has it (or it is not what it claims)."""
    try:
        return client.get_small(repo, layer)
    except OcibuildError:
        return None


def _update_attachments(client: RegistryClient, repo: Repository, tag: str, new_layer: Descriptor,
                        is_replaced: Callable[[Descriptor], bool]) -> Digest:
    """Put ``new_layer`` into the attachment manifest at ``tag``: every layer already there is kept,
    in order, except those ``is_replaced`` says ``new_layer`` supersedes; re-read and merged again if
    another writer changed the tag meanwhile."""

    def change(current: bytes | None) -> tuple[bytes, str] | None:
        manifest = _read_attachments(current, repo, tag)
        old = manifest.layers if manifest is not None else ()
        kept = [d for d in old if d == new_layer or not is_replaced(d)]
        if new_layer in kept:
            if len(kept) == len(old):
                return None
        else:
            kept.append(new_layer)
        config = _push_bytes(client, repo, _config_for(kept), MediaType.OCI_CONFIG)
        updated = ImageManifest(config=config, layers=tuple(kept), media_type=MediaType.OCI_MANIFEST,
                                annotations=manifest.annotations if manifest is not None else {})
        return updated.to_json(), str(MediaType.OCI_MANIFEST)

    digest = client.update_manifest(repo, tag, change)
    if digest is None:  # change() always puts something there; a registry that lost it is misbehaving
        raise RegistryError(f"{repo}: tag {tag} is empty after it was written; push again")
    return digest


@dataclass(frozen=True, kw_only=True, slots=True)
class SignedManifest:
    """One manifest signed (or attested): its digest and the attachment manifest now at ``tag``."""

    digest: Digest
    tag: str
    attachments: Digest
    identity: str = ""


def sign_image(client: RegistryClient, ref: Reference, digests: Sequence[Digest], key: SigningKey, *,
               identity: str | None = None, optional: Mapping[str, Any] | None = None) -> list[SignedManifest]:
    """Sign each manifest in ``digests`` (in the repository of ``ref``, which names the identity signed
    unless ``identity`` is given). ``optional`` replaces the payload's ``optional`` object (default:
    ``{"creator": "ocibuild VERSION"}``). This key's earlier signature of the same digest is replaced;
    every other signature at the tag is kept.

    >>> sign_image(client, Reference.parse("127.0.0.1:5000/app:1"), [index_digest, amd64_digest], key)  # doctest: +SKIP
    """
    repo = _repository(ref)
    who = identity if identity is not None else default_identity(ref)
    extra = dict(optional) if optional is not None else {"creator": f"ocibuild {__version__}"}
    public = key.public
    done: list[SignedManifest] = []
    for digest in digests:
        payload = simple_signing_payload(digest, who, extra)
        signature = base64.b64encode(key.sign(payload)).decode("ascii")
        layer = _push_bytes(client, repo, payload, SIMPLE_SIGNING_MEDIA_TYPE, {SIGNATURE_ANNOTATION: signature})

        def ours(desc: Descriptor, digest: Digest = digest) -> bool:
            """An earlier signature of ``digest`` by this key."""
            if str(desc.media_type) != SIMPLE_SIGNING_MEDIA_TYPE or SIGNATURE_ANNOTATION not in desc.annotations:
                return False
            old = _fetch_payload(client, repo, desc)
            try:
                signed = base64.b64decode(desc.annotations[SIGNATURE_ANNOTATION], validate=True)
                return old is not None and public.verifies(signed, old) and parse_simple_signing(old)[0] == str(digest)
            except (ValueError, binascii.Error):
                return False

        tag = signature_tag(digest)
        stored = _update_attachments(client, repo, tag, layer, ours)
        done.append(SignedManifest(digest=digest, tag=tag, attachments=stored, identity=who))
    return done


def dsse_envelope(statement: bytes, key: SigningKey) -> bytes:
    """The in-toto ``statement`` in a DSSE envelope signed by ``key`` over its PAE (canonical JSON; the
    signature is deterministic, RFC 6979, so the same statement and key give the same bytes)."""
    pae = dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement)
    return canonical_json({"payload": base64.b64encode(statement).decode("ascii"),
                           "payloadType": IN_TOTO_PAYLOAD_TYPE,
                           "signatures": [{"keyid": "", "sig": base64.b64encode(key.sign(pae)).decode("ascii")}]})


def attest(client: RegistryClient, ref: Reference, subject_digest: Digest, statement: bytes,
           key: SigningKey) -> SignedManifest:
    """Attach the in-toto ``statement`` (bytes, signed exactly as given) to the manifest
    ``subject_digest`` in the repository of ``ref``, as a DSSE envelope signed by ``key`` at tag
    ``sha256-<hex>.att``. The statement's subjects must include that manifest. This key's earlier
    attestation of the same predicate type is replaced; others are kept.

    >>> attest(client, Reference.parse("127.0.0.1:5000/app:1"), amd64_digest, provenance_json, key)  # doctest: +SKIP
    """
    try:
        doc = _statement(statement, "the statement")
    except ValueError as exc:
        raise ConfigError(f"attestation: {exc}") from None
    if str(subject_digest) not in _subject_digests(doc):
        raise ConfigError(f"attestation: the statement's subjects ({', '.join(_subject_digests(doc)) or 'none'}) "
                          f"do not include {subject_digest}, the manifest it was to be attached to")
    predicate_type: str = doc["predicateType"]
    envelope = dsse_envelope(statement, key)
    repo = _repository(ref)
    layer = _push_bytes(client, repo, envelope, DSSE_MEDIA_TYPE,
                        {PREDICATE_TYPE_ANNOTATION: predicate_type, SIGNATURE_ANNOTATION: ""})
    public = key.public

    def ours(desc: Descriptor) -> bool:
        """An earlier attestation of the same predicate type by this key."""
        if str(desc.media_type) != DSSE_MEDIA_TYPE or desc.annotations.get(PREDICATE_TYPE_ANNOTATION) != predicate_type:
            return False
        old = _fetch_payload(client, repo, desc)
        return old is not None and envelope_statement(old, public)[0] is not None

    tag = attestation_tag(subject_digest)
    return SignedManifest(digest=subject_digest, tag=tag,
                          attachments=_update_attachments(client, repo, tag, layer, ours))


def envelope_statement(raw: bytes, key: PublicKey) -> tuple[bytes | None, str]:
    """The statement bytes of a DSSE envelope if one of its signatures is ``key``'s, else None and why."""
    try:
        env = _strict_json(raw, "the envelope")
        if not isinstance(env, dict) or not isinstance(env.get("payload"), str):
            return None, "it is not a DSSE envelope"
        if env.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
            return None, f"its payload type is {str(env.get('payloadType'))[:80]!r}, not {IN_TOTO_PAYLOAD_TYPE}"
        payload = base64.b64decode(env["payload"], validate=True)
        sigs = env.get("signatures")
    except (ValueError, binascii.Error) as exc:
        return None, str(exc)
    pae = dsse_pae(IN_TOTO_PAYLOAD_TYPE, payload)
    for sig in sigs if isinstance(sigs, list) else []:
        if isinstance(sig, dict) and isinstance(sig.get("sig"), str):
            with contextlib.suppress(ValueError, binascii.Error):
                if key.verifies(base64.b64decode(sig["sig"], validate=True), pae):
                    return payload, ""
    return None, "no signature in its envelope is by this key"


# ------------------------------------------------------------------------------------------------
# verification
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Subject:
    """A manifest to sign or verify: its digest and what to call it (``index``, ``linux/amd64 manifest``)."""

    digest: Digest
    label: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Check:
    """One verification result: a signature or an attestation of one manifest, and whether it held."""

    kind: str  # "signature" or "attestation"
    subject: Subject
    ok: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "digest": str(self.subject.digest), "what": self.subject.label, "ok": self.ok,
                "message": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class VerifyReport:
    """What :func:`verify` found: one :class:`Check` per signature requirement and per attestation."""

    reference: str
    digest: Digest
    key: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Every check held (and there was at least one)."""
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def raise_for_failures(self) -> None:
        """``VerificationFailed`` naming the first failure (and how many there were), unless all held."""
        if not self.ok:
            failures = self.failures
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise VerificationFailed(failures[0].message + more if failures else "nothing to verify")

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "digest": str(self.digest), "key": self.key, "ok": self.ok,
                "checks": [c.to_dict() for c in self.checks]}


def subjects_of(client: RegistryClient, ref: Reference) -> list[Subject]:
    """The manifests that ``ref`` names: an image manifest, or an index followed by each manifest it
    lists (labelled by platform)."""
    raw, media_type, digest = client.get_manifest(ref)
    try:
        doc = parse_manifest_or_index(raw, media_type if media_type in INDEX_TYPES | MANIFEST_TYPES else "")
    except SpecError as exc:
        raise RegistryError(f"{ref}: not an image manifest or index ({exc})") from None
    if not isinstance(doc, ImageIndex):
        return [Subject(digest=digest, label="manifest")]
    subjects = [Subject(digest=digest, label="index")]
    for i, desc in enumerate(doc.manifests):
        name = str(desc.platform) if desc.platform is not None else f"entry {i}"
        subjects.append(Subject(digest=desc.digest, label=f"{name} manifest"))
    return subjects


def _attachments(client: RegistryClient, ref: Reference, tag: str) -> ImageManifest | None:
    try:
        raw = client.get_manifest(ref.with_tag(tag))[0]
    except ImageNotFound:
        return None
    return _read_attachments(raw, _repository(ref), tag)


def _check_signature(client: RegistryClient, ref: Reference, subject: Subject, key: PublicKey) -> Check:
    what = f"signature of {subject.label} {subject.digest}"
    failed = f"{what} does not verify with {key.source}"
    tag = signature_tag(subject.digest)
    manifest = _attachments(client, ref, tag)
    layers = [d for d in manifest.layers if str(d.media_type) == SIMPLE_SIGNING_MEDIA_TYPE] if manifest else []
    if not layers:
        return Check(kind="signature", subject=subject, ok=False, message=f"{failed}: no signature at {ref.name}:{tag}")
    reasons: list[str] = []
    repo = _repository(ref)
    for desc in layers:
        payload = _fetch_payload(client, repo, desc)
        try:
            signed = base64.b64decode(desc.annotations.get(SIGNATURE_ANNOTATION, ""), validate=True)
        except (ValueError, binascii.Error):
            signed = b""
        if payload is None or not signed or not key.verifies(signed, payload):
            continue
        try:
            digest, identity = parse_simple_signing(payload)
        except ValueError as exc:
            reasons.append(f"a payload signed by this key is malformed ({exc})")
            continue
        if digest != str(subject.digest):
            reasons.append(f"the payload signed by this key names {digest[:80]}, not {subject.digest}")
            continue
        try:
            named = Reference.parse(identity).name
        except ValueError:
            named = ""
        if named != ref.name:
            reasons.append(f"the payload signed by this key names repository {identity[:200]!r}, not {ref.name}")
            continue
        return Check(kind="signature", subject=subject, ok=True,
                     message=f"{what} verifies with {key.source} (identity {identity})")
    count = f"{len(layers)} signature{'s' if len(layers) > 1 else ''}"
    why = "; ".join(reasons) if reasons else f"{count} at {ref.name}:{tag}, none by this key matching its payload"
    return Check(kind="signature", subject=subject, ok=False, message=f"{failed}: {why}")


def _check_attestations(client: RegistryClient, ref: Reference, subject: Subject, key: PublicKey) -> list[Check]:
    tag = attestation_tag(subject.digest)
    manifest = _attachments(client, ref, tag)
    checks: list[Check] = []
    repo = _repository(ref)
    for desc in manifest.layers if manifest is not None else ():
        if str(desc.media_type) != DSSE_MEDIA_TYPE:
            continue
        claimed = desc.annotations.get(PREDICATE_TYPE_ANNOTATION, "(no predicateType)")
        what = f"attestation {claimed[:200]} of {subject.label} {subject.digest}"
        raw = _fetch_payload(client, repo, desc)
        if raw is None:
            checks.append(Check(kind="attestation", subject=subject, ok=False,
                                message=f"{what}: its envelope {desc.digest} cannot be read from {repo}"))
            continue
        statement, why = envelope_statement(raw, key)
        if statement is None:
            checks.append(Check(kind="attestation", subject=subject, ok=False,
                                message=f"{what} does not verify with {key.source}: {why}"))
            continue
        try:
            doc = _statement(statement, "its statement")
        except ValueError as exc:
            checks.append(Check(kind="attestation", subject=subject, ok=False, message=f"{what}: {exc}"))
            continue
        named = _subject_digests(doc)
        if str(subject.digest) not in named:
            checks.append(Check(kind="attestation", subject=subject, ok=False,
                                message=f"{what}: subject does not match: the statement names "
                                        f"{', '.join(named[:8]) or 'no sha256 digest'}, not {subject.digest}"))
            continue
        if doc["predicateType"] != claimed:
            checks.append(Check(kind="attestation", subject=subject, ok=False,
                                message=f"{what}: the signed statement's predicate type is "
                                        f"{doc['predicateType'][:200]!r}, not the annotation's"))
            continue
        checks.append(Check(kind="attestation", subject=subject, ok=True, message=f"{what} verifies with {key.source}"))
    return checks


def verify(client: RegistryClient, ref: Reference, public_key: PublicKey) -> VerifyReport:
    """Check the signatures and attestations of the image or index ``ref`` against ``public_key``:
    every manifest (the index and each platform's) must have a signature by the key whose payload names
    exactly its digest and ``ref``'s repository; every attestation attached to them must be signed by
    the key and name its manifest among its subjects. Never raises for a failed check: the report says.

    >>> key = load_public_key(Path("ocibuild.pub"))  # doctest: +SKIP
    >>> report = verify(client, Reference.parse("127.0.0.1:5000/app:1"), key)  # doctest: +SKIP
    >>> report.ok, [c.message for c in report.failures]  # doctest: +SKIP
    """
    subjects = subjects_of(client, ref)
    checks: list[Check] = []
    for subject in subjects:
        checks.append(_check_signature(client, ref, subject, public_key))
        checks.extend(_check_attestations(client, ref, subject, public_key))
    return VerifyReport(reference=str(ref), digest=subjects[0].digest, key=public_key.source, checks=tuple(checks))

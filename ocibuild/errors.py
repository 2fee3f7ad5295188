"""The exception tree. Every message names the input that was wrong and what to do about it.

OcibuildError
├── ConfigError              build file, plan or command-line values are wrong
│   └── InvalidValue         a value the OCI image / runtime spec does not allow (also a ValueError)
├── SourceError              a base image or a layer source cannot be read
│   ├── ImageNotFound        the base (or its tag / platform) does not exist
│   ├── MalformedImage       a base's documents or layers break the image spec (types, media types, diff_ids)
│   ├── RemoteFileNotFound   a package mirror answered but has no such file
│   └── SignatureError       a package mirror's release file fails signature verification
├── ResolutionError          dependencies (Python or Debian packages) cannot be resolved or fetched
│   └── UnknownPackage       a requested package does not exist in the index
├── LayerError               a file tree cannot be turned into a layer (escaping symlink, device file)
├── StoreError               the content store is unusable, or a blob is missing or corrupt
│   └── DigestMismatch       content does not have the digest (or size) it should
├── OutputError              an output cannot be written
├── DiskFull                 a write failed for lack of space (or quota): names the file and what to do
├── RegistryError            talking to a registry failed
├── RebaseError              an image cannot be rebased: its old base is unknown or not its first layers
└── VerificationFailed       an image's signatures or attestations do not verify with the key given

Library errors name the build-file key that was wrong (``python.libc``); the CLI says which
flag sets it where one exists.
"""

from __future__ import annotations


class OcibuildError(Exception):
    """Root of every error ocibuild raises on purpose."""


class ConfigError(OcibuildError):
    """The build file or command-line values are invalid."""


class InvalidValue(ConfigError, ValueError):
    """A value the OCI image or runtime spec does not allow (an env key with ``=``, a relative
    ``workdir``, a NUL byte). Also a ``ValueError``, so a plan read from JSON names its key."""


class SourceError(OcibuildError):
    """A base image or layer source cannot be read."""


class ImageNotFound(SourceError):
    """The named image, tag or platform does not exist in the source."""


class MalformedImage(SourceError):
    """A base image's JSON documents or layers do not follow the OCI image spec: a field of the
    wrong type, a media type that does not match the content, a diff_id that is not the layer's."""


class RemoteFileNotFound(SourceError):
    """A package mirror answered, but has no such file (HTTP 404 / missing file)."""


class SignatureError(SourceError):
    """A release file's signature cannot be verified against the keyring."""


class ResolutionError(OcibuildError):
    """The dependencies cannot be resolved or fetched for the target; the message says why."""


class UnknownPackage(ResolutionError):
    """A requested package does not exist in the index."""


class LayerError(OcibuildError):
    """A file tree cannot be turned into a layer."""


class StoreError(OcibuildError):
    """The content store is unusable or a blob in it is missing."""


class DigestMismatch(StoreError):
    """Content does not match the digest or size it was announced with."""


class OutputError(OcibuildError):
    """An output cannot be written."""


class DiskFull(OcibuildError):
    """No space left on the device (or the disk quota is used up) while writing a file in the cache
    or an output; nothing half-written is kept."""


class RegistryError(OcibuildError):
    """A registry request failed; ``status`` is the HTTP status of the answer that said so, if any,
    and ``code`` the distribution error code it gave (``MANIFEST_BLOB_UNKNOWN``, ...)."""

    status: int | None = None
    code: str = ""


class RebaseError(OcibuildError):
    """An image cannot be rebased (``ocibuild rebase``): its old base cannot be found, is not a prefix
    of its layers, or the new base does not fit its platform; the message says which and what to do."""


class VerificationFailed(OcibuildError):
    """A signature or attestation of an image does not verify with the key given (``ocibuild verify``);
    the message names the manifest and what did not hold."""

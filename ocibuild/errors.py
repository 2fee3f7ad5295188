"""The exception tree. Every message names the input that was wrong and what to do about it.

OcibuildError
├── ConfigError          build file or command-line values are wrong
├── SourceError          a base image or a layer source cannot be read
│   └── ImageNotFound    the base (or its tag / platform) does not exist
├── LayerError           a file tree cannot be turned into a layer (escaping symlink, device file)
├── StoreError           the content store is unusable, or a blob is missing or corrupt
│   └── DigestMismatch   content does not have the digest (or size) it should
├── OutputError          an output cannot be written
└── RegistryError        talking to a registry failed
"""

from __future__ import annotations


class OcibuildError(Exception):
    """Root of every error ocibuild raises on purpose."""


class ConfigError(OcibuildError):
    """The build file or command-line values are invalid."""


class SourceError(OcibuildError):
    """A base image or layer source cannot be read."""


class ImageNotFound(SourceError):
    """The named image, tag or platform does not exist in the source."""


class LayerError(OcibuildError):
    """A file tree cannot be turned into a layer."""


class StoreError(OcibuildError):
    """The content store is unusable or a blob in it is missing."""


class DigestMismatch(StoreError):
    """Content does not match the digest or size it was announced with."""


class OutputError(OcibuildError):
    """An output cannot be written."""


class RegistryError(OcibuildError):
    """A registry request failed."""

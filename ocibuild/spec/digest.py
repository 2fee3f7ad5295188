"""Content digests (``algorithm:hex``) as a parsed, checked type."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from .document import SpecError

_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A content digest such as ``sha256:e3b0c4...``.

    >>> Digest.parse("sha256:" + "0" * 64).algorithm
    'sha256'
    """

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX_LENGTHS.get(self.algorithm)
        if want is None:
            raise SpecError(
                f"unsupported digest algorithm {self.algorithm!r}: use sha256 or sha512"
            )
        if len(self.hex) != want or not _HEX.fullmatch(self.hex):
            raise SpecError(
                f"invalid {self.algorithm} digest {self.algorithm}:{self.hex!r}: "
                f"expected {want} lowercase hex characters"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``; raise ``SpecError`` (a ``ValueError``) naming the input if malformed."""
        if not isinstance(text, str):
            raise SpecError(f"invalid digest: expected a string 'sha256:<64 hex>', got {type(text).__name__}")
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise SpecError(f"invalid digest {text!r}: expected 'sha256:<64 hex characters>'")
        try:
            return cls(algorithm, encoded)
        except SpecError as exc:
            raise SpecError(f"invalid digest {text!r}: {exc}") from None

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """Digest of ``data``."""
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    @classmethod
    def from_hasher(cls, hasher: Any) -> Digest:
        """Digest from a finished ``hashlib`` object."""
        return cls(str(hasher.name), str(hasher.hexdigest()))

    def hasher(self) -> Any:
        """A fresh ``hashlib`` object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def verify(self, data: bytes) -> bool:
        """True if ``data`` has this digest."""
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex

    @property
    def blob_name(self) -> str:
        """``blobs/<algorithm>/<hex>``: where OCI layouts and the content store keep this blob."""
        return f"blobs/{self.algorithm}/{self.hex}"

    @property
    def short(self) -> str:
        """First 12 hex characters, for messages."""
        return self.hex[:12]

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

"""Well-known annotation keys, the default ``PATH``, and the timestamp format OCI uses."""

from __future__ import annotations

from datetime import UTC, datetime

REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""The ``PATH`` a runtime uses when an image sets none."""


def rfc3339(epoch: int) -> str:
    """``0`` -> ``1970-01-01T00:00:00Z``: the form of ``created`` in configs and annotations."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

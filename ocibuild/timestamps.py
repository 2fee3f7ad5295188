"""``SOURCE_DATE_EPOCH``: the one clock a reproducible build reads."""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import ConfigError


def source_date_epoch(environ: Mapping[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment, else 0 (1970-01-01T00:00:00Z)."""
    value = (environ if environ is not None else os.environ).get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return 0
    try:
        epoch = int(value)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds") from None
    if epoch < 0:
        raise ConfigError(f"SOURCE_DATE_EPOCH={value!r} must not be negative")
    return epoch

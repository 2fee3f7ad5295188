"""Publish: write a built artifact to sinks (ko's ``Publish`` after ``Build``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, overload

from .events import EventHandler, OutputDone, ignore
from .image import Artifact
from .sinks import Sink, sink_for
from .transports import Location

if TYPE_CHECKING:
    import requests

    from .build import BuildResult
    from .registry import RegistryClient

__all__ = ["publish"]


@overload
def publish(what: BuildResult, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ..., client: RegistryClient | None = ...,
            session: requests.Session | None = ...) -> BuildResult: ...


@overload
def publish(what: Artifact, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ..., client: RegistryClient | None = ...,
            session: requests.Session | None = ...) -> tuple[str, ...]: ...


def publish(what: BuildResult | Artifact, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ignore, client: RegistryClient | None = None,
            session: requests.Session | None = None) -> BuildResult | tuple[str, ...]:
    """Write ``what`` (a ``BuildResult``, or any ``Image`` / ``Index``) to every sink.

    ``sinks`` are ``Sink`` values or locations (``"oci:out/app:v1"``, ``"docker://host/repo:tag"``);
    None means the build plan's outputs. Registry locations use ``client``, else a client over
    ``session``. All sinks are checked before any is written; each is written atomically. Returns
    the result with ``outputs`` filled in (for an artifact: the outputs written).

    >>> result = publish(build(plan), ["oci:out/app:v1"])  # doctest: +SKIP
    """
    from .build import BuildResult, plan_sinks

    result = what if isinstance(what, BuildResult) else None
    artifact: Artifact = result.artifact if result is not None else what  # type: ignore[assignment]
    if sinks is None:
        chosen = plan_sinks(result.plan, client=client, session=session, on_event=on_event) if result else []
    else:
        mtime = result.plan.source_date_epoch if result is not None else None
        chosen = [s if isinstance(s, Sink) else sink_for(s, client=client, session=session, mtime=mtime,
                                                         on_event=on_event) for s in sinks]
    for sink in chosen:
        sink.check()
    written = []
    for sink in chosen:
        start = time.monotonic()
        sink.write(artifact)
        written.append(str(sink))
        on_event(OutputDone(output=str(sink), digest=artifact.digest, seconds=time.monotonic() - start))
    if result is not None:
        return replace(result, outputs=(*result.outputs, *written))
    return tuple(written)

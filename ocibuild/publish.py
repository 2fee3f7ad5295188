"""Publish: write a built artifact to sinks (ko's ``Publish`` after ``Build``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, overload

from .errors import OutputError
from .events import EventHandler, OutputDone, ignore
from .image import Artifact
from .sinks import Sink, sink_for
from .transports import Location

if TYPE_CHECKING:
    import requests

    from .build import BuildResult
    from .evidence import Evidence
    from .registry import RegistryClient

__all__ = ["publish"]


@overload
def publish(what: BuildResult, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ..., client: RegistryClient | None = ...,
            session: requests.Session | None = ..., evidence: Evidence | None = ...) -> BuildResult: ...


@overload
def publish(what: Artifact, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ..., client: RegistryClient | None = ...,
            session: requests.Session | None = ...) -> tuple[str, ...]: ...


def publish(what: BuildResult | Artifact, sinks: Sequence[Sink | Location | str] | None = None, *,
            on_event: EventHandler = ignore, client: RegistryClient | None = None,
            session: requests.Session | None = None, evidence: Evidence | None = None) -> BuildResult | tuple[str, ...]:
    """Write ``what`` (a ``BuildResult``, or any ``Image`` / ``Index``) to every sink.

    ``sinks`` are ``Sink`` values or locations (``"oci:out/app:v1"``, ``"docker://host/repo:tag"``);
    None means the build plan's outputs. Registry locations use ``client``, else a client over
    ``session``. All sinks are checked before any is written; each is written atomically. Returns
    the result with ``outputs`` filled in (for an artifact: the outputs written). ``evidence`` (for a
    ``BuildResult``) attaches SBOMs and provenance, and with a key signatures (``ocibuild.evidence``).

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
    # a build's model images go beside each output, before the app that refers to them
    models = [(m.image, [_model_sink(s, m.name) for s in chosen]) for m in (result.models if result else ())]
    if result is not None and evidence is not None:
        from .evidence import with_evidence

        chosen = with_evidence(chosen, result, evidence, on_event)
    for sink in [*chosen, *(s for _, sinks in models for s in sinks)]:
        sink.check()
    written = []
    for image, sinks in [*models, (artifact, chosen)]:
        for sink in sinks:
            start = time.monotonic()
            sink.write(image)
            written.append(str(sink))
            on_event(OutputDone(output=str(sink), digest=image.digest, seconds=time.monotonic() - start))
    if result is not None:
        if result.store is not None and result.store.shared is not None:  # --cache-repo: what this build made
            from .transports import Registry

            result.store.shared.flush(result.store, [o.reference for o in result.plan.outputs
                                                     if isinstance(o, Registry)])
        return replace(result, outputs=(*result.outputs, *written))
    return tuple(written)


def _model_sink(sink: Sink, name: str) -> Sink:
    """The sink for model ``name`` of an app written to ``sink`` (see ``models.model_location``)."""
    from .models import model_location
    from .sinks import DockerArchiveSink, LayoutSink, MultiSink, OciArchiveSink, RegistrySink
    from .transports import parse_location

    if isinstance(sink, MultiSink):
        return MultiSink(sinks=tuple(_model_sink(s, name) for s in sink.sinks))
    if not isinstance(sink, LayoutSink | OciArchiveSink | DockerArchiveSink | RegistrySink):
        raise OutputError(f"output {sink}: cannot tell where the build's model images go beside it; publish "
                          "result.models to sinks of your own, or build with embed_models")
    location = model_location(parse_location(str(sink)), name)
    return sink_for(location, client=sink.client if isinstance(sink, RegistrySink) else None,
                    mtime=0 if isinstance(sink, LayoutSink | RegistrySink) else sink.mtime)

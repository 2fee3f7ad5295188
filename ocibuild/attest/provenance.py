"""SLSA provenance v1 of a build, as an in-toto Statement v1, byte for byte reproducible.

The build type ``https://ocibuild.dev/buildtypes/image/v1`` (:data:`BUILD_TYPE`) means:

- ``externalParameters`` is the build plan exactly as ``BuildPlan.to_dict()`` gives it (what
  ``ocibuild build --print-plan`` prints): ``BuildPlan.from_dict(externalParameters)`` and the
  resolved dependencies rebuild the same image;
- ``resolvedDependencies`` lists every input the build read, each with its sha256 and where it came
  from (``uri``), sorted, with ``annotations.kind`` one of: ``base-image`` (the base's manifest digest;
  not for ``scratch`` nor a base assembled from Debian packages), ``deb`` (every ``.deb`` of a Debian
  base's lock), ``wheel`` (every wheel installed), ``sdist`` (the sdist a wheel was built from here, and
  ``sdist-build-requirement`` for what it was built with, by name and version), ``model-file`` (every
  model file) and ``project-files`` (the project's files, by the ``diff_id`` of the layer ocibuild
  wrote them into); ``annotations.platforms`` names the platforms that used it;
- ``runDetails.byproducts`` lists what the build made on the way and did not publish as the subject:
  a base assembled from Debian packages, wheels built from sdists, model images;
- ``runDetails.builder.id`` is ``https://ocibuild.dev/ocibuild@<version>``; ``metadata`` has
  ``startedOn`` = ``finishedOn`` = ``SOURCE_DATE_EPOCH`` and is left out when that is 0: the
  provenance never holds the clock, so the same build gives the same bytes.

The ``subject`` is every image manifest (``<project> (<platform>)`` for several platforms) and the
index, each by its sha256.

>>> payload = slsa_provenance(result)  # doctest: +SKIP
>>> json.loads(payload)["subject"][0]["digest"]  # doctest: +SKIP
{'sha256': '...'}
"""

from __future__ import annotations

import hashlib
import posixpath
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..imagefs import BoundedTarInfo
from ..spec import canonical_json
from ..spec.annotations import rfc3339
from ..transports import DebianBase
from ..version import __version__
from .inventory import deb_url, file_url, project_name, purl

if TYPE_CHECKING:
    from ..build import BuildInputs, BuildResult
    from ..image import Image, Layer

from ..referrers.artifact import IN_TOTO_JSON  # the one definition of the media type

__all__ = ["BUILDER_ID", "BUILD_TYPE", "IN_TOTO_JSON", "PREDICATE_TYPE", "REBASE_BUILD_TYPE", "STATEMENT_TYPE",
           "rebase_provenance", "slsa_provenance"]


STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
"""The in-toto Statement ``_type``."""

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
"""The SLSA provenance v1 ``predicateType``."""

BUILD_TYPE = "https://ocibuild.dev/buildtypes/image/v1"
"""ocibuild's SLSA ``buildType`` (what its parameters and dependencies mean: see the module docstring)."""

REBASE_BUILD_TYPE = "https://ocibuild.dev/buildtypes/rebase/v1"
"""The ``buildType`` of ``ocibuild rebase``: ``externalParameters`` are ``image`` (the location rebased),
``base`` (the new base) and ``oldBase`` (as given, or null: found from the image's base annotations);
``resolvedDependencies`` the image (kind ``image``), each old base (``old-base``) and each new base
(``base-image``) by manifest digest."""

BUILDER_ID = f"https://ocibuild.dev/ocibuild@{__version__}"
"""``runDetails.builder.id``: ocibuild and its version."""


class _Resources:
    """ResourceDescriptors, merged when two platforms used the same input (their platforms joined)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.platforms: dict[str, set[str]] = {}

    def add(self, platform: str, *, kind: str, name: str, uri: str = "", sha256: str = "",
            **notes: str) -> None:
        item: dict[str, Any] = {"name": name}
        if uri:
            item["uri"] = uri
        if sha256:
            item["digest"] = {"sha256": sha256}
        item["annotations"] = {"kind": kind, **{k: v for k, v in notes.items() if v}}
        key = canonical_json(item).decode()
        self.items.setdefault(key, item)
        self.platforms.setdefault(key, set()).add(platform)

    def sorted(self) -> list[dict[str, Any]]:
        out = []
        for key, item in self.items.items():
            annotations = {**item["annotations"], "platforms": sorted(self.platforms[key])}
            out.append({**item, "annotations": annotations})
        return sorted(out, key=lambda d: (d["annotations"]["kind"], d["name"], d.get("uri", ""),
                                          canonical_json(d.get("digest", {}))))


def _layer_file_hashes(layers: Iterable[Layer]) -> Iterable[tuple[str, str]]:
    """(path, sha256) of every regular file in ``layers``, streamed (model layers hold big files)."""
    for layer in layers:
        with layer.uncompressed() as stream, tarfile.open(fileobj=stream, mode="r|",
                                                          tarinfo=BoundedTarInfo) as tar:
            for member in tar:
                if not member.isreg():
                    continue
                data = tar.extractfile(member)
                if data is None:
                    continue
                h = hashlib.sha256()
                while chunk := data.read(1 << 20):
                    h.update(chunk)
                yield "/" + posixpath.normpath(member.name).lstrip("/"), h.hexdigest()


def _model_files(result: BuildResult, inputs: BuildInputs, platform: str, deps: _Resources) -> None:
    project = result.plan.project_dir.absolute()
    for m in result.models:
        for f in m.files:
            uri = f.source.absolute().as_uri() if f.source is not None else ""
            deps.add(platform, kind="model-file", name=f"{m.name}/{f.path}", uri=uri, sha256=f.sha256, model=m.name)
    if not inputs.model_layers:
        return
    specs = {s.name: s for s in result.plan.models}
    for path, sha in _layer_file_hashes(r.layer for r in inputs.model_layers):
        parts = path.split("/", 5)  # "", "mnt", "models", NAME, "models", REL
        if len(parts) < 6 or parts[3] not in specs:
            continue
        spec = specs[parts[3]]
        src = spec.src if spec.src.is_absolute() else project / spec.src
        uri = (src if src.is_file() else src / parts[5]).as_uri()
        deps.add(platform, kind="model-file", name=f"{spec.name}/{parts[5]}", uri=uri, sha256=sha, model=spec.name)


def _platform_inputs(result: BuildResult, image: Image, deps: _Resources, byproducts: _Resources) -> None:
    inputs = next((p.inputs for p in result.platforms if p.digest == str(image.digest)), None)
    platform = str(image.config.platform)
    if inputs is None:
        raise ConfigError(f"image {image.digest} is not one of the build's images; pass the images of "
                          "result.platforms (or none)")
    location = result.plan.base_for(image.config.platform)
    if isinstance(location, DebianBase):
        byproducts.add(platform, kind="base-image", name=inputs.base_location, sha256=inputs.base.digest.hex,
                       built="from the deb files in resolvedDependencies")
        lock = inputs.debian
        for p in lock.packages if lock is not None else ():
            deps.add(platform, kind="deb", name=posixpath.basename(p.filename), sha256=p.sha256,
                     uri=deb_url(result, inputs, p.filename, p.mirror or (lock.mirror if lock else "")),
                     package=p.name, version=p.version, architecture=p.architecture)
    elif not inputs.scratch:
        deps.add(platform, kind="base-image", name=inputs.base_location, uri=inputs.base_location,
                 sha256=inputs.base.digest.hex)
    for w in inputs.wheels:
        if w.sdist is None:
            deps.add(platform, kind="wheel", name=w.filename, uri=file_url(w.url) or purl("pypi", w.pin.name,
                                                                                          w.pin.version),
                     sha256=w.sha256, distribution=w.pin.name, version=w.pin.version)
            continue
        deps.add(platform, kind="sdist", name=w.sdist.filename, sha256=w.sdist.sha256,
                 uri=file_url(w.sdist.url) or purl("pypi", w.pin.name, w.pin.version),
                 distribution=w.pin.name, version=w.pin.version, built=w.filename)
        byproducts.add(platform, kind="wheel", name=w.filename, sha256=w.sha256, built_from=w.sdist.filename)
        for req in w.sdist.build_requirements:
            deps.add(platform, kind="sdist-build-requirement", name=f"{req.name}=={req.version}",
                     uri=purl("pypi", req.name, req.version), sdist=w.sdist.filename)
    project = result.plan.project_dir.absolute()
    for report in inputs.app_layers:
        deps.add(platform, kind="project-files", name=report.label, uri=project.as_uri(),
                 sha256=report.layer.diff_id.hex, digest_of="the layer's uncompressed tar (diff_id)")
    _model_files(result, inputs, platform, deps)
    for m in result.models:
        byproducts.add(platform, kind="model-image", name=m.name, sha256=m.image.digest.hex,
                       reference=result.model_references.get(m.name, ""))


def slsa_provenance(result: BuildResult, platform_images: Sequence[Image] | None = None, *,
                    plan_dict: Mapping[str, Any] | None = None) -> bytes:
    """The SLSA provenance v1 in-toto Statement of ``result`` (see the module docstring), as canonical
    JSON bytes. ``platform_images`` are the images it covers (default: every platform's) and
    ``plan_dict`` the plan to record (default ``result.plan.to_dict()`` with the project folder made
    absolute: a relative one would mean another folder wherever the provenance is read).

    >>> slsa_provenance(result, plan_dict=plan.to_dict())  # doctest: +SKIP
    b'{"_type":"https://in-toto.io/Statement/v1",...'
    """
    images = list(platform_images) if platform_images is not None else \
        [p.image for p in result.platforms if p.image is not None] or [result.image]
    name = project_name(result.plan.project_dir)
    multi = result.index is not None
    subjects: list[dict[str, Any]] = []
    deps, byproducts = _Resources(), _Resources()
    for image in images:
        platform = str(image.config.platform)
        subjects.append({"name": f"{name} ({platform})" if multi else name, "digest": {"sha256": image.digest.hex},
                         "mediaType": str(image.manifest.media_type), "annotations": {"platform": platform}})
        _platform_inputs(result, image, deps, byproducts)
    if result.index is not None:
        subjects.append({"name": name, "digest": {"sha256": result.index.digest.hex},
                         "mediaType": str(result.index.descriptor().media_type)})
    epoch = result.plan.source_date_epoch
    run: dict[str, Any] = {"builder": {"id": BUILDER_ID, "version": {"ocibuild": __version__}}}
    if epoch:
        run["metadata"] = {"startedOn": rfc3339(epoch), "finishedOn": rfc3339(epoch)}
    if byproducts.items:
        run["byproducts"] = byproducts.sorted()
    statement = {
        "_type": STATEMENT_TYPE,
        "subject": sorted(subjects, key=lambda s: (s["name"], s["digest"]["sha256"])),
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": dict(plan_dict) if plan_dict is not None else _recorded_plan(result),
                "resolvedDependencies": deps.sorted(),
            },
            "runDetails": run,
        },
    }
    return canonical_json(statement)


def _recorded_plan(result: BuildResult) -> dict[str, Any]:
    from dataclasses import replace

    # the shared cache is not an input of the image (and names an internal registry): not recorded
    return replace(result.plan, project_dir=result.plan.project_dir.absolute(), cache_repo=None).to_dict()


def rebase_provenance(subjects: Sequence[tuple[str, Image]], index: tuple[str, Any] | None,
                      parameters: Mapping[str, Any], dependencies: Sequence[tuple[str, str, str, str, str]],
                      epoch: int) -> bytes:
    """The SLSA provenance of a rebase (:data:`REBASE_BUILD_TYPE`): ``subjects`` (name, rebased image),
    ``index`` (name, the rebased index) if any, ``parameters`` as the command got them, and
    ``dependencies`` as (kind, name, uri, sha256, platform). Canonical JSON, no clock (``epoch`` =
    ``SOURCE_DATE_EPOCH``, 0 for none)."""
    deps = _Resources()
    for kind, name, uri, sha256, platform in dependencies:
        deps.add(platform, kind=kind, name=name, uri=uri, sha256=sha256)
    out: list[dict[str, Any]] = []
    for name, image in subjects:
        platform = str(image.config.platform)
        out.append({"name": name, "digest": {"sha256": image.digest.hex}, "mediaType": str(image.manifest.media_type),
                    "annotations": {"platform": platform}})
    if index is not None:
        out.append({"name": index[0], "digest": {"sha256": index[1].digest.hex},
                    "mediaType": str(index[1].descriptor().media_type)})
    run: dict[str, Any] = {"builder": {"id": BUILDER_ID, "version": {"ocibuild": __version__}}}
    if epoch:
        run["metadata"] = {"startedOn": rfc3339(epoch), "finishedOn": rfc3339(epoch)}
    return canonical_json({
        "_type": STATEMENT_TYPE,
        "subject": sorted(out, key=lambda x: (x["name"], x["digest"]["sha256"])),
        "predicateType": PREDICATE_TYPE,
        "predicate": {"buildDefinition": {"buildType": REBASE_BUILD_TYPE, "externalParameters": dict(parameters),
                                          "resolvedDependencies": deps.sorted()},
                      "runDetails": run},
    })

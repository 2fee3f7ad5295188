"""``ocibuild resolve``: build and push every ``ocibuild://`` and ``ocibuild-model://`` reference of
Kubernetes YAML, and give back the YAML with each replaced by ``REGISTRY/REPO@sha256:...`` (ko's
``ko resolve -f``).

The app of project ``DIR`` goes to ``PREFIX/<DIR's name>``, its model ``NAME`` to
``PREFIX/<DIR's name>-<NAME>``; each project is built once, however often it is referred to.

>>> out = resolve(["k8s/"], repo="registry.example.com/team")  # doctest: +SKIP
>>> print(out.render(out.files[0]))  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError
from .events import EventHandler, Note, ignore
from .kube import KubeFile, KubeRef, read_kube_files, references, render
from .spec import Reference
from .store import ContentStore

if TYPE_CHECKING:
    from .evidence import Evidence
    from .registry import RegistryClient

__all__ = ["Resolution", "ResolvedImage", "repository_prefix", "resolve"]

REPO_ENV = "OCIBUILD_REPO"
TAG = "latest"


@dataclass(frozen=True, kw_only=True, slots=True)
class ResolvedImage:
    """One reference of the YAML and the image it became."""

    source: str  # ocibuild://PROJECT or ocibuild-model://PROJECT/NAME, with the absolute project folder
    kind: str  # "app" or "model"
    project: Path
    model: str | None
    image: str  # REGISTRY/REPO@sha256:...
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "kind": self.kind, "project": str(self.project), "model": self.model,
                "image": self.image, "digest": self.digest}


@dataclass(frozen=True, kw_only=True, slots=True)
class Resolution:
    """The YAML files read and what each reference resolved to."""

    files: tuple[KubeFile, ...]
    images: tuple[ResolvedImage, ...]
    by_ref: dict[KubeRef, str] = field(default_factory=dict, repr=False)

    def render(self, file: KubeFile) -> str:
        """``file``'s text with every reference replaced by its digest reference."""
        return render(file, self.by_ref)

    def to_dict(self) -> dict[str, Any]:
        """The ``--result-json`` / ``--images-lock`` document."""
        return {"images": [i.to_dict() for i in self.images], "files": [str(f.path) for f in self.files]}


def repository_prefix(text: str | None, environ: dict[str, str] | None = None) -> str:
    """``--repo REGISTRY/PREFIX``, else ``$OCIBUILD_REPO``: where resolved images are pushed."""
    import os

    value = text or (environ if environ is not None else os.environ).get(REPO_ENV, "")
    value = value.strip().removeprefix("docker://").rstrip("/")
    if not value:
        raise ConfigError(f"resolve: no registry to push to; give --repo REGISTRY/PREFIX (e.g. "
                          f"--repo 127.0.0.1:5000/team) or set {REPO_ENV}")
    try:
        ref = Reference.parse(f"{value}/probe")
    except ValueError as exc:
        raise ConfigError(f"--repo {value!r} is not a registry and repository prefix "
                          f"(e.g. registry.example.com/team): {exc}") from None
    if "/" not in value or ref.registry not in value:
        raise ConfigError(f"--repo {value!r} must start with the registry host, e.g. registry.example.com/team")
    return value


def _repo_name(project: Path) -> str:
    name = re.sub(r"[^a-z0-9._-]+", "-", project.name.lower()).strip("-._")
    return re.sub(r"[._-]{2,}", "-", name) or "app"


def resolve(paths: Sequence[Path | str], *, repo: str, store: ContentStore | None = None,
            client: RegistryClient | None = None, on_event: EventHandler = ignore, platform: str | None = None,
            update_lock: bool = False, evidence: Evidence | None = None) -> Resolution:
    """Build and push every project and model ``paths`` (YAML files or folders) refer to, each once;
    the apps with ``evidence`` (default: an SPDX SBOM and the provenance, as ``ocibuild build`` does)."""
    from .evidence import Evidence

    evidence = evidence if evidence is not None else Evidence()
    from .build import build
    from .config import Overrides, load_plan
    from .models import WeightsLock, build_model
    from .publish import publish
    from .registry import RegistryClient

    store = store or ContentStore.default()
    client = client or RegistryClient(on_event=on_event)
    files = read_kube_files([Path(p) for p in paths])
    refs = references(files)
    by_project: dict[Path, list[KubeRef]] = {}
    for ref in refs:
        by_project.setdefault(ref.project, []).append(ref)
    resolved: dict[KubeRef, str] = {}
    images: list[ResolvedImage] = []
    for project, wanted in by_project.items():
        name = _repo_name(project)
        app_ref = f"{repo}/{name}"
        plan = load_plan(project, overrides=Overrides(platform=platform, outputs=(f"docker://{app_ref}:{TAG}",)))
        digests: dict[str | None, str] = {}
        if any(r.kind == "app" for r in wanted):
            on_event(Note(text=f"build   {project} -> {app_ref}"))
            result = publish(build(plan, store=store, on_event=on_event, client=client, update_lock=update_lock),
                             on_event=on_event, client=client, evidence=evidence)
            digests[None] = result.digest
            digests.update({m.name: m.digest for m in result.models})
        specs = {m.name: m for m in plan.models}
        for ref in wanted:
            if ref.kind != "model" or ref.model in digests:
                continue
            assert ref.model is not None
            if ref.model not in specs:
                have = ", ".join(sorted(specs)) or "none"
                raise ConfigError(f"{ref}: project {project} has no model {ref.model!r} in its build file "
                                  f"([[models]] names: {have})")
            target = f"{app_ref}-{ref.model}"
            on_event(Note(text=f"build   {project} model {ref.model} -> {target}"))
            lock = WeightsLock.read(plan.weights_lock) if plan.weights_lock is not None else None
            model, updated = build_model(specs[ref.model], store, project_dir=project.absolute(),
                                         source_date_epoch=plan.source_date_epoch, lock=lock,
                                         update_lock=update_lock, on_event=on_event)
            publish(model.image, [f"docker://{target}:{TAG}"], on_event=on_event, client=client)
            if updated is not None:
                updated.write()
            digests[ref.model] = model.digest
        for ref in wanted:
            key = None if ref.kind == "app" else ref.model
            image = f"{app_ref}{'' if key is None else '-' + key}@{digests[key]}"
            resolved[ref] = image
            images.append(ResolvedImage(source=str(ref), kind=ref.kind, project=project, model=ref.model,
                                        image=image, digest=digests[key]))
    return Resolution(files=tuple(files), images=tuple(images), by_ref=resolved)

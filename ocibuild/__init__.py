"""ocibuild: daemonless, reproducible OCI images for Python projects.

The library API (the CLI is a thin layer over it). Build, then publish::

    from pathlib import Path
    import ocibuild

    plan = ocibuild.BuildPlan(
        project_dir=Path("examples/hello"),
        base=ocibuild.parse_location("scratch"),
        layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),),
        settings=ocibuild.ImageSettings(entrypoint=("/bin/sh", "/app/hello.sh")),
    )
    result = ocibuild.build(plan)                      # in memory (layers in the content store)
    ocibuild.publish(result, ["oci:out/hello:v1"])    # or sink_for("docker://...", session=...)
    print(result.digest)

or read a project's build file: ``ocibuild.load_plan("examples/hello")``. Model files become an
image of their own with ``ocibuild.build_model``; ``ocibuild.resolve.resolve`` builds and pushes what
Kubernetes YAML refers to; ``ocibuild.build_many`` builds many projects (``load_workspace``) in one
batch, sharing their layers; ``ocibuild.rebase`` puts an image's own layers on a new base without
rebuilding them; ``ocibuild.DevSession`` with ``ocibuild.dev.watch`` is the inner loop
(rebuild and publish on every save). Images can also be composed by hand:
``ocibuild.mutate.append(base, ocibuild.mutate.Addendum(layer=...))``.
"""

from . import mutate
from .batch import (
    BatchProject,
    BatchResult,
    ProjectFailure,
    ProjectPlan,
    ProjectResult,
    build_many,
    load_workspace,
    plan_projects,
)
from .build import BuildMemo, BuildResult, BuildResultPlatform, LayerReport, build
from .config import Overrides, load_plan
from .dev import DevSession
from .errors import (
    ConfigError,
    DigestMismatch,
    DiskFull,
    ImageNotFound,
    LayerError,
    OcibuildError,
    OutputError,
    RebaseError,
    RegistryError,
    RemoteFileNotFound,
    ResolutionError,
    SignatureError,
    SourceError,
    StoreError,
    UnknownPackage,
)
from .events import (
    BaseResolved,
    BlobTransferred,
    BuildStarted,
    Event,
    EventHandler,
    LayerDone,
    LayerExplained,
    Note,
    OutputDone,
    Progress,
    Pushed,
)
from .image import Artifact, BlobLayer, Image, Index, Layer, MemoryImage, MemoryIndex, Mountable
from .init import InitResult, init_project
from .inspect import ImageInfo, LayerInfo, inspect_image
from .layers import Compression
from .models import ModelBuild, WeightsLock, build_model
from .plan import BuildPlan, FileEntry, ImageSettings, LayerSpec, ModelSpec, PythonSpec, plan_schema
from .publish import publish
from .rebase import RebaseResult, rebase, rebase_documents
from .sinks import DockerArchiveSink, LayoutSink, MultiSink, OciArchiveSink, RegistrySink, Sink, sink_for
from .sources import base_platforms, resolve_base
from .spec import Digest, Platform, Reference
from .store import ContentStore
from .transports import DebianBase, DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch, parse_location
from .version import __version__

__all__ = [
    "Artifact",
    "BaseResolved",
    "BatchProject",
    "BatchResult",
    "BlobLayer",
    "BlobTransferred",
    "BuildMemo",
    "BuildPlan",
    "BuildResult",
    "BuildResultPlatform",
    "BuildStarted",
    "Compression",
    "ConfigError",
    "ContentStore",
    "DebianBase",
    "DevSession",
    "Digest",
    "DigestMismatch",
    "DiskFull",
    "DockerArchive",
    "DockerArchiveSink",
    "Event",
    "EventHandler",
    "FileEntry",
    "Image",
    "ImageInfo",
    "ImageNotFound",
    "ImageSettings",
    "Index",
    "InitResult",
    "Layer",
    "LayerDone",
    "LayerError",
    "LayerExplained",
    "LayerInfo",
    "LayerReport",
    "LayerSpec",
    "LayoutSink",
    "Location",
    "MemoryImage",
    "MemoryIndex",
    "ModelBuild",
    "ModelSpec",
    "Mountable",
    "MultiSink",
    "Note",
    "OciArchive",
    "OciArchiveSink",
    "OciLayout",
    "OcibuildError",
    "OutputDone",
    "OutputError",
    "Overrides",
    "Platform",
    "Progress",
    "ProjectFailure",
    "ProjectPlan",
    "ProjectResult",
    "Pushed",
    "PythonSpec",
    "RebaseError",
    "RebaseResult",
    "Reference",
    "Registry",
    "RegistryError",
    "RegistrySink",
    "RemoteFileNotFound",
    "ResolutionError",
    "Scratch",
    "SignatureError",
    "Sink",
    "SourceError",
    "StoreError",
    "UnknownPackage",
    "WeightsLock",
    "__version__",
    "base_platforms",
    "build",
    "build_many",
    "build_model",
    "init_project",
    "inspect_image",
    "load_plan",
    "load_workspace",
    "mutate",
    "parse_location",
    "plan_projects",
    "plan_schema",
    "publish",
    "rebase",
    "rebase_documents",
    "resolve_base",
    "sink_for",
]

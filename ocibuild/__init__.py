"""ocibuild: daemonless, reproducible OCI images for Python projects.

The library API (the CLI is a thin layer over it)::

    from pathlib import Path
    import ocibuild

    plan = ocibuild.BuildPlan(
        project_dir=Path("examples/hello"),
        base=ocibuild.parse_location("scratch"),
        layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),),
        settings=ocibuild.ImageSettings(entrypoint=("/bin/sh", "/app/hello.sh")),
        outputs=(ocibuild.parse_location("oci:out/hello:v1"),),
    )
    result = ocibuild.build(plan)
    print(result.digest)

or read a project's build file: ``ocibuild.load_plan("examples/hello")``.
"""

__version__ = "0.1.0"

from .build import BuildResult, LayerReport, build
from .config import Overrides, load_plan
from .errors import (
    ConfigError,
    DigestMismatch,
    ImageNotFound,
    LayerError,
    OcibuildError,
    OutputError,
    RegistryError,
    SourceError,
    StoreError,
)
from .events import BaseResolved, Event, LayerDone, OutputDone
from .image import Image
from .layers import Compression
from .plan import BuildPlan, ImageSettings, LayerSpec
from .sources import BaseImage, resolve_base
from .store import ContentStore
from .transports import DockerArchive, Location, OciArchive, OciLayout, Registry, Scratch, parse_location

__all__ = [
    "BaseImage",
    "BaseResolved",
    "BuildPlan",
    "BuildResult",
    "Compression",
    "ConfigError",
    "ContentStore",
    "DigestMismatch",
    "DockerArchive",
    "Event",
    "Image",
    "ImageNotFound",
    "ImageSettings",
    "LayerDone",
    "LayerError",
    "LayerReport",
    "LayerSpec",
    "Location",
    "OciArchive",
    "OciLayout",
    "OcibuildError",
    "OutputDone",
    "OutputError",
    "Overrides",
    "Registry",
    "RegistryError",
    "Scratch",
    "SourceError",
    "StoreError",
    "__version__",
    "build",
    "load_plan",
    "parse_location",
    "resolve_base",
]

"""What one platform image of a build holds, exactly: the input to its SBOM.

:func:`inventory` reads the image's merged filesystem once (:func:`ocibuild.imagefs.merged_view`,
bounded) and joins it with what the build recorded (``BuildResultPlatform.inputs``):

- every Python distribution whose ``*.dist-info/METADATA`` is in the image (name, version, license
  from ``METADATA``; see :mod:`.licenses`), with the sha256, file name and origin of the wheel this
  build installed it from (and of the sdist that wheel was built from), when it was one of them;
- for a base assembled from Debian packages, every ``.deb`` of its lock (sha256, origin); for any other
  base, the packages its ``/var/lib/dpkg/status`` and ``/var/lib/dpkg/status.d/*`` records list;
- SBOM documents that wheels ship in ``*.dist-info/sboms/`` (PEP 770), kept with their distribution;
- model files, by path and sha256: those of model images the app refers to, or with ``embed_models``
  those in the image (hashed while the walk streams them);
- the project's own files as one package (the sha256 of its layer's ``diff_id``, see :class:`App`);
- the base image (location and digest).

Everything is sorted and every identifier derives from content, so the same image gives the same
inventory on any machine.

>>> inv = inventory(result)  # doctest: +SKIP
>>> [(p.name, p.version) for p in inv.packages if p.ecosystem == "pypi"]  # doctest: +SKIP
[('six', '1.17.0')]
"""

from __future__ import annotations

import email.parser
import hashlib
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal
from urllib.parse import quote

from ..errors import ConfigError
from ..imagefs import Entry, Limits, Reader, merged_view
from ..models import MODEL_MOUNT_ROOT, MODELS_DIR
from ..transports import DebianBase, Registry, Scratch
from .licenses import DeclaredLicense, declared_license

if TYPE_CHECKING:
    from ..build import BuildInputs, BuildResult
    from ..image import Image

__all__ = ["App", "Base", "EmbeddedSbom", "Inventory", "Model", "ModelFile", "Package", "SourceFile", "deb_url",
           "file_url", "inventory", "project_name", "purl", "safe_text"]

Ecosystem = Literal["pypi", "deb"]
"""Where a package comes from: a Python distribution or a Debian package."""

METADATA_LIMIT = 1 << 20  # only METADATA headers are read, and at most this much of them
STATUS_LIMIT = 64 << 20  # a dpkg status file larger than this is not read
SBOM_LIMIT = 16 << 20  # an embedded SBOM larger than this is listed but not merged
DPKG_STATUS = "/var/lib/dpkg/status"
DPKG_STATUS_D = "/var/lib/dpkg/status.d"
_FIELD = re.compile(r"^([A-Za-z0-9-]+):[ \t]*(.*)$")
_SURROGATE = re.compile("[\ud800-\udfff]")


def project_name(project_dir: Path) -> str:
    """The project's name in SBOMs and provenance: its folder's name, lowercased to the characters an
    OCI repository name allows (``My App`` -> ``my-app``; ``app`` if nothing is left)."""
    return re.sub(r"[^a-z0-9._-]+", "-", project_dir.absolute().name.lower()).strip("-._") or "app"


def _purl_part(text: str) -> str:
    """Percent-encode a purl name / version / qualifier value (``:`` stays, as packageurl-python does)."""
    return quote(text, safe="").replace("%3A", ":")


def purl(kind: str, name: str, version: str, *, namespace: str = "", qualifiers: Mapping[str, str] | None = None,
         ) -> str:
    """A package URL (https://github.com/package-url/purl-spec), qualifiers sorted.

    >>> purl("deb", "libc6", "2.36-9+deb12u10", namespace="debian", qualifiers={"arch": "amd64"})
    'pkg:deb/debian/libc6@2.36-9%2Bdeb12u10?arch=amd64'
    """
    text = f"pkg:{kind}/" + (f"{_purl_part(namespace)}/" if namespace else "") + _purl_part(name)
    if version:
        text += "@" + _purl_part(version)
    pairs = sorted((k, v) for k, v in (qualifiers or {}).items() if v)
    if pairs:
        text += "?" + "&".join(f"{k}={_purl_part(v)}" for k, v in pairs)
    return text


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def safe_text(text: str, limit: int = 1024) -> str:
    """``text`` as valid UTF-8 (undecodable bytes from a tar name or a file become U+FFFD), at most
    ``limit`` characters: what a hostile image writes cannot break the JSON of a document."""
    try:  # bytes a tar name or file could not decode were kept as surrogate escapes: one U+FFFD per byte
        clean = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # other lone surrogates (from JSON "\ud800" escapes)
        clean = _SURROGATE.sub("\ufffd", text)
    return clean[:limit]


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceFile:
    """A file a package was installed or built from: its name, sha256 and where it came from (a URL,
    ``file://`` for a local one, or "" if not recorded)."""

    filename: str
    sha256: str
    url: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class EmbeddedSbom:
    """An SBOM a wheel ships in ``.dist-info/sboms/`` (PEP 770): its path in the image, the sha256 of
    its bytes, its format (``cyclonedx``, ``spdx`` or ``unknown``) and its bytes (None if too large)."""

    path: str
    sha256: str
    format: Literal["cyclonedx", "spdx", "unknown"]
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class Package:
    """One package in the image. ``origin`` says whether the base brought it or this build added it;
    ``path`` is its record in the image (the ``.dist-info`` folder, the dpkg status file);
    ``file`` is the wheel or ``.deb`` it was installed from when the build knows it exactly, and
    ``sdist`` the sdist that wheel was built from on this machine."""

    ecosystem: Ecosystem
    name: str
    version: str
    purl: str
    origin: Literal["base", "build"]
    path: str
    architecture: str = ""
    license: DeclaredLicense | None = None
    file: SourceFile | None = None
    sdist: SourceFile | None = None
    sboms: tuple[EmbeddedSbom, ...] = ()

    @property
    def ref(self) -> str:
        """A stable identifier, unique in the inventory: ``pypi-six-1.17.0-<hash of the path>``."""
        tail = hashlib.sha256(f"{self.purl}\n{self.path}".encode()).hexdigest()[:8]
        return re.sub(r"[^A-Za-z0-9.-]+", "-", f"{self.ecosystem}-{self.name}-{self.version}") + f"-{tail}"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelFile:
    """A model file: its path where the app sees it, its size (0 if unknown) and sha256."""

    path: str
    sha256: str
    size: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class Model:
    """A model the app uses: embedded in the image (``digest`` empty) or a model image of its own
    that the app refers to by ``reference`` (``digest`` is that image's manifest digest)."""

    name: str
    embedded: bool
    files: tuple[ModelFile, ...]
    digest: str = ""
    reference: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class App:
    """The project's own files, as one package: ``sha256`` is the hex of the ``diff_id`` of its one
    code layer, or, when it has several (big files get a layer each), the sha256 of their ``diff_id``
    strings joined by newlines, in image order. ``layers`` lists (label, diff_id) of each."""

    name: str
    sha256: str
    layers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class Base:
    """The base image: its location as the plan gives it, a reference (``registry/repo:tag`` for a
    registry), its manifest digest, and whether it was assembled from Debian packages."""

    location: str
    reference: str
    digest: str
    debian: bool = False


@dataclass(frozen=True, kw_only=True, slots=True)
class Inventory:
    """Everything one platform image holds, sorted (see the module docstring)."""

    name: str
    platform: str
    digest: str
    base: Base | None
    app: App | None
    packages: tuple[Package, ...]
    models: tuple[Model, ...] = ()
    distro: str = ""

    @property
    def purl(self) -> str:
        """``pkg:oci/<name>@sha256:...?arch=...``: the image's package URL."""
        arch = self.platform.split("/")[1] if "/" in self.platform else self.platform
        return purl("oci", self.name, self.digest, qualifiers={"arch": arch})


# --------------------------------------------------------------------------------------------------
# reading the image
# --------------------------------------------------------------------------------------------------


def _headers(entry: Entry, stream: IO[bytes]) -> bytes | None:
    """The header block of an RFC 822-style file (``METADATA``), at most ``METADATA_LIMIT`` bytes."""
    data = b""
    while len(data) < METADATA_LIMIT:
        chunk = stream.read(65536)
        if not chunk:
            break
        data += chunk
        end = data.find(b"\n\n")
        if end >= 0:
            return data[:end + 1]
    return data[:METADATA_LIMIT]


def _sha256(entry: Entry, stream: IO[bytes]) -> bytes | None:
    h = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        h.update(chunk)
    return h.hexdigest().encode()


def _upto(limit: int) -> Reader:
    def read(entry: Entry, stream: IO[bytes]) -> bytes | None:
        return stream.read() if entry.size <= limit else None
    return read


def _parse_headers(data: bytes) -> dict[str, list[str]]:
    message = email.parser.HeaderParser().parsestr(data.decode("utf-8", "replace"))
    fields: dict[str, list[str]] = {}
    for key, value in message.items():
        fields.setdefault(key, []).append(safe_text(str(value).strip(), 16384))
    return {k.title() if k.lower() != "license-expression" else "License-Expression": v for k, v in fields.items()}


def _paragraphs(text: str) -> list[dict[str, str]]:
    """The paragraphs of a dpkg status file (first line of each field only; continuation lines skipped)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                out.append(current)
            current = {}
            continue
        if line[0] in " \t":
            continue
        m = _FIELD.match(line)
        if m:
            current[m.group(1).lower()] = m.group(2).strip()
    if current:
        out.append(current)
    return out


def _os_release(view: Mapping[str, Entry], resolve: Callable[[str], Entry | None]) -> str:
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        entry = view.get(path)
        if entry is not None and entry.kind == "symlink":
            entry = resolve(path)
        if entry is not None and entry.data:
            for line in entry.data.decode("utf-8", "replace").splitlines():
                if line.startswith("ID="):
                    return re.sub(r"[^a-z0-9._-]", "", line[3:].strip().strip("\"'").lower())
    return ""


def _dist_info(path: str) -> str | None:
    """``/x/site-packages/six-1.17.0.dist-info`` for its ``METADATA`` path, else None."""
    parent, name = posixpath.split(path)
    return parent if name == "METADATA" and parent.endswith(".dist-info") else None


def _in_models(path: str) -> bool:
    return path.startswith(MODEL_MOUNT_ROOT + "/") and f"/{MODELS_DIR}/" in path[len(MODEL_MOUNT_ROOT) + 1:]


def _wanted(path: str, embedded_models: bool) -> bool:
    if path.endswith("/METADATA") and _dist_info(path) is not None:
        return True
    if "/sboms/" in path and ".dist-info/sboms/" in path:
        return True
    if path == DPKG_STATUS or (posixpath.dirname(path) == DPKG_STATUS_D and not path.endswith(".md5sums")):
        return True
    if path in ("/etc/os-release", "/usr/lib/os-release"):
        return True
    return embedded_models and _in_models(path)


def _reader(embedded_models: bool) -> Reader:
    status = _upto(STATUS_LIMIT)
    sbom = _upto(SBOM_LIMIT)

    def read(entry: Entry, stream: IO[bytes]) -> bytes | None:
        path = entry.path
        if path.endswith("/METADATA"):
            return _headers(entry, stream)
        if embedded_models and _in_models(path):
            return _sha256(entry, stream)
        if ".dist-info/sboms/" in path:
            return sbom(entry, stream)
        return status(entry, stream)

    return read


def _sbom_format(path: str, data: bytes | None) -> Literal["cyclonedx", "spdx", "unknown"]:
    name = path.lower()
    if name.endswith((".cdx.json", ".cyclonedx.json")) or (data is not None and b'"bomFormat"' in data[:4096]):
        return "cyclonedx"
    if name.endswith(".spdx.json") or (data is not None and b'"spdxVersion"' in data[:4096]):
        return "spdx"
    return "unknown"


# --------------------------------------------------------------------------------------------------
# the inventory
# --------------------------------------------------------------------------------------------------


def _platform_of(result: BuildResult, image: Image) -> BuildInputs | None:
    for p in result.platforms:
        if p.digest == str(image.digest):
            return p.inputs
    return None


def file_url(url: str) -> str:
    """A recorded origin as a URL: a local path becomes a ``file://`` URL; "" stays "".

    >>> file_url("/srv/wheels/six-1.17.0-py2.py3-none-any.whl")
    'file:///srv/wheels/six-1.17.0-py2.py3-none-any.whl'
    """
    if not url or "://" in url:
        return url
    return Path(url).absolute().as_uri()


def _wheels(inputs: BuildInputs | None) -> dict[tuple[str, str], tuple[SourceFile, SourceFile | None]]:
    from packaging.version import InvalidVersion, Version

    out: dict[tuple[str, str], tuple[SourceFile, SourceFile | None]] = {}
    for w in inputs.wheels if inputs is not None else ():
        try:
            version = str(Version(w.pin.version))
        except InvalidVersion:
            version = w.pin.version
        sdist = SourceFile(filename=w.sdist.filename, sha256=w.sdist.sha256, url=file_url(w.sdist.url)) \
            if w.sdist is not None else None
        out[(_normalize(w.pin.name), version)] = (SourceFile(filename=w.filename, sha256=w.sha256,
                                                             url=file_url(w.url)), sdist)
    return out


def _version_key(version: str) -> str:
    from packaging.version import InvalidVersion, Version

    try:
        return str(Version(version))
    except InvalidVersion:
        return version


def deb_url(result: BuildResult, inputs: BuildInputs, filename: str, mirror: str) -> str:
    """Where a locked ``.deb`` (``filename`` relative to ``mirror``) came from: the mirror's URL for it,
    or a ``file://`` URL in the base's deb folder; "" if neither is known."""
    if mirror:
        return mirror.rstrip("/") + "/" + filename
    location = next((loc for loc in (result.plan.base, *result.plan.bases.values())
                     if isinstance(loc, DebianBase) and str(loc) == inputs.base_location), None)
    if location is not None and location.spec.deb_dir is not None:
        return (Path(location.spec.deb_dir).absolute() / filename).as_uri()
    return ""


def _app(result: BuildResult, inputs: BuildInputs | None) -> App | None:
    if inputs is None or not inputs.app_layers:
        return None
    layers = tuple((r.label, str(r.layer.diff_id)) for r in inputs.app_layers)
    if len(layers) == 1:
        sha = layers[0][1].split(":", 1)[1]
    else:
        sha = hashlib.sha256("\n".join(d for _, d in layers).encode()).hexdigest()
    return App(name=project_name(result.plan.project_dir), sha256=sha, layers=layers)


def _base(result: BuildResult, inputs: BuildInputs | None, image: Image) -> Base | None:
    if inputs is None:
        location = result.plan.base_for(image.config.platform)
        if isinstance(location, Scratch):
            return None
        return Base(location=str(location), reference=str(location), digest=str(result.base.digest))
    if inputs.scratch:
        return None
    location = result.plan.base_for(image.config.platform)
    reference = str(location.reference) if isinstance(location, Registry) else inputs.base_location
    return Base(location=inputs.base_location, reference=reference, digest=str(inputs.base.digest),
                debian=isinstance(location, DebianBase))


def inventory(result: BuildResult, image: Image | None = None, *, limits: Limits | None = None) -> Inventory:
    """The :class:`Inventory` of ``image`` (one platform image of ``result``; default
    ``result.image``). Reads every layer of the image once, streaming; ``limits`` bounds what the
    walk keeps (see :class:`ocibuild.imagefs.Limits`).

    >>> inv = inventory(result, result.index.images[1])  # doctest: +SKIP
    """
    image = image if image is not None else result.image
    if all(p.digest != str(image.digest) for p in result.platforms) and image.digest != result.image.digest:
        raise ConfigError(f"image {image.digest} is not one of the build's images "
                          f"({', '.join(p.digest for p in result.platforms)}); pass one of result.platforms' images")
    inputs = _platform_of(result, image)
    embedded = bool(inputs is not None and inputs.model_layers)
    base_layers = len(inputs.base.layers) if inputs is not None else len(result.base.layers)
    view = merged_view(image, keep=lambda e: e.path in ("/etc/os-release", "/usr/lib/os-release"),
                       want=lambda p: _wanted(p, embedded), reader=_reader(embedded),
                       limits=limits or Limits(advice="the image is unusually large or hostile"),
                       cache=result.store, cache_key=f"sbom-inventory-1:{'embedded' if embedded else 'plain'}")
    distro = _os_release(view, view.resolve)
    wheels = _wheels(inputs)

    sboms: dict[str, list[EmbeddedSbom]] = {}
    for path, entry in view.items():
        if ".dist-info/sboms/" in path and entry.kind == "file":
            owner = path.split(".dist-info/sboms/", 1)[0] + ".dist-info"
            data = entry.data
            sboms.setdefault(owner, []).append(EmbeddedSbom(
                path=safe_text(path, 4096), sha256=hashlib.sha256(data).hexdigest() if data is not None else "",
                format=_sbom_format(path, data), data=data))

    packages: list[Package] = []
    for path, entry in view.items():
        dist = _dist_info(path)
        if dist is None or entry.kind != "file" or entry.data is None:
            continue
        fields = _parse_headers(entry.data)
        name = (fields.get("Name") or [""])[0]
        version = (fields.get("Version") or [""])[0]
        if not name or not version:
            continue
        origin: Literal["base", "build"] = "base" if entry.layer < base_layers else "build"
        files = wheels.get((_normalize(name), _version_key(version))) if origin == "build" else None
        name, version = safe_text(name, 256), safe_text(version, 256)
        packages.append(Package(
            ecosystem="pypi", name=name, version=version, purl=purl("pypi", _normalize(name), version),
            origin=origin, path=safe_text(dist, 4096), license=declared_license(fields),
            file=files[0] if files else None, sdist=files[1] if files else None,
            sboms=tuple(sorted(sboms.get(dist, ()), key=lambda s: s.path))))

    namespace = distro if distro in ("debian", "ubuntu") else "debian"
    lock = inputs.debian if inputs is not None else None
    if inputs is not None and lock is not None:
        for p in lock.packages:
            packages.append(Package(
                ecosystem="deb", name=p.name, version=p.version, origin="base", architecture=p.architecture,
                path=f"{DPKG_STATUS_D}/{p.name}",
                purl=purl("deb", p.name, p.version, namespace=namespace, qualifiers={"arch": p.architecture}),
                file=SourceFile(filename=posixpath.basename(p.filename), sha256=p.sha256,
                                url=deb_url(result, inputs, p.filename, p.mirror or lock.mirror))))
    else:
        for path, entry in view.items():
            if (path != DPKG_STATUS and posixpath.dirname(path) != DPKG_STATUS_D) or entry.data is None \
                    or path.endswith(".md5sums"):
                continue
            for para in _paragraphs(entry.data.decode("utf-8", "replace")):
                name, version, arch = (safe_text(para.get(k, ""), 256) for k in ("package", "version", "architecture"))
                status = para.get("status", "install ok installed").split()
                if not name or not version or status[-1:] != ["installed"]:
                    continue
                packages.append(Package(
                    ecosystem="deb", name=name, version=version, architecture=arch, path=safe_text(path, 4096),
                    origin="base" if entry.layer < base_layers else "build",
                    purl=purl("deb", name, version, namespace=namespace, qualifiers={"arch": arch})))

    models = _models(result, view, embedded)
    platform = str(image.config.platform)
    return Inventory(
        name=project_name(result.plan.project_dir), platform=platform, digest=str(image.digest),
        base=_base(result, inputs, image), app=_app(result, inputs), distro=distro,
        packages=tuple(sorted(_unique(packages), key=lambda p: (p.ecosystem, _normalize(p.name), p.version, p.path))),
        models=models)


def _unique(packages: list[Package]) -> list[Package]:
    seen: dict[tuple[str, str, str, str], Package] = {}
    for p in packages:
        seen.setdefault((p.ecosystem, p.name, p.version, p.path), p)
    return list(seen.values())


def _models(result: BuildResult, view: Mapping[str, Entry], embedded: bool) -> tuple[Model, ...]:
    out: list[Model] = []
    for m in result.models:
        files = tuple(ModelFile(path=f"{MODEL_MOUNT_ROOT}/{m.name}/{MODELS_DIR}/{f.path}", sha256=f.sha256,
                                size=f.size) for f in m.files)
        out.append(Model(name=m.name, embedded=False, files=files, digest=m.digest,
                         reference=result.model_references.get(m.name, "")))
    if embedded:
        for spec in result.plan.models:
            prefix = f"{MODEL_MOUNT_ROOT}/{spec.name}/{MODELS_DIR}/"
            files = tuple(ModelFile(path=safe_text(p, 4096), sha256=e.data.decode(), size=e.size)
                          for p, e in sorted(view.items())
                          if p.startswith(prefix) and e.kind == "file" and e.data is not None)
            out.append(Model(name=spec.name, embedded=True, files=files))
    return tuple(sorted(out, key=lambda m: m.name))

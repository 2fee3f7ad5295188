"""Model images: model weights as an OCI image of their own, mountable as a Kubernetes image volume.

The files of a model folder go under ``/models/`` (the KServe modelcar convention): every large
file (>= 64 MB, and every ``.safetensors`` / ``.gguf`` / ``.onnx`` / ``.bin`` / ``.pt`` / ``.pth``)
in an *uncompressed* layer of its own, the small files bundled into gzip layers of bounded size.
The config is a normal image config (``rootfs.diff_ids``: containerd mounts only runnable images),
for the build machine's platform only because the schema needs one; each layer carries the
ModelPack ``org.cncf.model.filepath`` annotation. An app image refers to its models by the manifest
annotation ``org.ocibuild.model.<name>`` and finds their files through ``OCIBUILD_MODEL_<NAME>``.

``weights.lock`` (beside the build file) keeps every file's size and sha256 and the model image's
digest: a build whose files differ fails naming the file, until ``--update-lock`` rewrites it.

>>> model = build_model(ModelSpec(name="weights", src=Path("weights")), store)  # doctest: +SKIP
>>> publish(model.image, ["docker://registry.example/team/app-weights:v1"])  # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from . import mutate
from .errors import ConfigError, LayerError
from .events import EventHandler, LayerDone, ignore
from .image import Image, Layer, MemoryImage, store_layer
from .layers.builder import BuiltLayer, FileHashes, build_layer, content_hash, from_record, input_key, to_record
from .layers.compress import Compression
from .layers.tarwriter import EXEC_MODE, FILE_MODE, TarEntry, TarOptions
from .plan import ModelSpec
from .sources.base import host_platform
from .spec import ImageConfig
from .spec.annotations import CREATED, rfc3339
from .spec.reference import Reference as _Reference
from .store import ContentStore, atomic_write_bytes
from .transports import DockerArchive, Location, OciArchive, OciLayout, Registry

__all__ = ["FILEPATH_ANNOTATION", "LOCK_FILE", "MODEL_ANNOTATION", "MODEL_MOUNT_ROOT", "ModelBuild", "ModelFile",
           "ModelSpec", "WeightsLock", "build_model", "model_env", "model_env_name", "model_files", "model_mount"]

LARGE_FILE = 64 << 20  # a file this big gets an uncompressed layer of its own
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".onnx", ".bin", ".pt", ".pth")  # ... and so does every shard
BUNDLE_BYTES = 32 << 20  # small files go together into gzip layers of about this many bytes at most
MODELS_DIR = "models"  # the files' folder in the model image (/models/, KServe's modelcar convention)
MODEL_MOUNT_ROOT = "/mnt/models"  # where an app mounts model NAME: /mnt/models/NAME
FILEPATH_ANNOTATION = "org.cncf.model.filepath"
MODEL_ANNOTATION = "org.ocibuild.model."  # + name: the app manifest's reference to the model image
TITLE = "org.opencontainers.image.title"
LOCK_FILE = "weights.lock"
LOCK_VERSION = 1
SKIP_DIRS = frozenset({".git", "__pycache__", ".cache"})  # .cache: huggingface_hub's download bookkeeping
UNCOMPRESSED = Compression.parse("none")


def model_env_name(name: str) -> str:
    """``OCIBUILD_MODEL_<NAME>``: the app's variable for model ``name`` (``my-model`` -> ``..._MY_MODEL``)."""
    return "OCIBUILD_MODEL_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def model_mount(name: str) -> str:
    """Where an app mounts model ``name`` (``/mnt/models/<name>``); its files are below ``/models``."""
    return f"{MODEL_MOUNT_ROOT}/{name}"


def model_env(names: Sequence[str]) -> dict[str, str]:
    """The variables an app gets for its models: ``OCIBUILD_MODEL_<NAME>=/mnt/models/<name>/models``."""
    return {model_env_name(n): f"{model_mount(n)}/{MODELS_DIR}" for n in names}


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelFile:
    """One file of a model: its path below the model folder, size and (once known) sha256."""

    path: str
    size: int
    sha256: str = ""
    source: Path | None = field(default=None, compare=False, repr=False)
    mode: int = FILE_MODE

    @property
    def large(self) -> bool:
        return self.size >= LARGE_FILE or self.path.lower().endswith(WEIGHT_SUFFIXES)


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelBuild:
    """A built model image: its name, the image, its files (with sha256) and whether each layer was cached."""

    name: str
    image: Image
    files: tuple[ModelFile, ...]
    cached: tuple[bool, ...] = ()

    @property
    def digest(self) -> str:
        return str(self.image.digest)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: digest, manifest, layers and files."""
        layers = [{"cached": c, **layer.descriptor().to_dict()} for layer, c in zip(self.image.layers, self.cached,
                                                                                     strict=False)]
        return {"name": self.name, "digest": self.digest,
                "manifest": {"mediaType": str(self.image.manifest.media_type), "digest": self.digest,
                             "size": len(self.image.manifest_bytes)},
                "config": self.image.manifest.config.to_dict(), "platform": str(self.image.config.platform),
                "layers": layers, "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files]}


# --------------------------------------------------------------------------------------------------
# the files of a model folder
# --------------------------------------------------------------------------------------------------


def _matches(rel: str, pattern: str) -> bool:
    """gitignore-like: ``*.bin`` matches at any depth, ``sub/*.bin`` from the top, ``sub/`` a folder."""
    pattern = pattern.strip().lstrip("/")
    if pattern.endswith("/"):
        return rel.startswith(pattern)
    if "/" not in pattern and fnmatch.fnmatchcase(posixpath.basename(rel), pattern):
        return True
    return fnmatch.fnmatchcase(rel, pattern) or rel.startswith(pattern + "/")


def model_files(spec: ModelSpec, project_dir: Path = Path(".")) -> list[ModelFile]:
    """The files of ``spec.src`` (a file or folder, relative to ``project_dir``), sorted by path, after
    ``include`` / ``exclude``. Symlinks are followed (a Hugging Face snapshot folder is links into its
    blob store); ``.git``, ``__pycache__`` and ``.cache`` folders are left out."""
    src = spec.src if spec.src.is_absolute() else project_dir / spec.src
    where = f"model {spec.name!r}: src {spec.src}"
    try:
        top = src.stat()
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist; fix 'src' (a file or folder of model files, relative to "
                          f"the project folder)") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read it: {exc.strerror}") from None
    found: list[tuple[str, Path, os.stat_result]] = []
    if stat.S_ISREG(top.st_mode):
        found.append((src.name, src, top))
    elif stat.S_ISDIR(top.st_mode):
        seen = {(top.st_dev, top.st_ino)}
        for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
            keep = []
            for d in sorted(dirnames):
                st = os.stat(os.path.join(dirpath, d))
                if d in SKIP_DIRS or (st.st_dev, st.st_ino) in seen:  # a link loop is walked once
                    continue
                seen.add((st.st_dev, st.st_ino))
                keep.append(d)
            dirnames[:] = keep
            for name in filenames:
                full = Path(dirpath) / name
                try:
                    st = full.stat()
                except OSError as exc:
                    raise ConfigError(f"{where}: {full}: {exc.strerror} (a broken symlink?); fix or exclude it"
                                      ) from None
                if not stat.S_ISREG(st.st_mode):
                    continue
                found.append((full.relative_to(src).as_posix(), full, st))
    else:
        raise ConfigError(f"{where} is neither a file nor a folder")
    files = []
    for rel, full, st in sorted(found):
        if spec.include and not any(_matches(rel, p) for p in spec.include):
            continue
        if any(_matches(rel, p) for p in spec.exclude):
            continue
        files.append(ModelFile(path=rel, size=st.st_size, source=full,
                               mode=EXEC_MODE if st.st_mode & 0o111 else FILE_MODE))
    if not files:
        raise ConfigError(f"{where} holds no files" + (" that match 'include' / 'exclude'" if spec.include or
                                                       spec.exclude else "") + "; point 'src' at the model's files")
    return files


def _entry(f: ModelFile, prefix: str) -> TarEntry:
    assert f.source is not None
    return TarEntry(path=posixpath.join(prefix, f.path), kind="file", mode=f.mode, size=f.size, source=f.source)


def bundles(small: Sequence[ModelFile], budget: int = BUNDLE_BYTES) -> list[list[ModelFile]]:
    """Small files (sorted by path) cut into runs of at most ``budget`` bytes (a bigger one alone)."""
    out: list[list[ModelFile]] = []
    size = 0
    for f in small:
        if not out or size + f.size > budget:
            out.append([])
            size = 0
        out[-1].append(f)
        size += f.size
    return out


# --------------------------------------------------------------------------------------------------
# layers: each large file read once (hashed while it is tarred), or not at all when stat knows it
# --------------------------------------------------------------------------------------------------


class _Tee:
    """A file read for the tar writer whose sha256 and length are taken on the way."""

    def __init__(self, raw: BinaryIO, hasher: Any) -> None:
        self.raw, self.hasher, self.read_bytes = raw, hasher, 0

    def read(self, n: int = -1, /) -> bytes:
        data = self.raw.read(n)
        self.hasher.update(data)
        self.read_bytes += len(data)
        return data

    def __enter__(self) -> _Tee:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()


def _large_layer(f: ModelFile, prefix: str, store: ContentStore, options: TarOptions, hashes: FileHashes,
                 annotations: Mapping[str, str]) -> tuple[BuiltLayer, str]:
    """One file, one uncompressed layer; returns (layer, the file's sha256)."""
    entry = _entry(f, prefix)
    assert f.source is not None
    if known := hashes.get(f.source):
        key = input_key([entry], UNCOMPRESSED, options, "model", hashes)
        if record := store.get_selector(key):
            return from_record(record, UNCOMPRESSED, annotations), known
    hasher = hashlib.sha256()
    tees: list[_Tee] = []

    def opener() -> _Tee:
        assert f.source is not None
        tees.append(_Tee(f.source.open("rb"), hasher))
        return tees[-1]

    built = build_layer([replace(entry, source=None, opener=opener)], store, compression=UNCOMPRESSED,
                        options=options, annotations=annotations, use_cache=False)
    if not tees or tees[-1].read_bytes != f.size:
        raise LayerError(f"{f.source} changed while it was read; build again when it is written completely")
    sha = hasher.hexdigest()
    hashes.put(f.source, sha)
    store.put_selector(input_key([entry], UNCOMPRESSED, options, "model", hashes), to_record(built))
    return built, sha


def _file_sha(f: ModelFile, hashes: FileHashes) -> str:
    return content_hash(_entry(f, ""), hashes)


def _bundle_path(files: Sequence[ModelFile]) -> str:
    """The ModelPack file path of a bundle: the folder all its files share (``.`` for the top)."""
    common = posixpath.commonpath([posixpath.dirname(f.path) or "." for f in files]) if files else "."
    return common or "."


def model_layers(files: Sequence[ModelFile], store: ContentStore, *, prefix: str = MODELS_DIR, mtime: int = 0,
                 on_event: EventHandler = ignore, label: str = "model"
                 ) -> tuple[list[tuple[Layer, str, bool]], list[ModelFile]]:
    """The layers for ``files`` placed below ``prefix`` (large files first, one each, uncompressed; then
    the small ones in gzip bundles): ((layer, history text, cached) each, the files with their sha256)."""
    import time

    options = TarOptions(uid=0, gid=0, mtime=mtime)
    hashes = FileHashes(store)
    out: list[tuple[Layer, str, bool]] = []
    shas: dict[str, str] = {}
    large = [f for f in files if f.large]
    small = [f for f in files if not f.large]
    for f in large:
        start = time.monotonic()
        built, shas[f.path] = _large_layer(f, prefix, store, options, hashes, {FILEPATH_ANNOTATION: f.path})
        out.append((store_layer(store, built.descriptor, built.diff_id), f"ocibuild model: {f.path}", built.cached))
        on_event(LayerDone(label=f"{label}:{posixpath.basename(f.path)}", descriptor=built.descriptor,
                           cached=built.cached, seconds=time.monotonic() - start, files=1))
    for i, group in enumerate(bundles(small)):
        start = time.monotonic()
        for f in group:
            shas[f.path] = _file_sha(f, hashes)
        built = build_layer([_entry(f, prefix) for f in group], store, compression=Compression(), options=options,
                            annotations={FILEPATH_ANNOTATION: _bundle_path(group)}, salt="model")
        out.append((store_layer(store, built.descriptor, built.diff_id),
                    f"ocibuild model: {len(group)} small files", built.cached))
        on_event(LayerDone(label=f"{label}:files{i + 1 if i else ''}", descriptor=built.descriptor,
                           cached=built.cached, seconds=time.monotonic() - start, files=len(group)))
    return out, [replace(f, sha256=shas[f.path]) for f in files]


# --------------------------------------------------------------------------------------------------
# weights.lock
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class WeightsLock:
    """``weights.lock``: per model, every file's size and sha256 and the model image's digest.

    Sorted JSON, one file per line, so a change reads well in a diff."""

    path: Path
    models: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> WeightsLock:
        """The lock at ``path`` (empty when there is none); ``ConfigError`` if it is malformed."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path=path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the weights lock: {exc.strerror}") from None
        fix = f"fix it or rebuild it with --update-lock (or delete {path.name})"
        if len(raw) > 64 << 20:
            raise ConfigError(f"{path}: the weights lock is larger than 64 MiB; {fix}")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ConfigError(f"{path}: not a valid weights lock (JSON); {fix}") from None
        if not isinstance(data, dict) or data.get("version") != LOCK_VERSION or not isinstance(data.get("models"),
                                                                                                dict):
            raise ConfigError(f"{path}: not a version {LOCK_VERSION} weights lock; {fix}")
        models = data["models"]
        for name, entry in models.items():
            files = entry.get("files") if isinstance(entry, dict) else None
            if not isinstance(files, dict) or not all(
                    isinstance(v, dict) and isinstance(v.get("size"), int) and isinstance(v.get("sha256"), str)
                    for v in files.values()):
                raise ConfigError(f"{path}: model {name!r} has no valid 'files' table; {fix}")
        return cls(path=path, models=models)

    def check(self, name: str, files: Sequence[ModelFile], *, sizes_only: bool = False) -> None:
        """Raise ``ConfigError`` naming the first file of model ``name`` that differs from the lock."""
        entry = self.models.get(name)
        if entry is None:
            return
        locked: Mapping[str, Mapping[str, Any]] = entry["files"]
        fix = f"if the change is intended, run again with --update-lock to rewrite {self.path.name}"
        have = {f.path: f for f in files}
        for path in sorted(set(locked) | set(have)):
            if path not in have:
                raise ConfigError(f"{self.path}: model {name!r}: file {path} is in the lock but no longer in the "
                                  f"model folder; {fix}")
            if path not in locked:
                raise ConfigError(f"{self.path}: model {name!r}: file {path} is new (not in the lock); {fix}")
            f, want = have[path], locked[path]
            if f.size != want["size"]:
                raise ConfigError(f"{self.path}: model {name!r}: file {path} changed (size {f.size}, locked "
                                  f"{want['size']}); {fix}")
            if not sizes_only and f.sha256 != want["sha256"]:
                raise ConfigError(f"{self.path}: model {name!r}: file {path} changed (sha256 {f.sha256[:12]}..., "
                                  f"locked {str(want['sha256'])[:12]}...); {fix}")

    def known(self, name: str) -> bool:
        return name in self.models

    def with_model(self, name: str, files: Sequence[ModelFile], digest: str) -> WeightsLock:
        entry = {"image": digest, "files": {f.path: {"sha256": f.sha256, "size": f.size} for f in files}}
        return replace(self, models={**self.models, name: entry})

    def to_bytes(self) -> bytes:
        lines = ["{", f'  "version": {LOCK_VERSION},', '  "models": {']
        names = sorted(self.models)
        for i, name in enumerate(names):
            entry = self.models[name]
            lines.append(f"    {json.dumps(name)}: {{")
            lines.append(f'      "image": {json.dumps(entry.get("image", ""))},')
            lines.append('      "files": {')
            files = entry["files"]
            paths = sorted(files)
            for j, p in enumerate(paths):
                v = files[p]
                lines.append(f'        {json.dumps(p)}: {{"sha256": {json.dumps(v["sha256"])}, "size": {v["size"]}}}'
                             + ("," if j < len(paths) - 1 else ""))
            lines.append("      }")
            lines.append("    }" + ("," if i < len(names) - 1 else ""))
        lines += ["  }", "}"]
        return ("\n".join(lines) + "\n").encode()

    def write(self) -> None:
        try:
            atomic_write_bytes(self.path, self.to_bytes())
        except OSError as exc:
            raise ConfigError(f"{self.path}: cannot write the weights lock: {exc.strerror}") from None


# --------------------------------------------------------------------------------------------------
# the model image
# --------------------------------------------------------------------------------------------------


def build_model(spec: ModelSpec, store: ContentStore, *, project_dir: Path = Path("."), source_date_epoch: int = 0,
                lock: WeightsLock | None = None, update_lock: bool = False, on_event: EventHandler = ignore,
                ) -> tuple[ModelBuild, WeightsLock | None]:
    """Build model ``spec`` into its own image (nothing is written but the store). With ``lock``, the
    files must match it (``ConfigError`` naming the first that does not) unless ``update_lock``;
    returns the model and the lock to write (None when it is unchanged)."""
    files = model_files(spec, project_dir)
    if lock is not None and not update_lock:
        lock.check(spec.name, files, sizes_only=True)  # fail fast, before any byte is read
    laid, files = model_layers(files, store, mtime=source_date_epoch, on_event=on_event, label=spec.name)
    if lock is not None and not update_lock:
        lock.check(spec.name, files)
    created = rfc3339(source_date_epoch)
    image: Image = MemoryImage.assemble(ImageConfig(platform=host_platform(), created=created), ())
    image = mutate.append(image, *(mutate.Addendum(layer=layer, created_by=what, created=created)
                                   for layer, what, _ in laid))
    image = mutate.with_annotations(image, {CREATED: created, TITLE: spec.name})
    model = ModelBuild(name=spec.name, image=image, files=tuple(files), cached=tuple(c for _, _, c in laid))
    if lock is None:
        return model, None
    if update_lock or not lock.known(spec.name):
        return model, lock.with_model(spec.name, files, model.digest)
    # the same files on another CPU (the config names the build machine's) or with another ocibuild give
    # another image digest: the lock keeps the one it was written with, and is not rewritten for that
    return model, None


def embedded_layers(spec: ModelSpec, store: ContentStore, *, project_dir: Path, mtime: int,
                    on_event: EventHandler = ignore) -> list[tuple[mutate.Addendum, bool]]:
    """``--embed-models``: the model's files as layers of the app image, at ``/mnt/models/<name>/models``
    (where ``OCIBUILD_MODEL_<NAME>`` points either way)."""
    files = model_files(spec, project_dir)
    prefix = f"{model_mount(spec.name)}/{MODELS_DIR}".lstrip("/")
    laid, _ = model_layers(files, store, prefix=prefix, mtime=mtime, on_event=on_event, label=spec.name)
    created = rfc3339(mtime)
    return [(mutate.Addendum(layer=layer, created_by=what, created=created), cached) for layer, what, cached in laid]



# --------------------------------------------------------------------------------------------------
# where an app's model images go, and how the app names them
# --------------------------------------------------------------------------------------------------


def model_location(app: Location, name: str) -> Location:
    """Where model ``name`` of an app written to ``app`` goes: ``REGISTRY/REPO-<name>:TAG`` beside a
    registry output, the tag ``TAG-<name>`` (or ``<name>``) in the same OCI layout, and
    ``FILE-<name>.tar`` beside an archive."""
    if isinstance(app, Registry):
        ref = app.reference
        return Registry(reference=_Reference(registry=ref.registry, repository=f"{ref.repository}-{name}",
                                             tag=ref.tag, digest=None))
    if isinstance(app, OciLayout):
        return OciLayout(path=app.path, tag=f"{app.tag}-{name}" if app.tag else name)
    if isinstance(app, OciArchive):
        return OciArchive(path=_beside(app.path, name), tag=app.tag)
    if isinstance(app, DockerArchive):
        text = app.reference
        if text:
            repo, colon, tag = text.rpartition(":") if ":" in text.rsplit("/", 1)[-1] else (text, "", "")
            text = f"{repo}-{name}{colon}{tag}"
        return DockerArchive(path=_beside(app.path, name), reference=text)
    raise ConfigError(f"{app} is not an output a model image can be written beside")


def _beside(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}-{name}{path.suffix or '.tar'}")


def model_reference(outputs: Sequence[Location], project_dir: Path, name: str, digest: str) -> str:
    """The app's ``org.ocibuild.model.<name>`` value: ``REGISTRY/REPO-<name>@sha256:...`` for the first
    registry output, else ``<project folder name>-<name>@sha256:...``."""
    for out in outputs:
        if isinstance(out, Registry):
            placed = model_location(out, name)
            assert isinstance(placed, Registry)
            return f"{placed.reference.name}@{digest}"
    folder = re.sub(r"[^a-z0-9._-]+", "-", project_dir.absolute().name.lower()).strip("-._") or "app"
    return f"{folder}-{name}@{digest}"

"""Independent test infrastructure for ocibuild: makes base images, validates images with tools nobody on
the team wrote, and runs images with a real runtime (umoci + runc, podman).

This module must NOT import ``ocibuild``: it is the yardstick the package is measured against.
Only the standard library and jsonschema/referencing are used; everything else is an external tool
(GNU tar, dpkg-deb, apt-get, mmdebstrap, skopeo, umoci, runc, podman, oci-image-tool, qemu-user-static).
A missing tool is a hard failure, never a skip.

State lives in temp dirs or in :func:`test_cache_dir` (``$OCIBUILD_TEST_CACHE``, default
``/var/cache/ocibuild-test``); nothing in /etc is modified.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

# ---------------------------------------------------------------------------------------------------
# constants
# ---------------------------------------------------------------------------------------------------

TESTS_DIR = Path(__file__).resolve().parent
SCHEMA_DIR = TESTS_DIR / "data" / "oci-schemas"

REF_NAME = "org.opencontainers.image.ref.name"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

DEBIAN_SUITE = "bookworm"
DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "env", "id", "uname", "wget", "sleep", "printf", "test",
                   "true", "false")
# Debian arch name -> qemu-user name (binfmt handler is "qemu-<name>")
QEMU_ARCH = {"arm64": "aarch64", "armhf": "arm", "arm": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
             "riscv64": "riscv64", "386": "i386", "i386": "i386"}
BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")

# bump to invalidate cached base images when the recipe below changes
_CACHE_VERSION = "v2"


# ---------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------

def _run(cmd: Sequence[str | os.PathLike[str]], *, timeout: float | None = 600, what: str | None = None,
         env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run a command, capture output, raise AssertionError (with stderr) on failure or missing tool."""
    argv = [os.fspath(c) for c in cmd]
    if shutil.which(argv[0]) is None:
        raise AssertionError(f"required tool not found on PATH: {argv[0]} (install it; tests never skip)")
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, env=env, cwd=cwd,
                           stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{what or argv[0]} timed out after {timeout}s: {' '.join(argv)}") from e
    if p.returncode != 0:
        raise AssertionError(
            f"{what or argv[0]} failed (exit {p.returncode}): {' '.join(argv)}\n"
            f"--- stderr ---\n{p.stderr.decode(errors='replace')}\n"
            f"--- stdout ---\n{p.stdout.decode(errors='replace')[-4000:]}")
    return p


def _json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    """Store bytes as a sha256 blob; return {'digest', 'size'}."""
    hexd = hashlib.sha256(data).hexdigest()
    d = layout / "blobs" / "sha256"
    d.mkdir(parents=True, exist_ok=True)
    p = d / hexd
    if not p.exists():
        tmp = d / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(data)
        tmp.replace(p)
    return {"digest": f"sha256:{hexd}", "size": len(data)}


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def host_arch() -> str:
    """Debian/OCI name of the host architecture (amd64, arm64, ...)."""
    return _run(["dpkg", "--print-architecture"]).stdout.decode().strip()


def test_cache_dir() -> Path:
    """Cache for built base images: ``$OCIBUILD_TEST_CACHE`` or ``/var/cache/ocibuild-test``."""
    p = Path(os.environ.get("OCIBUILD_TEST_CACHE", "/var/cache/ocibuild-test"))
    p.mkdir(parents=True, exist_ok=True)
    return p


test_cache_dir.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name


def apt_mirror() -> str:
    """The Debian mirror URL configured for this host's apt ($OCIBUILD_DEBIAN_MIRROR overrides)."""
    env = os.environ.get("OCIBUILD_DEBIAN_MIRROR")
    if env:
        return env.rstrip("/")
    candidates: list[str] = []
    sdir = Path("/etc/apt/sources.list.d")
    for f in sorted(sdir.glob("*.sources")) if sdir.is_dir() else []:
        for line in f.read_text().splitlines():
            if line.startswith("URIs:"):
                candidates += line.split()[1:]
    sl = Path("/etc/apt/sources.list")
    if sl.is_file():
        for line in sl.read_text().splitlines():
            parts = line.split()
            if parts[:1] == ["deb"]:
                # skip "[option=value ...]" blocks
                rest = [x for x in parts[1:] if not (x.startswith("[") or x.endswith("]") or "=" in x)]
                if rest:
                    candidates.append(rest[0])
    for u in candidates:
        if "security" not in u and u.startswith(("http://", "https://")):
            return u.rstrip("/")
    raise AssertionError("no Debian mirror found in apt sources; set OCIBUILD_DEBIAN_MIRROR")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _cached_layout(key: str, build: Callable[[Path], None]) -> Path:
    """Return test_cache_dir()/key, building it once (under an fcntl lock, into a temp name that is
    renamed atomically) with ``build(tmp_layout_dir)`` if it does not exist yet."""
    cache = test_cache_dir()
    final = cache / key
    if (final / "index.json").is_file():
        return final
    with _file_lock(cache / f"{key}.lock"):
        if (final / "index.json").is_file():  # built by another process while we waited
            return final
        tmp = cache / f"{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            build(tmp)
            if final.exists():  # half-finished leftover without index.json
                shutil.rmtree(final)
            tmp.rename(final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return final


def _index_path(layout: Path) -> Path:
    return layout / "index.json"


def _set_tag(layout: Path, desc: dict[str, Any], tag: str) -> None:
    """Point ``tag`` at descriptor ``desc`` in layout/index.json (create it if missing), keep other tags."""
    layout.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    ip = _index_path(layout)
    if ip.is_file():
        index = json.loads(ip.read_text())
    else:
        index = {"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": []}
    manifests = [m for m in index.get("manifests", [])
                 if (m.get("annotations") or {}).get(REF_NAME) != tag]
    new = dict(desc)
    new["annotations"] = {**(desc.get("annotations") or {}), REF_NAME: tag}
    manifests.append(new)
    index["manifests"] = manifests
    tmp = layout / f".index.json.tmp-{uuid.uuid4().hex}"
    tmp.write_bytes(_json_bytes(index))
    tmp.replace(ip)


def _tag_descriptor(layout: Path, tag: str) -> dict[str, Any]:
    index = json.loads(_index_path(layout).read_text())
    for m in index.get("manifests", []):
        if (m.get("annotations") or {}).get(REF_NAME) == tag:
            return dict(m)
    raise AssertionError(f"tag {tag!r} not found in {layout}/index.json")


def _read_blob(layout: Path, digest: str) -> bytes:
    alg, _, hexd = digest.partition(":")
    return (layout / "blobs" / alg / hexd).read_bytes()


def _install_cached(cached: Path, dest: Path, tag: str) -> Path:
    """Copy the single tagged image of a cached layout into dest under ``tag`` (dest may already hold
    other images: blobs are merged and index.json keeps the other tags)."""
    index = json.loads(_index_path(cached).read_text())
    (desc,) = index["manifests"]
    if not _index_path(dest).is_file():
        shutil.copytree(cached, dest, dirs_exist_ok=True)
        (dest / "index.json").unlink()
    else:
        for src in (cached / "blobs").rglob("*"):
            if src.is_file():
                tgt = dest / src.relative_to(cached)
                if not tgt.exists():
                    tgt.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, tgt)
    desc.pop("annotations", None)
    _set_tag(dest, desc, tag)
    return dest


def layout_index_of(dest: Path, tag: str, images: Sequence[tuple[Path, str]]) -> Path:
    """Join single-platform images (layout, tag) into one OCI image index tagged ``tag`` in ``dest``,
    with each entry's platform read from its config. Blobs are copied. Returns ``dest``."""
    entries = []
    for layout, image_tag in images:
        desc = _tag_descriptor(layout, image_tag)
        manifest = json.loads(_read_blob(layout, desc["digest"]))
        config = json.loads(_read_blob(layout, manifest["config"]["digest"]))
        for src in (layout / "blobs").rglob("*"):
            if src.is_file():
                tgt = dest / src.relative_to(layout)
                if not tgt.exists():
                    tgt.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(src, tgt)
        platform = {"architecture": config["architecture"], "os": config["os"]}
        if config.get("variant"):
            platform["variant"] = config["variant"]
        entries.append({"mediaType": desc["mediaType"], "digest": desc["digest"], "size": desc["size"],
                        "platform": platform})
    index = _write_blob(dest, _json_bytes({"schemaVersion": 2, "mediaType": MT_OCI_INDEX,
                                           "manifests": entries}))
    _set_tag(dest, {"mediaType": MT_OCI_INDEX, **index}, tag)
    return dest


# ---------------------------------------------------------------------------------------------------
# 1. hand-written OCI layout from a rootfs tar
# ---------------------------------------------------------------------------------------------------

def layout_from_rootfs_tar(tar_path: Path, layout: Path, tag: str, *, arch: str = "amd64",
                           env: list[str] | None = None, cmd: list[str] | None = None) -> Path:
    """Write a single-layer OCI image layout by hand (hashlib + gzip(mtime=0) + json).

    ``tar_path`` is an uncompressed tar (or an already gzipped one, used as is). ``env`` defaults to the
    usual Debian PATH, no Cmd unless ``cmd`` is given. If ``layout`` already has an index.json, ``tag``
    is added or replaced and other tags are kept. Returns ``layout``.
    """
    tar_path = Path(tar_path)
    layout = Path(layout)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    with tar_path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    tmp = blobs / f".tmp-layer-{uuid.uuid4().hex}"
    diff = hashlib.sha256()
    try:
        if gzipped:
            with gzip.open(tar_path, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    diff.update(chunk)
            shutil.copyfile(tar_path, tmp)
        else:
            with tar_path.open("rb") as src, tmp.open("wb") as raw, \
                    gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    diff.update(chunk)
                    gz.write(chunk)
        lhex = _file_sha256(tmp)
        lsize = tmp.stat().st_size
        tmp.replace(blobs / lhex)
    finally:
        tmp.unlink(missing_ok=True)

    config = {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": list(env) if env is not None else [DEBIAN_PATH],
                   **({"Cmd": list(cmd)} if cmd is not None else {})},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff.hexdigest()}"]},
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"tests/tools.py layout_from_rootfs_tar {tar_path.name}"}],
    }
    cdesc = {"mediaType": MT_OCI_CONFIG, **_write_blob(layout, _json_bytes(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": cdesc,
        "layers": [{"mediaType": MT_OCI_LAYER_GZIP, "digest": f"sha256:{lhex}", "size": lsize}],
    }
    mdesc = {"mediaType": MT_OCI_MANIFEST, **_write_blob(layout, _json_bytes(manifest))}
    _set_tag(layout, mdesc, tag)
    return layout


# ---------------------------------------------------------------------------------------------------
# 2. busybox base image (Debian busybox-static)
# ---------------------------------------------------------------------------------------------------

def _parse_packages(text: str) -> Iterator[dict[str, str]]:
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if fields:
            yield fields


def _fetch(url: str, timeout: int = 120) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            data: bytes = r.read()
            return data
    except OSError as e:
        raise AssertionError(f"download failed: {url}: {e}") from e


def download_deb(package: str, arch: str, dest_dir: Path) -> Path:
    """Download one bookworm .deb for ``arch``: ``apt-get download`` for the host arch, else from the
    mirror's Packages.xz index (no dpkg --add-architecture needed). Returns the .deb path."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    if arch == host_arch():
        _run(["apt-get", "download", package], cwd=dest_dir, what="apt-get download")
        debs = sorted(dest_dir.glob(f"{package}_*.deb"))
        if not debs:
            raise AssertionError(f"apt-get download {package} produced no .deb in {dest_dir}")
        return debs[-1]
    mirror = apt_mirror()
    idx = lzma.decompress(_fetch(f"{mirror}/dists/{DEBIAN_SUITE}/main/binary-{arch}/Packages.xz"))
    for st in _parse_packages(idx.decode()):
        if st.get("Package") == package:
            data = _fetch(f"{mirror}/{st['Filename']}")
            if "SHA256" in st and hashlib.sha256(data).hexdigest() != st["SHA256"]:
                raise AssertionError(f"sha256 mismatch for {st['Filename']}")
            out = dest_dir / Path(st["Filename"]).name
            out.write_bytes(data)
            return out
    raise AssertionError(f"{package} not in {mirror} {DEBIAN_SUITE}/main binary-{arch}")


def reproducible_tar(rootfs: Path, out: Path) -> Path:
    """GNU tar of a folder with sorted names, mtime 0, uid/gid 0."""
    _run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
          "-C", rootfs, "-cf", out, "."], what="tar")
    return out


def _build_busybox(layout: Path, arch: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ocibuild-bb-") as td:
        t = Path(td)
        deb = download_deb("busybox-static", arch, t / "dl")
        _run(["dpkg-deb", "-x", deb, t / "x"], what="dpkg-deb")
        root = t / "rootfs"
        (root / "bin").mkdir(parents=True)
        shutil.copy2(t / "x" / "bin" / "busybox", root / "bin" / "busybox")
        (root / "bin" / "busybox").chmod(0o755)
        for a in BUSYBOX_APPLETS:
            (root / "bin" / a).symlink_to("busybox")
        for d in ("tmp", "etc", "proc", "sys", "dev"):
            (root / d).mkdir()
            (root / d).chmod(0o755)
        (root / "tmp").chmod(0o1777)
        root.chmod(0o755)
        (root / "bin").chmod(0o755)
        tar = reproducible_tar(root, t / "layer.tar")
        layout_from_rootfs_tar(tar, layout, "busybox", arch=arch, env=["PATH=/bin"], cmd=["/bin/sh"])


def make_busybox_layout(dest: Path, tag: str = "busybox", arch: str = "amd64") -> Path:
    """Single-layer busybox-static image (Env PATH=/bin, Cmd /bin/sh) in layout ``dest`` under ``tag``.
    Built once per arch into test_cache_dir()/busybox-<arch>-<ver> and copied."""
    cached = _cached_layout(f"busybox-{arch}-{_CACHE_VERSION}", lambda p: _build_busybox(p, arch))
    return _install_cached(cached, Path(dest), tag)


# ---------------------------------------------------------------------------------------------------
# 3. Debian bookworm minbase + python3 (mmdebstrap)
# ---------------------------------------------------------------------------------------------------

def _build_debian_python(layout: Path, arch: str) -> None:
    extra: list[str] = []
    if arch != host_arch():
        ensure_binfmt(arch)
        # mmdebstrap's own emulation check needs the arch-test package; ensure_binfmt checked it already
        extra.append("--skip=check/qemu")
    with tempfile.TemporaryDirectory(prefix="ocibuild-deb-", dir=layout.parent) as td:
        tar = Path(td) / "rootfs.tar"
        _run(["mmdebstrap", f"--arch={arch}", "--variant=minbase", "--include=python3,ca-certificates",
              "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
              "--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata",
              "--dpkgopt=path-exclude=/usr/share/man/*",
              "--dpkgopt=path-exclude=/usr/share/locale/*",
              "--dpkgopt=path-include=/usr/share/locale/locale.alias",
              "--dpkgopt=path-exclude=/usr/share/doc/*",
              "--dpkgopt=path-include=/usr/share/doc/*/copyright",
              *extra, DEBIAN_SUITE, tar, apt_mirror()],
             timeout=1800, what="mmdebstrap", env={**os.environ, "SOURCE_DATE_EPOCH": "0"})
        layout_from_rootfs_tar(tar, layout, "bookworm-py", arch=arch, env=[DEBIAN_PATH], cmd=["python3"])


def make_debian_python_layout(dest: Path, tag: str = "bookworm-py", arch: str = "amd64") -> Path:
    """Debian bookworm minbase + python3 + ca-certificates image (mmdebstrap), cached per arch in
    test_cache_dir() (fcntl lock + atomic rename) and copied into layout ``dest`` under ``tag``.
    Cold build: amd64 ~25-40 s, arm64 (qemu) ~3 min; warm: a copy (~0.01 s). Bit-reproducible
    (SOURCE_DATE_EPOCH=0) as long as the mirror content does not change."""
    cached = _cached_layout(f"bookworm-py-{arch}-{_CACHE_VERSION}", lambda p: _build_debian_python(p, arch))
    return _install_cached(cached, Path(dest), tag)


# ---------------------------------------------------------------------------------------------------
# 4. validation against the OCI JSON schemas + digest/size walk
# ---------------------------------------------------------------------------------------------------

_SCHEMA_FILES = {"index": "image-index-schema.json", "manifest": "image-manifest-schema.json",
                 "config": "config-schema.json", "layout": "image-layout-schema.json"}
_validators: dict[str, jsonschema.Draft4Validator] = {}


def _validator(kind: str) -> jsonschema.Draft4Validator:
    if not _validators:
        if not (SCHEMA_DIR / "image-manifest-schema.json").is_file():
            raise AssertionError(f"OCI schemas missing in {SCHEMA_DIR}")
        resources: list[tuple[str, Resource[Any]]] = []
        for f in SCHEMA_DIR.glob("*.json"):
            r = DRAFT4.create_resource(json.loads(f.read_text()))
            # relative $refs resolve against .../schema/ or .../schema/image/ depending on the file's id
            resources += [(f"https://opencontainers.org/schema/{f.name}", r),
                          (f"https://opencontainers.org/schema/image/{f.name}", r)]
        registry: Registry[Any] = Registry().with_resources(resources)
        for k, fn in _SCHEMA_FILES.items():
            schema = json.loads((SCHEMA_DIR / fn).read_text())
            _validators[k] = jsonschema.Draft4Validator(schema, registry=registry,
                                                        format_checker=jsonschema.FormatChecker())
    return _validators[kind]


class _LayoutChecker:
    def __init__(self, layout: Path) -> None:
        self.layout = layout
        self.errors: list[str] = []
        self.seen: set[str] = set()

    def schema(self, kind: str, doc: Any, where: str) -> None:
        for e in _validator(kind).iter_errors(doc):
            self.errors.append(f"{where}: {kind} schema: {e.message} at /{'/'.join(map(str, e.path))}")

    def load_json(self, path: Path, where: str) -> Any:
        try:
            return json.loads(path.read_bytes())
        except (OSError, ValueError) as e:
            self.errors.append(f"{where}: cannot read JSON {path}: {e}")
            return None

    def blob(self, desc: Any, where: str) -> bytes | None:
        if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
            self.errors.append(f"{where}: bad descriptor {desc!r}")
            return None
        alg, _, hexd = str(desc["digest"]).partition(":")
        p = self.layout / "blobs" / alg / hexd
        if not hexd or not p.is_file():
            self.errors.append(f"{where}: missing blob {desc['digest']}")
            return None
        data: bytes = p.read_bytes()
        try:
            actual = hashlib.new(alg, data).hexdigest()
        except ValueError:
            self.errors.append(f"{where}: unsupported digest algorithm {alg}")
        else:
            if actual != hexd:
                self.errors.append(
                    f"{where}: digest mismatch: descriptor {desc['digest']}, blob {alg}:{actual}")
        if desc.get("size") != len(data):
            self.errors.append(f"{where}: size {desc.get('size')} in descriptor, blob has {len(data)}")
        return data

    def parse(self, data: bytes, where: str) -> Any:
        try:
            return json.loads(data)
        except ValueError as e:
            self.errors.append(f"{where}: invalid JSON: {e}")
            return None

    def walk(self, desc: Any, where: str) -> None:
        data = self.blob(desc, where)
        if data is None:
            return
        mt = desc.get("mediaType")
        key = f"{mt} {desc.get('digest')}"
        if key in self.seen:
            return
        self.seen.add(key)
        if mt in (MT_OCI_INDEX, MT_DOCKER_LIST):
            idx = self.parse(data, where)
            if not isinstance(idx, dict):
                self.errors.append(f"{where}: index is not a JSON object")
                return
            if mt == MT_OCI_INDEX:
                self.schema("index", idx, where)
            if idx.get("mediaType") not in (None, mt):
                self.errors.append(f"{where}: mediaType in body {idx.get('mediaType')} != descriptor {mt}")
            for i, m in enumerate(idx.get("manifests") or []):
                self.walk(m, f"{where}>manifests[{i}]")
        elif mt in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST):
            m = self.parse(data, where)
            if not isinstance(m, dict):
                self.errors.append(f"{where}: manifest is not a JSON object")
                return
            if mt == MT_OCI_MANIFEST:
                self.schema("manifest", m, where)
            if m.get("mediaType") not in ((None, mt) if mt == MT_OCI_MANIFEST else (mt,)):
                self.errors.append(f"{where}: mediaType in body {m.get('mediaType')} != descriptor {mt}")
            layers = m.get("layers")
            if not isinstance(layers, list):
                self.errors.append(f"{where}: manifest has no layers list")
                layers = []
            cdesc = m.get("config")
            c = self.blob(cdesc, f"{where}>config")
            if c is not None and isinstance(cdesc, dict) and cdesc.get("mediaType") in (MT_OCI_CONFIG,
                                                                                       MT_DOCKER_CONFIG):
                cfg = self.parse(c, f"{where}>config")
                if isinstance(cfg, dict):
                    if cdesc.get("mediaType") == MT_OCI_CONFIG:
                        self.schema("config", cfg, f"{where}>config")
                    diff_ids = (cfg.get("rootfs") or {}).get("diff_ids") or []
                    if len(diff_ids) != len(layers):
                        self.errors.append(f"{where}: {len(layers)} layers but {len(diff_ids)} diff_ids")
            for i, layer in enumerate(layers):
                self.blob(layer, f"{where}>layers[{i}]")
        else:
            self.errors.append(f"{where}: unexpected mediaType {mt!r}")

    def run(self) -> list[str]:
        lay = self.load_json(self.layout / "oci-layout", "oci-layout")
        if lay is not None:
            self.schema("layout", lay, "oci-layout")
        idx = self.load_json(self.layout / "index.json", "index.json")
        if isinstance(idx, dict):
            self.schema("index", idx, "index.json")
            for i, d in enumerate(idx.get("manifests") or []):
                self.walk(d, f"index.json>manifests[{i}]")
        elif idx is not None:
            self.errors.append("index.json: not a JSON object")
        return self.errors


def validate_layout(layout: Path) -> None:
    """Validate an OCI image layout: oci-layout, index.json, every nested index, manifest and config
    against the OCI image-spec v1.1.1 JSON schemas (Draft 4), every blob's digest and size, and
    diff_ids count == layers count. Docker v2 manifests / lists are accepted (digest/size only).
    Raises AssertionError listing all problems."""
    errors = _LayoutChecker(Path(layout)).run()
    if errors:
        raise AssertionError(f"invalid OCI layout {layout}:\n  " + "\n  ".join(errors))


# ---------------------------------------------------------------------------------------------------
# 5. thin wrappers around third-party tools
# ---------------------------------------------------------------------------------------------------

def oci_image_tool_validate(layout: Path, tag: str) -> None:
    """``oci-image-tool validate --type image --ref name=TAG LAYOUT``."""
    _run(["oci-image-tool", "validate", "--type", "image", "--ref", f"name={tag}", layout],
         what="oci-image-tool validate")


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> None:
    """``umoci unpack --image LAYOUT:TAG BUNDLE`` (bundle must not exist yet)."""
    _run(["umoci", "unpack", "--image", f"{layout}:{tag}", bundle], what="umoci unpack")


def skopeo_inspect(transport_ref: str, *, args: Sequence[str] = ()) -> dict[str, Any]:
    """``skopeo inspect [args] REF`` parsed as JSON (e.g. ``oci:/path:tag``, ``docker://host/repo:t``)."""
    out = _run(["skopeo", "inspect", *args, transport_ref], what="skopeo inspect").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def skopeo_inspect_raw(transport_ref: str, *, args: Sequence[str] = ()) -> bytes:
    """``skopeo inspect --raw [args] REF``: the manifest (or index) bytes exactly as stored."""
    return _run(["skopeo", "inspect", "--raw", *args, transport_ref], what="skopeo inspect --raw").stdout


# ---------------------------------------------------------------------------------------------------
# 6. binfmt (qemu-user-static) for foreign-arch images
# ---------------------------------------------------------------------------------------------------

def _register_binfmt_from_format(handler: str) -> None:
    """Register a handler from /usr/share/binfmts/<handler> (qemu-user-static's format file) by writing
    to binfmt_misc/register, for hosts where binfmt-support (update-binfmts) is not installed."""
    fmt = Path("/usr/share/binfmts") / handler
    if not fmt.is_file():
        raise AssertionError(f"{fmt} missing: install qemu-user-static")
    fields: dict[str, str] = {}
    for line in fmt.read_text().splitlines():
        k, _, v = line.partition(" ")
        fields[k] = v.strip()
    flags = ("F" if fields.get("fix_binary") == "yes" else "") + \
            ("P" if fields.get("preserve") == "yes" else "") + \
            ("C" if fields.get("credentials") == "yes" else "")
    reg = (f":{handler}:M:{fields.get('offset', '0')}:{fields['magic']}:{fields.get('mask', '')}:"
           f"{fields['interpreter']}:{flags}")
    with contextlib.suppress(FileExistsError):  # registered concurrently
        (BINFMT_DIR / "register").write_text(reg)


def ensure_binfmt(arch: str = "arm64") -> None:
    """Make ``arch`` binaries runnable here via qemu-user-static: mount binfmt_misc if needed, enable
    the qemu handler (update-binfmts, or direct registration from the qemu-user-static format file when
    binfmt-support is absent), and require the handler to be enabled with the F (fix-binary) flag so it
    works inside chroots and containers. No-op for the host arch."""
    if arch == host_arch():
        return
    handler = f"qemu-{QEMU_ARCH.get(arch, arch)}"
    if not os.path.ismount(BINFMT_DIR):
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR], what="mount binfmt_misc")
    hp = BINFMT_DIR / handler
    if not hp.exists():
        with _file_lock(Path(tempfile.gettempdir()) / "ocibuild-test-binfmt.lock"):
            if not hp.exists():
                done = False
                if shutil.which("update-binfmts"):
                    p = subprocess.run(["update-binfmts", "--enable", handler], capture_output=True,
                                       text=True, check=False)
                    done = p.returncode == 0 and hp.exists()
                if not done:
                    _register_binfmt_from_format(handler)
    if not hp.exists():
        raise AssertionError(f"binfmt handler {handler} could not be registered")
    text = hp.read_text()
    if text.splitlines()[0].strip() != "enabled":
        hp.write_text("1")
        text = hp.read_text()
    lines = text.splitlines()
    if lines[0].strip() != "enabled":
        raise AssertionError(f"binfmt handler {handler} is not enabled:\n{text}")
    flags = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("flags:")), "")
    if "F" not in flags:
        raise AssertionError(f"binfmt handler {handler} lacks the F (fix-binary) flag:\n{text}")


# ---------------------------------------------------------------------------------------------------
# 7. run an image with umoci + runc
# ---------------------------------------------------------------------------------------------------

def image_config(layout: Path, tag: str) -> dict[str, Any]:
    """Config JSON of a single-manifest tag (not an index)."""
    desc = _tag_descriptor(layout, tag)
    if desc.get("mediaType") not in (MT_OCI_MANIFEST, MT_DOCKER_MANIFEST):
        raise AssertionError(f"{layout}:{tag} is a {desc.get('mediaType')}, not a single manifest")
    manifest = json.loads(_read_blob(layout, desc["digest"]))
    cfg: dict[str, Any] = json.loads(_read_blob(layout, manifest["config"]["digest"]))
    return cfg


def run_image(layout: Path, tag: str, args: list[str] | None = None, *, arch: str | None = None,
              env: list[str] | None = None, timeout: int = 120,
              host_network: bool = False) -> subprocess.CompletedProcess[str]:
    """Run LAYOUT:TAG with umoci (raw) unpack + runc (no daemon); returns the CompletedProcess (stdout and
    stderr captured as text; returncode is the container's exit code, not checked).

    ``args`` replaces the process args (Entrypoint+Cmd), ``env`` entries (K=V) override/extend the
    image env. With ``arch`` set and the tag pointing at an index, the image is first flattened with
    ``skopeo copy --override-arch``. Foreign-arch images get binfmt set up automatically."""
    layout = Path(layout)
    bdir = Path(tempfile.mkdtemp(prefix="ocibuild-run-"))
    cid = f"ocibuild-test-{os.getpid()}-{uuid.uuid4().hex[:10]}"
    started = False
    try:
        src_layout, src_tag = layout, tag
        if arch is not None and _tag_descriptor(layout, tag).get("mediaType") in (MT_OCI_INDEX,
                                                                                   MT_DOCKER_LIST):
            _run(["skopeo", "copy", "-q", "--override-arch", arch, "--override-os", "linux",
                  f"oci:{layout}:{tag}", f"oci:{bdir / 'flat'}:img"], what="skopeo copy (flatten)")
            src_layout, src_tag = bdir / "flat", "img"
        img_arch = image_config(src_layout, src_tag).get("architecture", "")
        if arch is not None and img_arch != arch:
            raise AssertionError(f"{layout}:{tag}: image architecture {img_arch!r}, wanted {arch!r}")
        if img_arch and img_arch != host_arch():
            ensure_binfmt(img_arch)
        bundle = bdir / "bundle"
        bundle.mkdir()
        # = `umoci unpack` without the mtree manifest (that one is only needed for `umoci repack`);
        # ~35% faster for the Debian base
        _run(["umoci", "raw", "unpack", "--image", f"{src_layout}:{src_tag}", bundle / "rootfs"],
             what="umoci raw unpack")
        _run(["umoci", "raw", "runtime-config", "--image", f"{src_layout}:{src_tag}",
              "--rootfs", bundle / "rootfs", bundle / "config.json"], what="umoci raw runtime-config")
        cfg_path = bundle / "config.json"
        spec = json.loads(cfg_path.read_text())
        proc = spec.setdefault("process", {})
        proc["terminal"] = False  # umoci writes true; runc would then need a tty
        if args is not None:
            proc["args"] = list(args)
        if env:
            cur: list[str] = list(proc.get("env") or [])
            for e in env:
                k = e.split("=", 1)[0]
                cur = [x for x in cur if x.split("=", 1)[0] != k]
                cur.append(e)
            proc["env"] = cur
        if host_network:  # share the host's network namespace (reach servers on 127.0.0.1)
            linux = spec.setdefault("linux", {})
            linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "network"]
        cfg_path.write_text(json.dumps(spec, indent=1))
        if shutil.which("runc") is None:
            raise AssertionError("required tool not found on PATH: runc")
        started = True
        try:
            return subprocess.run(["runc", "run", "--bundle", str(bundle), cid], capture_output=True,
                                  text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"container {layout}:{tag} {args} timed out after {timeout}s") from e
    finally:
        if started:
            subprocess.run(["runc", "delete", "-f", cid], capture_output=True, check=False)
        shutil.rmtree(bdir, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# 8. podman with test-local configuration
# ---------------------------------------------------------------------------------------------------

def podman_env(state: Path) -> dict[str, str]:
    """Write containers.conf / storage.conf (vfs) / registries.conf under ``state`` and return
    os.environ plus CONTAINERS_CONF, CONTAINERS_STORAGE_CONF, CONTAINERS_REGISTRIES_CONF pointing at them.
    All podman state (graphroot, runroot, tmp_dir) lives under ``state``; /etc is untouched."""
    state = Path(state).resolve()
    cfg = state / "cfg"
    cfg.mkdir(parents=True, exist_ok=True)
    (state / "tmp").mkdir(exist_ok=True)
    # VM constraints: no CAP_SYS_RESOURCE (ulimits 1024), no systemd (cgroupfs, file events),
    # crun refuses hybrid cgroups (runc)
    (cfg / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        'netns = "none"\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'events_logfile_path = "{state / "events.log"}"\n'
        'runtime = "runc"\n'
        f'tmp_dir = "{state / "tmp"}"\n')
    (cfg / "storage.conf").write_text(
        "[storage]\n"
        'driver = "vfs"\n'
        f'graphroot = "{state / "storage" / "root"}"\n'
        f'runroot = "{state / "storage" / "run"}"\n')
    regs = "".join(f'[[registry]]\nlocation = "127.0.0.1:{port}"\ninsecure = true\n\n'
                   for port in range(5000, 5011))
    (cfg / "registries.conf").write_text(
        "unqualified-search-registries = []\n"
        'short-name-mode = "disabled"\n\n' + regs)
    env = dict(os.environ)
    env["CONTAINERS_CONF"] = str(cfg / "containers.conf")
    env["CONTAINERS_STORAGE_CONF"] = str(cfg / "storage.conf")
    env["CONTAINERS_REGISTRIES_CONF"] = str(cfg / "registries.conf")
    return env


def podman(env: dict[str, str], *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``podman ARGS`` with the env from :func:`podman_env`; AssertionError (with stderr) on failure."""
    p = _run(["podman", *args], env=env, timeout=timeout, what=f"podman {args[0] if args else ''}")
    return subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(), p.stderr.decode())

"""Base images made by hand, independently of ocibuild: a single-layer OCI layout from any rootfs tar,
busybox-static from Debian, and Debian bookworm minbase + python3 from mmdebstrap.

Built images are cached in :func:`test_cache_dir` (``$OCIBUILD_TEST_CACHE``, default
``/var/cache/ocibuild-test``) and copied into the caller's layout.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import os
import shutil
import tempfile
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from .layout import (
    MT_OCI_CONFIG,
    MT_OCI_LAYER_GZIP,
    MT_OCI_MANIFEST,
    copy_blobs,
    file_sha256,
    json_bytes,
    set_tag,
    write_blob,
)
from .proc import file_lock, run
from .runtime import ensure_binfmt, host_arch

DEBIAN_SUITE = "bookworm"
DEBIAN_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "echo", "env", "id", "uname", "wget", "sleep", "printf", "test",
                   "true", "false")

# bump to invalidate cached base images when the recipe below changes
_CACHE_VERSION = "v2"


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


def _cached_layout(key: str, build: Callable[[Path], None]) -> Path:
    """Return test_cache_dir()/key, building it once (under an fcntl lock, into a temp name that is
    renamed atomically) with ``build(tmp_layout_dir)`` if it does not exist yet."""
    cache = test_cache_dir()
    final = cache / key
    if (final / "index.json").is_file():
        return final
    with file_lock(cache / f"{key}.lock"):
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


def _install_cached(cached: Path, dest: Path, tag: str) -> Path:
    """Copy the single tagged image of a cached layout into dest under ``tag`` (dest may already hold
    other images: blobs are merged and index.json keeps the other tags)."""
    index = json.loads((cached / "index.json").read_text())
    (desc,) = index["manifests"]
    if not (dest / "index.json").is_file():
        shutil.copytree(cached, dest, dirs_exist_ok=True)
        (dest / "index.json").unlink()
    else:
        copy_blobs(cached, dest)
    desc.pop("annotations", None)
    set_tag(dest, desc, tag)
    return dest


# ---------------------------------------------------------------------------------------------------
# hand-written OCI layout from a rootfs tar
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
        lhex = file_sha256(tmp)
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
        # the string keeps the pre-harness spelling: it is part of the config, so of the cached digests
        "history": [{"created": "1970-01-01T00:00:00Z",
                     "created_by": f"tests/tools.py layout_from_rootfs_tar {tar_path.name}"}],
    }
    cdesc = {"mediaType": MT_OCI_CONFIG, **write_blob(layout, json_bytes(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": cdesc,
        "layers": [{"mediaType": MT_OCI_LAYER_GZIP, "digest": f"sha256:{lhex}", "size": lsize}],
    }
    mdesc = {"mediaType": MT_OCI_MANIFEST, **write_blob(layout, json_bytes(manifest))}
    set_tag(layout, mdesc, tag)
    return layout


# ---------------------------------------------------------------------------------------------------
# busybox base image (Debian busybox-static)
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
        run(["apt-get", "download", package], cwd=dest_dir, what="apt-get download")
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
    run(["tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner",
         "-C", rootfs, "-cf", out, "."], what="tar")
    return out


def _build_busybox(layout: Path, arch: str) -> None:
    with tempfile.TemporaryDirectory(prefix="ocibuild-bb-") as td:
        t = Path(td)
        deb = download_deb("busybox-static", arch, t / "dl")
        run(["dpkg-deb", "-x", deb, t / "x"], what="dpkg-deb")
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
# Debian bookworm minbase + python3 (mmdebstrap)
# ---------------------------------------------------------------------------------------------------

def _build_debian_python(layout: Path, arch: str) -> None:
    extra: list[str] = []
    if arch != host_arch():
        ensure_binfmt(arch)
        # mmdebstrap's own emulation check needs the arch-test package; ensure_binfmt checked it already
        extra.append("--skip=check/qemu")
    with tempfile.TemporaryDirectory(prefix="ocibuild-deb-", dir=layout.parent) as td:
        tar = Path(td) / "rootfs.tar"
        run(["mmdebstrap", f"--arch={arch}", "--variant=minbase", "--include=python3,ca-certificates",
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

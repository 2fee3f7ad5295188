"""Debian bases from the real bookworm archive: signed indexes, resolution for amd64 and arm64, lock
files, tampering (file:// mirror copies), and the built images run with runc (arm64 under qemu)."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.runtime import run_image
from harness.validate import validate_layout

from ocibuild.debian import (
    DebianLock,
    DebianSpec,
    LockFile,
    SignatureError,
    UnknownPackage,
    build_base,
    build_layers,
    compare_versions,
    default_mirror,
    platform_for,
    resolve,
)
from ocibuild.debian.mirror import Fetcher
from ocibuild.debian.release import fetch_release
from ocibuild.errors import DigestMismatch, SourceError
from ocibuild.image import Image
from ocibuild.sinks import sink_for
from ocibuild.spec import Digest
from ocibuild.store import ContentStore
from ocibuild.transports import OciLayout

pytestmark = pytest.mark.slow
SUITE = "bookworm"  # explicitly: this module checks bookworm facts (12.x, python3.11, the security archive)
SPEC = DebianSpec(suite=SUITE, packages=("python3", "ca-certificates"))
NOT_WANTED = {"bash", "dash", "coreutils", "dpkg", "perl-base", "tar", "debconf", "util-linux", "sed", "grep"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ContentStore:
    """One content store for the module: indexes and .debs are downloaded once."""
    return ContentStore(tmp_path_factory.mktemp("debian-store"))


@pytest.fixture(scope="module")
def lock_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("debian-lock") / "debian.lock"


@pytest.fixture(scope="module")
def locks(store: ContentStore, lock_path: Path) -> dict[str, DebianLock]:
    return {arch: resolve(SPEC, arch, store, lock=lock_path) for arch in ("amd64", "arm64")}


class _Recorder:
    """Records every path fetched from any mirror."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.paths: list[str] = []
        original = Fetcher.open

        def record(fetcher: Fetcher, path: str):  # type: ignore[no-untyped-def]
            self.paths.append(path)
            return original(fetcher, path)

        monkeypatch.setattr(Fetcher, "open", record)


def test_resolve_python3_for_amd64_and_arm64(locks: dict[str, DebianLock], lock_path: Path) -> None:
    for arch, lock in locks.items():
        names = lock.names
        assert {"python3", "python3.11", "python3.11-minimal", "libpython3.11-stdlib", "libc6", "libssl3",
                "ca-certificates", "openssl", "libsqlite3-0"} <= names, arch
        assert not names & NOT_WANTED, f"{arch}: pulled in {sorted(names & NOT_WANTED)}"
        assert all(p.architecture in (arch, "all") for p in lock.packages)
        assert all(len(p.sha256) == 64 and p.size > 0 and p.filename.startswith("pool/main/") for p in lock.packages)
        assert lock.release.startswith("12.") and lock.codename == "bookworm"
        assert lock.mirror == default_mirror("bookworm")
    on_disk = LockFile.read(lock_path)
    assert on_disk.matches(SPEC) and set(on_disk.archs) == {"amd64", "arm64"}
    assert on_disk.archs["arm64"].package("libc6").filename.endswith("_arm64.deb")  # type: ignore[union-attr]


def test_lock_needs_no_index(locks: dict[str, DebianLock], lock_path: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _Recorder(monkeypatch)
    fresh = ContentStore(tmp_path / "store")
    assert resolve(SPEC, "amd64", fresh, lock=lock_path) == locks["amd64"]
    assert rec.paths == []
    small = DebianSpec(suite=SUITE, packages=("media-types",))
    small_lock = tmp_path / "small.lock"
    resolve(small, "amd64", fresh, lock=small_lock)
    assert any(p.endswith("InRelease") for p in rec.paths)
    rec.paths.clear()
    (image,) = build_base(small, [platform_for("amd64")], fresh, lock_path=small_lock)
    assert rec.paths and all(p.startswith("pool/") for p in rec.paths), rec.paths
    # unchanged lock: nothing is fetched or rebuilt, same image
    rec.paths.clear()
    (again,) = build_base(small, [platform_for("amd64")], fresh, lock_path=small_lock)
    assert rec.paths == [] and again.digest == image.digest
    # update refreshes from the indexes (cached in the store: only InRelease is fetched again)
    assert resolve(small, "amd64", fresh, lock=small_lock, update=True) == LockFile.read(small_lock).archs["amd64"]
    assert [p for p in rec.paths if not p.startswith("pool/")] == ["dists/bookworm/InRelease"]


def test_shell_only_when_asked(store: ContentStore, locks: dict[str, DebianLock]) -> None:
    lock = resolve(DebianSpec(suite=SUITE, packages=("python3", "bash")), "amd64", store)
    assert "bash" in lock.names and "dash" not in lock.names and "coreutils" not in lock.names
    with pytest.raises(UnknownPackage, match="unknown package 'python-three'"):
        resolve(DebianSpec(suite=SUITE, packages=("python-three",)), "amd64", store)


def test_unreachable_mirror_is_a_clear_error(tmp_path: Path) -> None:
    spec = DebianSpec(suite=SUITE, mirror="http://127.0.0.1:9/debian")
    with pytest.raises(SourceError, match=r"cannot reach the Debian mirror http://127\.0\.0\.1:9/debian"):
        resolve(spec, "amd64", ContentStore(tmp_path / "store"))


@pytest.fixture(scope="module")
def file_mirror(tmp_path_factory: pytest.TempPathFactory, store: ContentStore,
                locks: dict[str, DebianLock]) -> Path:
    """A file:// copy of the bookworm amd64 index (InRelease, Release, Release.gpg, Packages.xz) with
    one small package (media-types) in its pool."""
    root = tmp_path_factory.mktemp("mirror")
    upstream = Fetcher(default_mirror("bookworm"))
    dists = root / "dists" / "bookworm"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    for name in ("InRelease", "Release", "Release.gpg"):
        (dists / name).write_bytes(upstream.read(f"dists/bookworm/{name}"))
    release, _ = fetch_release(upstream, "bookworm")
    sha, size = release.files["main/binary-amd64/Packages.xz"]
    digest = upstream.download("dists/bookworm/main/binary-amd64/Packages.xz", store, sha, size)
    shutil.copyfile(store.blob_path(digest), dists / "main" / "binary-amd64" / "Packages.xz")
    media = locks["amd64"].package("media-types")
    assert media is not None
    (root / media.filename).parent.mkdir(parents=True)
    (root / media.filename).write_bytes(upstream.read(media.filename))
    return root


def _copy(mirror: Path, dest: Path) -> Path:
    shutil.copytree(mirror, dest)
    return dest


def test_file_mirror_and_tampered_deb(file_mirror: Path, tmp_path: Path) -> None:
    mirror = _copy(file_mirror, tmp_path / "mirror")
    spec = DebianSpec(suite=SUITE, packages=("media-types",), mirror=mirror.as_uri())
    lock_path = tmp_path / "debian.lock"
    fresh = ContentStore(tmp_path / "store")
    lock = resolve(spec, "amd64", fresh, lock=lock_path)
    assert lock.names == {"media-types"} and lock.mirror == mirror.as_uri()
    deb = mirror / lock.packages[0].filename
    data = bytearray(deb.read_bytes())
    data[-100] ^= 0xFF
    deb.write_bytes(bytes(data))
    tampered = Digest("sha256", hashlib.sha256(data).hexdigest())
    with pytest.raises(DigestMismatch, match="does not match the signed index or lock file"):
        build_base(spec, [platform_for("amd64")], fresh, lock_path=lock_path)
    assert not fresh.has(tampered)
    assert not any((tmp_path / "store" / "tmp").iterdir())
    assert not fresh.has(Digest("sha256", lock.packages[0].sha256))


def test_tampered_inrelease_is_rejected_unless_allow_unsigned(file_mirror: Path, tmp_path: Path) -> None:
    mirror = _copy(file_mirror, tmp_path / "mirror")
    inrelease = mirror / "dists" / "bookworm" / "InRelease"
    inrelease.write_bytes(inrelease.read_bytes().replace(b"Label: Debian", b"Label: Debiam", 1))
    spec = DebianSpec(suite=SUITE, packages=("media-types",), mirror=mirror.as_uri())
    with pytest.raises(SignatureError, match="cannot verify"):
        resolve(spec, "amd64", ContentStore(tmp_path / "s1"))
    unsigned = DebianSpec(suite=SUITE, packages=("media-types",), mirror=mirror.as_uri(), allow_unsigned=True)
    assert resolve(unsigned, "amd64", ContentStore(tmp_path / "s2")).names == {"media-types"}
    # a keyring without the archive keys cannot verify the genuine file either
    other = DebianSpec(suite=SUITE, packages=("media-types",), mirror=file_mirror.as_uri(),
                       keyring=Path("/usr/share/keyrings/debian-archive-removed-keys.gpg"))
    with pytest.raises(SignatureError):
        resolve(other, "amd64", ContentStore(tmp_path / "s3"))


def test_release_gpg_fallback(file_mirror: Path, tmp_path: Path) -> None:
    mirror = _copy(file_mirror, tmp_path / "mirror")
    (mirror / "dists" / "bookworm" / "InRelease").unlink()
    spec = DebianSpec(suite=SUITE, packages=("media-types",), mirror=mirror.as_uri())
    assert resolve(spec, "amd64", ContentStore(tmp_path / "s1")).names == {"media-types"}
    (mirror / "dists" / "bookworm" / "Release.gpg").unlink()
    with pytest.raises(SignatureError, match=r"no Release\.gpg"):
        resolve(spec, "amd64", ContentStore(tmp_path / "s2"))
    # without a signature the Release hashes still guard the index
    packages = mirror / "dists" / "bookworm" / "main" / "binary-amd64" / "Packages.xz"
    packages.write_bytes(packages.read_bytes()[:-10])
    unsigned = DebianSpec(suite=SUITE, packages=("media-types",), mirror=mirror.as_uri(), allow_unsigned=True)
    with pytest.raises(DigestMismatch):
        resolve(unsigned, "amd64", ContentStore(tmp_path / "s3"))


@pytest.fixture(scope="module")
def images(store: ContentStore, lock_path: Path, locks: dict[str, DebianLock]) -> dict[str, Image]:
    built = build_base(SPEC, [platform_for("amd64"), platform_for("arm64")], store, lock_path=lock_path)
    return {"amd64": built[0], "arm64": built[1]}


def _layout(image: Image, store: ContentStore, dest: Path) -> Path:
    sink_for(OciLayout(path=dest, tag="py")).write(image)
    validate_layout(dest)
    return dest


CHECK = ("import os, ssl, urllib.request; ctx = ssl.create_default_context(); ctx.load_verify_locations; "
         "print(ctx.cert_store_stats()['x509_ca'], os.path.getsize('/etc/ssl/certs/ca-certificates.crt'), "
         "os.getuid(), os.path.exists('/bin/sh'), open('/etc/os-release').read().splitlines()[0])")


def test_amd64_base_runs(images: dict[str, Image], store: ContentStore, tmp_path: Path) -> None:
    image = images["amd64"]
    config = image.config.config
    assert config.cmd == ("python3",) and config.user == "65532"
    assert config.env[0] == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert str(image.config.platform) == "linux/amd64"
    layout = _layout(image, store, tmp_path / "layout")
    r = run_image(layout, "py", ["python3", "-c", "import ssl, json, sqlite3; print(ssl.OPENSSL_VERSION)"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OpenSSL 3."), r.stdout
    r = run_image(layout, "py", ["python3", "-c", CHECK])
    assert r.returncode == 0, r.stderr
    certs, bundle_size, uid, has_sh, pretty = r.stdout.split(maxsplit=4)
    assert int(certs) > 100 and int(bundle_size) > 100_000 and uid == "65532" and has_sh == "False"
    assert "Debian GNU/Linux 12 (bookworm)" in pretty
    r = run_image(layout, "py", ["/usr/bin/python3", "-c", "import sys; print(sys.executable, sys.version_info[:2])"])
    assert r.stdout.strip() == "/usr/bin/python3 (3, 11)", r.stdout + r.stderr


def test_unchanged_lock_rebuilds_nothing(images: dict[str, Image], store: ContentStore, lock_path: Path,
                                         locks: dict[str, DebianLock]) -> None:
    layers = build_layers(SPEC, locks["amd64"], store)
    assert all(layer.built.cached for layer in layers)
    assert [layer.group for layer in layers] == ["core", "python", "rest", "config", "home"]
    assert [layer.built.descriptor.digest for layer in layers] == [d.digest for d in images["amd64"].manifest.layers]
    assert {p.name for p in layers[1].packages} >= {"python3", "python3.11", "libpython3.11-stdlib"}
    assert "libc6" in {p.name for p in layers[0].packages}


def test_same_lock_same_image_in_a_new_store(images: dict[str, Image], lock_path: Path, tmp_path: Path) -> None:
    (again,) = build_base(SPEC, [platform_for("amd64")], ContentStore(tmp_path / "store"), lock_path=lock_path)
    assert again.digest == images["amd64"].digest


@pytest.fixture
def arm64_layout(images: dict[str, Image], store: ContentStore, tmp_path: Path) -> Iterator[Path]:
    yield _layout(images["arm64"], store, tmp_path / "layout")


def test_arm64_base_runs_under_qemu(images: dict[str, Image], arm64_layout: Path) -> None:
    assert str(images["arm64"].config.platform) == "linux/arm64/v8"
    r = run_image(arm64_layout, "py", ["python3", "-c", "import ssl, json, sqlite3, platform; "
                                                        "print(ssl.OPENSSL_VERSION, platform.machine())"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OpenSSL 3.") and r.stdout.split()[-1] == "aarch64", r.stdout


def test_security_archive(store: ContentStore, locks: dict[str, DebianLock], tmp_path: Path) -> None:
    spec = DebianSpec(suite=SUITE, packages=("python3", "ca-certificates"), security=True)
    lock_path = tmp_path / "debian.lock"
    lock = resolve(spec, "amd64", store, lock=lock_path)
    assert lock.names == locks["amd64"].names
    from_security = [p for p in lock.packages if p.mirror]
    assert from_security, "bookworm-security has updates for this set"
    assert all(p.mirror.endswith("debian-security") and p.filename.startswith("pool/updates/")
               for p in from_security)
    for p in lock.packages:
        main = locks["amd64"].package(p.name)
        assert main is not None and compare_versions(p.version, main.version) >= 0
    assert LockFile.read(lock_path).archs["amd64"] == lock
    (image,) = build_base(spec, [platform_for("amd64")], store, lock_path=lock_path)
    assert image.config.config.cmd == ("python3",)

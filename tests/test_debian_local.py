"""Debian bases from an offline folder of hand-made .deb files (dpkg-deb): resolution errors with
their chain, lock files, tampered packages, and the generated files of the image."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from test_debian_units import make_deb

from ocibuild.debian import (
    DebianSpec,
    LockFile,
    ResolutionError,
    UnknownPackage,
    build_base,
    platform_for,
    resolve,
)
from ocibuild.errors import DigestMismatch, SourceError
from ocibuild.spec import Digest
from ocibuild.store import ContentStore

AMD64 = platform_for("amd64")


def _blobs(store: ContentStore) -> set[str]:
    return {str(d) for d in store.iter_blobs()}


def _layer_files(store: ContentStore, digest: Digest) -> dict[str, tarfile.TarInfo]:
    with store.open(digest) as f, tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


@pytest.fixture
def deb_dir(tmp_path: Path) -> Path:
    d = tmp_path / "debs"
    d.mkdir()
    make_deb(d, "libc6", "2.36-9", files={"lib/x86_64-linux-gnu/libc.so.6": b"libc",
                                          "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": b"ld"},
             links={"lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
             extra="Multi-Arch: same\n")
    make_deb(d, "python3.11", "3.11.2-6", depends="libc6 (>= 2.34), libpython3.11-stdlib (= 3.11.2-6)",
             files={"usr/bin/python3.11": b"py"})
    make_deb(d, "libpython3.11-stdlib", "3.11.2-6", depends="libc6, libnonexistent (>= 1)",
             files={"usr/lib/python3.11/os.py": b"#"})
    make_deb(d, "python3", "3.11.2-1", depends="python3.11 (>= 3.11.2)", files={})
    make_deb(d, "bash", "5.2", extra="Essential: yes\n", files={"bin/bash": b"sh"})
    make_deb(d, "ca-certificates", "20230311", arch="all", depends="bash, debconf (>= 0.5) | debconf-2.0",
             files={"usr/share/ca-certificates/mozilla/Root_A.crt": b"-----A-----",
                    "usr/share/ca-certificates/mozilla/Root_B.crt": b"-----B-----\n"})
    return d


def test_unsatisfiable_dependency_shows_the_chain(tmp_path: Path, deb_dir: Path) -> None:
    store = ContentStore(tmp_path / "store")
    with pytest.raises(ResolutionError) as info:
        resolve(DebianSpec(packages=("python3",), deb_dir=deb_dir), "amd64", store)
    message = str(info.value)
    assert "python3 -> python3.11 -> libpython3.11-stdlib -> libnonexistent (>= 1)" in message
    assert str(deb_dir) in message


def test_unknown_package_is_a_clear_error(tmp_path: Path, deb_dir: Path) -> None:
    with pytest.raises(UnknownPackage, match=r"unknown package 'nosuchpkg'.*deb folder"):
        resolve(DebianSpec(packages=("nosuchpkg",), deb_dir=deb_dir), "amd64", ContentStore(tmp_path / "s"))
    with pytest.raises(SourceError, match="does not exist"):
        resolve(DebianSpec(deb_dir=tmp_path / "missing"), "amd64", ContentStore(tmp_path / "s"))


def _fix_stdlib(deb_dir: Path) -> None:
    (deb_dir / "libpython3.11-stdlib_3.11.2-6_amd64.deb").unlink()
    make_deb(deb_dir, "libpython3.11-stdlib", "3.11.2-6", depends="libc6",
             files={"usr/lib/python3.11/os.py": b"#"})


def test_deb_dir_image_lock_and_tampering(tmp_path: Path, deb_dir: Path) -> None:
    _fix_stdlib(deb_dir)
    spec = DebianSpec(packages=("python3", "ca-certificates"), deb_dir=deb_dir)
    store = ContentStore(tmp_path / "store")
    lock_path = tmp_path / "debian.lock"
    (image,) = build_base(spec, [AMD64], store, lock_path=lock_path, mtime=1700000000)
    lock = LockFile.read(lock_path).archs["amd64"]
    # Essential bash and the excluded debconf are not pulled in by ca-certificates
    assert lock.names == {"python3", "python3.11", "libpython3.11-stdlib", "libc6", "ca-certificates"}
    assert lock.package("libc6") is not None and lock.package("libc6").filename == "libc6_2.36-9_amd64.deb"  # type: ignore[union-attr]

    config = json.loads(image.config_bytes)
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Cmd"] == ["python3"] and config["config"]["User"] == "65532"
    assert config["created"] == "2023-11-14T22:13:20Z"
    assert len(config["history"]) == len(image.manifest.layers) == 5  # core, python, rest, config, home
    files: dict[str, tarfile.TarInfo] = {}
    for layer in image.manifest.layers:
        for name, info in _layer_files(store, layer.digest).items():
            assert info.mtime == 1700000000 and info.uname == ""
            files[name] = info
    assert "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" in files
    assert files["lib64"].issym() and files["lib64"].linkname == "usr/lib64"
    assert files["bin"].issym() and files["lib"].linkname == "usr/lib"
    assert not any(n.startswith(("bin/", "lib/")) for n in files)
    assert files["tmp"].mode == 0o1777 and files["root"].mode == 0o700
    assert files["home/nonroot"].uid == 65532 and files["home/nonroot"].mode == 0o700
    assert files["etc/passwd"].uid == 0
    assert "var/lib/dpkg/status.d/python3.11" in files
    assert "etc/os-release" in files

    config_layer = image.manifest.layers[3].digest
    with store.open(config_layer) as f, tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:gz") as tar:
        assert tar.extractfile("etc/ssl/certs/ca-certificates.crt").read() == b"-----A-----\n-----B-----\n"  # type: ignore[union-attr]
        assert b"nonroot:x:65532:65532" in tar.extractfile("etc/passwd").read()  # type: ignore[union-attr]
    for layer in image.manifest.layers[:3]:
        with store.open(layer.digest) as f, tarfile.open(fileobj=io.BytesIO(f.read()), mode="r:gz") as tar:
            if "var/lib/dpkg/status.d/libc6" in tar.getnames():
                status = tar.extractfile("var/lib/dpkg/status.d/libc6").read().decode()  # type: ignore[union-attr]
                assert "Package: libc6\nVersion: 2.36-9\n" in status

    # same lock, new store: identical image; a folder without indexes is enough
    store2 = ContentStore(tmp_path / "store2")
    (again,) = build_base(spec, [AMD64], store2, lock_path=lock_path, mtime=1700000000)
    assert again.digest == image.digest

    # a .deb that no longer matches the lock is rejected and nothing of it is stored
    deb = deb_dir / "python3.11_3.11.2-6_amd64.deb"
    deb.unlink()
    make_deb(deb_dir, "python3.11", "3.11.2-6", depends="libc6 (>= 2.34), libpython3.11-stdlib (= 3.11.2-6)",
             files={"usr/bin/python3.11": b"evil"})
    tampered = "sha256:" + hashlib.sha256(deb.read_bytes()).hexdigest()
    store3 = ContentStore(tmp_path / "store3")
    with pytest.raises(DigestMismatch, match="does not match the lock file"):
        build_base(spec, [AMD64], store3, lock_path=lock_path)
    assert tampered not in _blobs(store3)
    assert not any((tmp_path / "store3" / "tmp").iterdir())

    # update re-resolves from the folder and records the new hash
    build_base(spec, [AMD64], store3, lock_path=lock_path, update=True)
    assert LockFile.read(lock_path).archs["amd64"].package("python3.11").sha256 == tampered[7:]  # type: ignore[union-attr]


def test_lock_is_used_without_the_source(tmp_path: Path, deb_dir: Path) -> None:
    _fix_stdlib(deb_dir)
    spec = DebianSpec(packages=("libc6",), deb_dir=deb_dir)
    store = ContentStore(tmp_path / "store")
    lock_path = tmp_path / "debian.lock"
    first = resolve(spec, "amd64", store, lock=lock_path)
    moved = DebianSpec(packages=("libc6",), deb_dir=tmp_path / "gone")  # same inputs, folder gone
    assert resolve(moved, "amd64", store, lock=lock_path) == first
    (image,) = build_base(moved, [AMD64], store, lock_path=lock_path)  # blobs are in the store
    assert image.config.config.cmd is None  # no python3: no Cmd
    with pytest.raises(SourceError, match="does not exist"):
        resolve(moved, "amd64", store, lock=lock_path, update=True)

"""ocibuild.python.target: finding a base image's Python by reading (never running) its layers."""

from __future__ import annotations

import gzip
import io
import platform as host_platform
import shutil
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest
import zstandard
from packaging.tags import Tag

from ocibuild.errors import ConfigError, OcibuildError, SourceError
from ocibuild.image import MemoryImage, store_layer
from ocibuild.python.target import ImageFacts, TargetPython, detect_target, scan_image
from ocibuild.spec import ContainerConfig, Descriptor, Digest, ImageConfig, MediaType, Platform
from ocibuild.store import ContentStore

# --------------------------------------------------------------------------------------------------
# fake base images, built here from tar members
# --------------------------------------------------------------------------------------------------

def f(path: str, data: bytes | str = b"\x7fELF dummy") -> tuple[str, str, bytes | str]:
    return ("file", path, data)


def ln(path: str, target: str) -> tuple[str, str, bytes | str]:
    return ("symlink", path, target)


def d(path: str) -> tuple[str, str, bytes | str]:
    return ("dir", path, b"")


def hl(path: str, target: str) -> tuple[str, str, bytes | str]:
    return ("hardlink", path, target)


def tar_bytes(members: list[tuple[str, str, bytes | str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, path, data in members:
            info = tarfile.TarInfo(path)
            if kind == "file":
                raw = data.encode() if isinstance(data, str) else data
                info.size, info.mode = len(raw), 0o755
                tar.addfile(info, io.BytesIO(raw))
                continue
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            tar.addfile(info)
    return buf.getvalue()


def put_layer(store: ContentStore, members: list[tuple[str, str, bytes | str]],
              compression: str = "gzip") -> tuple[Descriptor, Digest]:
    raw = tar_bytes(members)
    if compression == "gzip":
        data, media = gzip.compress(raw), MediaType.OCI_LAYER_GZIP
    elif compression == "zstd":
        data, media = zstandard.ZstdCompressor().compress(raw), MediaType.OCI_LAYER_ZSTD
    else:
        data, media = raw, MediaType.OCI_LAYER
    with store.writer() as w:
        w.write(data)
        digest = w.commit()
    return Descriptor(media_type=media, digest=digest, size=len(data)), Digest.of(raw)


def make_image(store: ContentStore, layers: list[list[tuple[str, str, bytes | str]]], *,
               platform: str = "linux/amd64", env: tuple[str, ...] = (),
               compressions: list[str] | None = None) -> MemoryImage:
    built = [put_layer(store, m, (compressions or [])[i] if compressions else "gzip") for i, m in enumerate(layers)]
    config = ImageConfig(platform=Platform.parse(platform), config=ContainerConfig(env=env),
                         diff_ids=tuple(diff for _, diff in built))
    return MemoryImage.assemble(config, [store_layer(store, desc, diff) for desc, diff in built])


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "store")


DPKG_STATUS = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.

Package: python3.9-minimal
Status: deinstall ok config-files
Version: 3.9.2-1

Package: python3.11-minimal
Status: install ok installed
Architecture: amd64
Version: 3.11.2-6+deb12u6
Description: Minimal subset of the Python language (version 3.11)

Package: libpython3.11-minimal
Status: install ok installed
Version: 3.11.2-6+deb12u6
"""

GLIBC_BANNER = b"\x00junk\x00GNU C Library (GNU libc) stable release version 2.34.\nmore\x00GLIBC_2.34\x00"


def debian_members() -> list[tuple[str, str, bytes | str]]:
    return [
        ln("bin", "usr/bin"), ln("lib", "usr/lib"),
        d("usr"), d("usr/bin"), d("usr/lib"), d("etc"),
        f("usr/bin/python3.11"), ln("usr/bin/python3", "python3.11"),
        d("usr/lib/python3.11"), f("usr/lib/python3.11/os.py", b"# os"),
        f("usr/lib/x86_64-linux-gnu/libc.so.6", GLIBC_BANNER),
        f("var/lib/dpkg/status", DPKG_STATUS),
        f("usr/lib/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'),
        ln("etc/os-release", "../usr/lib/os-release"),
    ]


def debian(store: ContentStore, **kw: object) -> MemoryImage:
    return make_image(store, [debian_members()], **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# detection
# --------------------------------------------------------------------------------------------------


def test_debian_like_base(store: ContentStore) -> None:
    base = debian(store)
    facts = scan_image(base)
    assert facts.resolve("/bin/python3") == "/usr/bin/python3.11"
    assert facts.dpkg["libc6"] == "2.36-9+deb12u4" and "python3.9-minimal" not in facts.dpkg
    assert facts.os_release["ID"] == "debian"
    assert facts.glibc_from_binary == "2.34"  # read from the banner; dpkg wins below
    target = detect_target(base)
    assert target.to_dict() == {
        "interpreter": "/usr/bin/python3.11", "version": "3.11", "full_version": "3.11.2", "implementation": "cp",
        "platform": "linux/amd64", "libc": "glibc", "libc_version": "2.36",
    }
    tags = target.tags()
    assert tags[0] == Tag("cp311", "cp311", "manylinux_2_36_x86_64")
    assert Tag("cp311", "abi3", "manylinux_2_17_x86_64") in tags
    assert Tag("cp37", "abi3", "linux_x86_64") in tags
    assert Tag("py3", "none", "any") in tags and tags[-1] == Tag("py30", "none", "any")
    assert tags.index(Tag("cp311", "cp311", "linux_x86_64")) < tags.index(Tag("py3", "none", "any"))
    plats = target.manylinux_platform_tags()
    assert plats[:2] == ["manylinux_2_36_x86_64", "manylinux_2_35_x86_64"]
    i = plats.index("manylinux_2_17_x86_64")
    assert plats[i + 1] == "manylinux2014_x86_64"
    assert plats[plats.index("manylinux_2_12_x86_64") + 1] == "manylinux2010_x86_64"
    assert plats[-3:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]
    assert target.uv_python_platform() == "x86_64-manylinux_2_36"


def test_tags_equal_what_packaging_gives_on_this_machine(store: ContentStore) -> None:
    """Described as this host (CPython, glibc), our tag list equals packaging's own for the host."""
    from packaging.tags import sys_tags

    libc, libc_version = host_platform.libc_ver()
    assert libc == "glibc", "the test machine is a glibc Linux (Debian)"
    host = TargetPython(interpreter=sys.executable, version=f"{sys.version_info[0]}.{sys.version_info[1]}",
                        full_version="", implementation="cp", platform=Platform.parse(host_platform.machine()),
                        libc="glibc", libc_version=libc_version)
    assert host.tags() == list(sys_tags())


def test_official_python_like_base(store: ContentStore) -> None:
    slim = [ln("bin", "usr/bin"), f("usr/lib/x86_64-linux-gnu/libc.so.6", GLIBC_BANNER),
            f("var/lib/dpkg/status", DPKG_STATUS.split("\n\n")[0] + "\n")]
    python = [d("usr/local"), d("usr/local/bin"), f("usr/local/bin/python3.12"),
              ln("usr/local/bin/python3", "python3.12"), ln("usr/local/bin/python", "python3"),
              f("usr/local/lib/libpython3.12.so.1.0")]
    env = ("PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
           "PYTHON_VERSION=3.12.1")
    target = detect_target(make_image(store, [slim, python], env=env))
    assert (target.interpreter, target.version, target.full_version) == ("/usr/local/bin/python3.12", "3.12", "3.12.1")
    assert (target.libc, target.libc_version) == ("glibc", "2.36")
    assert target.tags()[0] == Tag("cp312", "cp312", "manylinux_2_36_x86_64")

def test_unversioned_interpreter_takes_the_version_of_its_standard_library(store: ContentStore) -> None:
    """A lone ``/usr/local/bin/python3`` (no ``python3.X`` name, no dpkg record, no PYTHON_VERSION): its
    version is that of ``/usr/local/lib/python3.X``, where CPython finds its own standard library; the
    system's ``/usr/lib/python3.11`` (another prefix) does not count."""
    python = [f("usr/local/bin/python3"), f("usr/local/lib/python3.13/os.py", b"# os"),
              d("usr/local/lib/python3.13/site-packages"), f("usr/local/lib/python3.12/site-packages/x.py")]
    lower = [m for m in debian_members() if "python3" not in m[1] and m[1] != "var/lib/dpkg/status"]
    lower.append(f("var/lib/dpkg/status", DPKG_STATUS.split("\n\n")[0] + "\n"))  # libc6 only
    target = detect_target(make_image(store, [[*lower, f("usr/lib/python3.11/os.py")], python]))
    assert (target.interpreter, target.version, target.full_version) == ("/usr/local/bin/python3", "3.13", "")
    assert target.tags()[0] == Tag("cp313", "cp313", "manylinux_2_36_x86_64")
    two = [*python, f("usr/local/lib/python3.12/os.py")]  # two standard libraries: cannot tell
    with pytest.raises(ConfigError, match=r"cannot tell which Python version /usr/local/bin/python3"):
        detect_target(make_image(store, [lower, two]))
    given = detect_target(make_image(store, [lower, python]), interpreter="/usr/local/bin/python3")
    assert given.version == "3.13"



def test_python_version_env_picks_among_several_interpreters(store: ContentStore) -> None:
    layer = [f("usr/bin/python3.13"), f("usr/local/bin/python3.11"), ln("usr/local/bin/python3", "python3.11"),
             f("var/lib/dpkg/status", DPKG_STATUS)]
    target = detect_target(make_image(store, [layer], env=("PYTHON_VERSION=3.11.9",)))
    assert (target.interpreter, target.full_version) == ("/usr/local/bin/python3.11", "3.11.9")
    # without the env the newest wins
    assert detect_target(make_image(store, [layer])).interpreter == "/usr/bin/python3.13"


def test_same_version_in_two_places_follows_path_order(store: ContentStore) -> None:
    layer = [f("usr/bin/python3.11"), f("usr/local/bin/python3.11"), f("var/lib/dpkg/status", DPKG_STATUS)]
    assert detect_target(make_image(store, [layer])).interpreter == "/usr/local/bin/python3.11"
    image = make_image(store, [layer], env=("PATH=/usr/bin:/usr/local/bin",))
    assert detect_target(image).interpreter == "/usr/bin/python3.11"


def test_alpine_like_musl_base(store: ContentStore) -> None:
    installed = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\n\nC:Q1def=\nP:python3\nV:3.11.8-r0\nA:x86_64\n"
    layer = [d("lib"), f("lib/ld-musl-x86_64.so.1"), ln("lib/libc.musl-x86_64.so.1", "ld-musl-x86_64.so.1"),
             f("lib/apk/db/installed", installed), f("usr/bin/python3.11"), ln("usr/bin/python3", "python3.11"),
             f("etc/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")]
    image = make_image(store, [layer])
    facts = scan_image(image)
    assert facts.has_musl and not facts.has_glibc and facts.apk["musl"] == "1.2.4-r2"
    target = detect_target(image)
    assert (target.libc, target.libc_version, target.full_version) == ("musl", "1.2", "3.11.8")
    assert target.manylinux_platform_tags() == ["musllinux_1_2_x86_64", "musllinux_1_1_x86_64",
                                                "musllinux_1_0_x86_64", "linux_x86_64"]
    assert target.tags()[0] == Tag("cp311", "cp311", "musllinux_1_2_x86_64")
    assert not any("manylinux" in t.platform for t in target.tags())
    assert target.uv_python_platform() == "x86_64-unknown-linux-musl"


def test_musl_loader_without_apk_database_means_musl_1_2(store: ContentStore) -> None:
    layer = [f("lib/ld-musl-aarch64.so.1"), f("usr/bin/python3.12")]
    target = detect_target(make_image(store, [layer], platform="linux/arm64"))
    assert (target.libc, target.libc_version) == ("musl", "1.2")
    assert target.uv_python_platform() == "aarch64-unknown-linux-musl"


def test_whiteout_in_upper_layer_removes_python(store: ContentStore) -> None:
    image = make_image(store, [debian_members(), [d("usr"), d("usr/bin"), f("usr/bin/.wh.python3.11", b"")]])
    facts = scan_image(image)
    assert "/usr/bin/python3.11" not in facts.files and facts.resolve("/usr/bin/python3") is None
    with pytest.raises(ConfigError, match=r"no Python interpreter .*python\.interpreter \(e\.g\. /usr/bin/python3\.X"):
        detect_target(image)


def test_whiteout_of_a_directory_removes_everything_below(store: ContentStore) -> None:
    lower = [*debian_members(), f("usr/local/bin/python3.13"), ln("usr/local/bin/python3", "python3.13")]
    assert detect_target(make_image(store, [lower])).interpreter == "/usr/local/bin/python3.13"
    image = make_image(store, [lower, [f("usr/local/.wh.bin", b"")]])
    assert detect_target(image).interpreter == "/usr/bin/python3.11"
    # a file replacing the directory hides its lower contents too
    image = make_image(store, [lower, [f("usr/local/bin", b"not a dir any more")]])
    assert detect_target(image).interpreter == "/usr/bin/python3.11"


def test_opaque_directory_hides_lower_entries_but_not_its_own_layers(store: ContentStore) -> None:
    lower = [*debian_members(), f("usr/local/bin/python3.13")]
    # new python listed BEFORE the opaque marker: it belongs to the same layer and must survive
    upper = [f("usr/local/bin/python3.12"), f("usr/local/bin/.wh..wh..opq", b""), f("usr/local/bin/tool")]
    facts = scan_image(make_image(store, [lower, upper]))
    assert "/usr/local/bin/python3.13" not in facts.files and "/usr/local/bin/python3.12" in facts.files
    assert detect_target(make_image(store, [lower, upper])).interpreter == "/usr/local/bin/python3.12"
    only_marker = [f("usr/local/bin/.wh..wh..opq", b"")]
    assert detect_target(make_image(store, [lower, only_marker])).interpreter == "/usr/bin/python3.11"


def test_later_layer_redefines_symlink_and_readds_whited_out_file(store: ContentStore) -> None:
    layers = [debian_members(), [f("usr/bin/.wh.python3.11", b""), f("usr/bin/.wh.python3", b"")],
              [f("usr/bin/python3.11"), ln("usr/bin/python3", "/usr/bin/python3.11")]]
    facts = scan_image(make_image(store, layers))
    assert facts.symlinks["/usr/bin/python3"] == "/usr/bin/python3.11"
    assert detect_target(make_image(store, layers)).interpreter == "/usr/bin/python3.11"


@pytest.mark.parametrize("compressions", [["zstd"], ["none"], ["gzip", "zstd", "none"]])
def test_zstd_and_uncompressed_layers(store: ContentStore, compressions: list[str]) -> None:
    members = debian_members()
    layers = [members] if len(compressions) == 1 else [members[:6], members[6:10], members[10:]]
    target = detect_target(make_image(store, layers, compressions=compressions))
    assert (target.interpreter, target.version, target.libc_version) == ("/usr/bin/python3.11", "3.11", "2.36")


def test_names_with_dot_slash_prefix_and_hardlinks(store: ContentStore) -> None:
    layer = [f("./usr/bin/python3.11"), hl("./usr/bin/python3", "./usr/bin/python3.11"),
             f("./var/lib/dpkg/status", DPKG_STATUS), hl("./var/lib/dpkg/status-old", "./var/lib/dpkg/status")]
    target = detect_target(make_image(store, [layer]))
    assert (target.interpreter, target.libc_version) == ("/usr/bin/python3.11", "2.36")


def test_arm64_platform_gives_aarch64_tags(store: ContentStore) -> None:
    target = detect_target(debian(store, platform="linux/arm64"))
    assert str(target.platform) == "linux/arm64/v8"
    assert target.tags()[0] == Tag("cp311", "cp311", "manylinux_2_36_aarch64")
    plats = target.manylinux_platform_tags()
    assert plats[-3:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
    assert not any("x86_64" in p or "manylinux1" in p or "manylinux2010" in p for p in plats)
    assert target.uv_python_platform() == "aarch64-manylinux_2_36"


@pytest.mark.parametrize(("platform", "arch"), [("linux/arm/v7", "armv7l"), ("linux/386", "i686"),
                                                ("linux/ppc64le", "ppc64le"), ("linux/s390x", "s390x"),
                                                ("linux/riscv64", "riscv64")])
def test_other_architectures(platform: str, arch: str) -> None:
    target = _target(platform=platform)
    plats = target.manylinux_platform_tags()
    assert plats[0] == f"manylinux_2_36_{arch}" and plats[-1] == f"linux_{arch}"
    assert f"manylinux2014_{arch}" in plats
    assert (f"manylinux1_{arch}" in plats) == (arch == "i686")


def test_unsupported_platform_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="no Python wheel platform is known for linux/mips64le"):
        _target(platform="linux/mips64le").tags()


def test_overrides_win(store: ContentStore) -> None:
    base = debian(store)
    target = detect_target(base, python_version="3.11.4", libc_version="2.28")
    assert (target.interpreter, target.full_version, target.libc_version) == ("/usr/bin/python3.11", "3.11.4", "2.28")
    target = detect_target(base, interpreter="/usr/bin/python3")
    assert (target.interpreter, target.version) == ("/usr/bin/python3.11", "3.11")  # resolved in the image
    target = detect_target(base, interpreter="/usr/bin/python3", python_version="3.12", libc="musl")
    assert (target.interpreter, target.version, target.libc, target.libc_version) == (
        "/usr/bin/python3.11", "3.12", "musl", "1.2")
    with pytest.raises(ConfigError, match=r"no Python 3\.12 \(it has /usr/bin/python3\.11\)"):
        detect_target(base, python_version="3.12")


def test_all_overrides_need_no_layers(store: ContentStore, tmp_path: Path) -> None:
    base = debian(store)
    empty = ContentStore(tmp_path / "empty")  # the layer blobs are not there: reading them would fail
    base = replace(base, layers=tuple(store_layer(empty, layer.descriptor(), layer.diff_id) for layer in base.layers))
    target = detect_target(base, interpreter="/opt/py/bin/python3", python_version="3.10",
                           libc="glibc", libc_version="2.31")
    assert target.to_dict()["interpreter"] == "/opt/py/bin/python3"
    assert target.uv_python_platform() == "x86_64-manylinux_2_31"
    with pytest.raises(OcibuildError, match="not in the cache"):
        detect_target(base, interpreter="/opt/py/bin/python3", python_version="3.10")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"python_version": "2.7"}, "not a Python 3 version"),
    ({"python_version": "three"}, "not a Python 3 version"),
    ({"interpreter": "python3"}, "must be an absolute path"),
    ({"libc": "bionic"}, "use glibc or musl"),
    ({"libc_version": "2"}, "give it as X.Y"),
])
def test_bad_overrides(store: ContentStore, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        detect_target(debian(store), **kwargs)


def test_no_python_is_a_clear_error(store: ContentStore) -> None:
    image = make_image(store, [[f("usr/lib/x86_64-linux-gnu/libc.so.6", GLIBC_BANNER), f("usr/bin/env"),
                                f("var/lib/dpkg/status", DPKG_STATUS)]])
    with pytest.raises(ConfigError) as info:
        detect_target(image)
    text = str(info.value)
    assert "no Python interpreter" in text and "/opt/*/bin" in text and "python.python_version (X.Y)" in text


def test_python_in_opt_bin(store: ContentStore) -> None:
    layer = [d("opt"), d("opt/conda"), f("opt/conda/bin/python3.10"), ln("opt/conda/bin/python3", "python3.10"),
             f("usr/lib/x86_64-linux-gnu/libc.so.6", GLIBC_BANNER)]
    target = detect_target(make_image(store, [layer]))
    assert (target.interpreter, target.version, target.libc_version) == ("/opt/conda/bin/python3.10", "3.10", "2.34")


def test_symlink_chain_through_alternatives_and_directory_links(store: ContentStore) -> None:
    layer = [ln("opt/python", "/opt/python-3.12.3"), f("opt/python-3.12.3/bin/python3.12"),
             ln("etc/alternatives/python3", "/opt/python/bin/python3.12"),
             ln("usr/local/bin/python3", "/etc/alternatives/python3"), f("lib/libc-2.28.so"),
             ln("lib/libc.so.6", "libc-2.28.so")]
    facts = scan_image(make_image(store, [layer]))
    assert facts.resolve("/usr/local/bin/python3") == "/opt/python-3.12.3/bin/python3.12"
    assert facts.glibc_from_name == "2.28"
    target = detect_target(make_image(store, [layer]))
    assert (target.interpreter, target.version, target.libc_version) == (
        "/opt/python-3.12.3/bin/python3.12", "3.12", "2.28")


def test_symlink_loop_does_not_hang(store: ContentStore) -> None:
    layer = [ln("usr/bin/python3", "python3.11"), ln("usr/bin/python3.11", "python3")]
    facts = scan_image(make_image(store, [layer]))
    assert facts.resolve("/usr/bin/python3") is None


def test_unversioned_python3_takes_version_from_dpkg(store: ContentStore) -> None:
    layer = [f("usr/bin/python3"), f("var/lib/dpkg/status", DPKG_STATUS)]
    target = detect_target(make_image(store, [layer]))
    assert (target.interpreter, target.version, target.full_version) == ("/usr/bin/python3", "3.11", "3.11.2")
    bare = make_image(store, [[f("usr/bin/python3"), f("lib/ld-musl-x86_64.so.1")]])
    with pytest.raises(ConfigError, match=r'set python\.python_version = "X\.Y"'):
        detect_target(bare)
    assert detect_target(bare, python_version="3.9").version == "3.9"


def test_distroless_status_d(store: ContentStore) -> None:
    layer = [f("var/lib/dpkg/status.d/libc6", "Package: libc6\nVersion: 2.36-9+deb12u7\nArchitecture: arm64\n"),
             f("var/lib/dpkg/status.d/libc6.md5sums", "abc  lib/x\n"),
             f("var/lib/dpkg/status.d/python3.11-minimal", "Package: python3.11-minimal\nVersion: 3.11.2-6\n"),
             f("usr/bin/python3.11")]
    target = detect_target(make_image(store, [layer], platform="linux/arm64"))
    assert (target.libc_version, target.full_version) == ("2.36", "3.11.2")


def test_glibc_version_sources(store: ContentStore) -> None:
    banner_only = make_image(store, [[f("usr/bin/python3.12"), f("lib64/libc.so.6", GLIBC_BANNER)]])
    assert detect_target(banner_only).libc_version == "2.34"
    symver_only = make_image(store, [[f("usr/bin/python3.12"), f("lib64/libc.so.6", b"\0GLIBC_2.17\0GLIBC_2.28\0")]])
    assert detect_target(symver_only).libc_version == "2.28"
    unknown = make_image(store, [[f("usr/bin/python3.12"), f("lib64/libc.so.6", b"\x7fELF nothing useful")]])
    with pytest.raises(ConfigError, match=r'set python\.libc_version = "2\.NN"'):
        detect_target(unknown)
    assert detect_target(unknown, libc_version="2.35").libc_version == "2.35"
    no_libc = make_image(store, [[f("usr/bin/python3.12")]])
    with pytest.raises(ConfigError, match=r"python\.libc \(glibc or musl\) and python\.libc_version \(X\.Y\)"):
        detect_target(no_libc)


def test_banner_split_across_read_chunks(store: ContentStore) -> None:
    blob = b"\0" * ((1 << 20) - 20) + GLIBC_BANNER  # the banner straddles the 1 MiB read boundary
    image = make_image(store, [[f("usr/bin/python3.12"), f("usr/lib/libc.so.6", blob)]])
    assert scan_image(image).glibc_from_binary == "2.34"


@pytest.mark.parametrize("blob", [b"\x1f\x8b\x08\x00garbage-gzip", b"\x28\xb5\x2f\xfdgarbage-zstd",
                                  b"not a tar at all" * 64])
def test_corrupt_layer_is_a_source_error(store: ContentStore, blob: bytes) -> None:
    image = debian(store)
    digest = store.put_bytes(blob)
    bad = Descriptor(media_type=MediaType.OCI_LAYER_GZIP, digest=digest, size=len(blob))
    image = replace(image, layers=(*image.layers, store_layer(store, bad, digest)))
    with pytest.raises(SourceError, match=r"base layer 2 .* the base image is corrupt"):
        scan_image(image)


# --------------------------------------------------------------------------------------------------
# uv's --python-platform, checked against the real uv
# --------------------------------------------------------------------------------------------------


def _target(*, platform: str = "linux/amd64", libc: str = "glibc", libc_version: str = "2.36") -> TargetPython:
    return TargetPython(interpreter="/usr/bin/python3.11", version="3.11", full_version="", implementation="cp",
                        platform=Platform.parse(platform), libc=libc, libc_version=libc_version)


UV_CASES = [
    (_target(), "x86_64-manylinux_2_36"),
    (_target(platform="linux/arm64"), "aarch64-manylinux_2_36"),
    (_target(libc_version="2.41"), "x86_64-manylinux_2_40"),
    (_target(libc_version="2.30"), "x86_64-manylinux_2_28"),
    (_target(libc_version="2.17"), "x86_64-manylinux_2_17"),
    (_target(libc_version="2.27"), "x86_64-manylinux_2_17"),
    (_target(platform="linux/s390x", libc_version="2.31"), "s390x-manylinux_2_31"),
    (_target(platform="linux/ppc64le"), "ppc64le-manylinux_2_36"),
    (_target(platform="linux/riscv64", libc_version="2.39"), "riscv64-unknown-linux"),
    (_target(libc="musl", libc_version="1.2"), "x86_64-unknown-linux-musl"),
    (_target(platform="linux/arm64", libc="musl", libc_version="1.2"), "aarch64-unknown-linux-musl"),
]


@pytest.mark.parametrize(("target", "expected"), UV_CASES, ids=[e for _, e in UV_CASES])
def test_uv_python_platform_values(target: TargetPython, expected: str) -> None:
    assert target.uv_python_platform() == expected


@pytest.mark.parametrize("target", [
    _target(libc_version="2.12"),
    _target(platform="linux/arm/v7"),
    _target(platform="linux/386"),
    _target(platform="linux/riscv64", libc_version="2.36"),
    _target(libc="musl", libc_version="1.1"),
    _target(platform="linux/s390x", libc="musl", libc_version="1.2"),
], ids=["old-glibc", "armv7", "i686", "riscv64-old", "musl-1.1", "s390x-musl"])
def test_uv_python_platform_unsupported_is_a_clear_error(target: TargetPython) -> None:
    with pytest.raises(ConfigError, match=r"uv cannot resolve for .*platform tags: .*linux_"):
        target.uv_python_platform()


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    try:
        import uv  # type: ignore[import-not-found,unused-ignore]

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        raise AssertionError("uv is not installed: it is a dependency of ocibuild (pip install -e .)") from None


def test_uv_accepts_every_value(tmp_path: Path) -> None:
    """Every value we can produce is accepted by the real ``uv pip compile`` (resolving ``six`` on PyPI)."""
    uv = _uv()
    requirements = tmp_path / "requirements.in"
    requirements.write_text("six\n")
    values = sorted({expected for _, expected in UV_CASES}
                    | {_target(libc_version=f"2.{m}").uv_python_platform() for m in range(17, 45)}
                    | {_target(platform="linux/aarch64", libc_version=f"2.{m}").uv_python_platform()
                       for m in range(17, 45)})
    # cheap offline check of every value first (clap rejects unknown values before any network use)
    for value in values:
        proc = subprocess.run([uv, "pip", "compile", "--offline", "--python-platform", value, str(tmp_path / "x")],
                              capture_output=True, text=True, timeout=60, check=False)
        assert "invalid value" not in proc.stderr, (value, proc.stderr)
    # and a real resolution for the common ones
    for value in ["x86_64-manylinux_2_36", "aarch64-manylinux_2_36", "x86_64-unknown-linux-musl"]:
        proc = subprocess.run([uv, "pip", "compile", "--no-header", "--cache-dir", str(tmp_path / "uv-cache"),
                               "--python-platform", value, "--python-version", "3.11", str(requirements)],
                              capture_output=True, text=True, timeout=180, check=False)
        assert proc.returncode == 0, (value, proc.stderr)
        assert "six==" in proc.stdout


# --------------------------------------------------------------------------------------------------
# a real Debian base (mmdebstrap-built, cached)
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_real_debian_base(debian_python_layout: Path, tmp_path: Path) -> None:
    from ocibuild.sources import resolve_base
    from ocibuild.transports import OciLayout

    store = ContentStore(tmp_path / "store")
    base = resolve_base(OciLayout(path=debian_python_layout, tag="bookworm-py"), store)
    facts = scan_image(base)
    assert isinstance(facts, ImageFacts)
    assert facts.os_release.get("VERSION_CODENAME") == "bookworm"
    assert facts.glibc_from_binary == "2.36"  # the banner inside the real libc.so.6 agrees with dpkg
    target = detect_target(base)
    assert (target.interpreter, target.version, target.libc, target.libc_version) == (
        "/usr/bin/python3.11", "3.11", "glibc", "2.36")
    assert target.full_version.startswith("3.11.")
    assert target.tags()[0] == Tag("cp311", "cp311", "manylinux_2_36_x86_64")
    assert target.uv_python_platform() == "x86_64-manylinux_2_36"


"""Debian building blocks without network: version order (checked against dpkg), relationship
parsing, the resolver on hand-made indexes, lock files, apt source parsing, and .deb unpacking of
packages made with dpkg-deb."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ocibuild.debian import (
    DebianSpec,
    DebVersion,
    LockedPackage,
    LockFile,
    PackageIndex,
    PackageInfo,
    ResolutionError,
    Resolver,
    UnknownPackage,
    compare_versions,
    debian_arch,
    host_mirror,
    parse_relations,
    platform_for,
    satisfies,
)
from ocibuild.debian.deb import control_fields, data_entries, merge_usr_path, read_members
from ocibuild.debian.lock import DebianLock, inputs_fingerprint, updated
from ocibuild.debian.rootfs import ca_bundle, slim_filter
from ocibuild.errors import ConfigError, SourceError
from ocibuild.layers.tarwriter import TarEntry
from ocibuild.spec import Platform

# (a, b, expected sign of compare(a, b))
VERSIONS = [
    ("1.0", "1.0", 0),
    ("1.0", "1.1", -1),
    ("1.2.10", "1.2.9", 1),
    ("1.00", "1.0", 0),
    ("01", "1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0~~a", "1.0~~", 1),
    ("1.0", "1.0a", -1),
    ("1.0a", "1.0+", -1),  # letters sort before non-letters
    ("1.0+", "1.0.", -1),
    ("1.0-1", "1.0-2", -1),
    ("1.0-1", "1.0-1+b1", -1),
    ("1.0-1", "1.0", 1),
    ("1.0-0", "1.0", 0),
    ("1:0.1", "9.9", 1),
    ("0:1.0", "1.0", 0),
    ("2:1.0", "1:9.0", 1),
    ("1:1.2.13.dfsg-1", "1:1.2.13.dfsg-1", 0),
    ("2.36-9+deb12u14", "2.36-9+deb12u9", 1),
    ("3.0.20-1~deb12u2", "3.0.20-1", -1),
    ("3.11.2-6+deb12u8", "3.11.2-6", 1),
    ("20230311+deb12u1", "20230311", 1),
    ("1.0-1~bpo12+1", "1.0-1", -1),
    ("1.2-3-4", "1.2-3-5", -1),  # the revision is after the last hyphen
    ("7.6p2-4", "7.6-0", 1),
    ("1:1.18", "1.19", 1),  # the epoch wins over everything after it
    ("9a", "10", -1),
    ("1.0.0", "1.0", 1),
    ("1.0-a", "1.0-1", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), VERSIONS)
def test_version_order(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_version_order_agrees_with_dpkg() -> None:
    assert shutil.which("dpkg"), "dpkg is required (tests never skip)"
    for a, b, expected in VERSIONS:
        op = {-1: "lt", 0: "eq", 1: "gt"}[expected]
        rc = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode
        assert rc == 0, f"dpkg disagrees: {a} {op} {b}"


def test_version_parts_and_sorting() -> None:
    v = DebVersion.parse("1:2.3~rc1-4+b1")
    assert (v.epoch, v.upstream, v.revision) == (1, "2.3~rc1", "4+b1")
    assert str(v) == "1:2.3~rc1-4+b1"
    assert sorted(["1.0", "1.0~rc1", "1:0.5", "1.0-1", "0.9"], key=DebVersion.parse) == [
        "0.9", "1.0~rc1", "1.0", "1.0-1", "1:0.5"]
    with pytest.raises(ValueError):
        DebVersion.parse("x:1.0")
    with pytest.raises(ValueError):
        DebVersion.parse("abc")


@pytest.mark.parametrize(("version", "op", "wanted", "ok"), [
    ("2.36-9", ">=", "2.34", True), ("2.36-9", "<<", "2.36", False), ("2.36-9", "<=", "2.36-9", True),
    ("3.11.2-1+b1", "=", "3.11.2-1+b1", True), ("3.11.2-1", ">>", "3.11.2-1~", True),
    ("1.0", "<", "1.0", True), ("1.0", ">", "1.0", True),  # obsolete spellings of <= and >=
])
def test_satisfies(version: str, op: str, wanted: str, ok: bool) -> None:
    assert satisfies(version, op, wanted) is ok


def test_parse_relations() -> None:
    rels = parse_relations("libc6 (>= 2.34), python3:any (>= 3.11~) | python3-minimal, "
                           "libfoo [amd64 arm64] <!nocheck>, libbar (<< 2)[!i386],\n libbaz (>2)")
    assert [[str(r) for r in alts] for alts in rels] == [
        ["libc6 (>= 2.34)"], ["python3:any (>= 3.11~)", "python3-minimal"], ["libfoo"], ["libbar (<< 2)"],
        ["libbaz (>= 2)"]]
    assert rels[1][0].qualifier == "any"
    assert rels[2][0].applies_to("amd64") and not rels[2][0].applies_to("armhf")
    assert not rels[3][0].applies_to("i386") and rels[3][0].applies_to("amd64")
    assert parse_relations("") == ()
    with pytest.raises(SourceError, match="cannot parse"):
        parse_relations("libc6 (>= )")


def _pkg(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> PackageInfo:
    data = {"Package": name, "Version": version, "Architecture": arch,
            **{k.replace("_", "-"): v for k, v in fields.items()}}
    return PackageInfo.from_fields(data, filename=f"pool/{name}_{version}_{arch}.deb", sha256="0" * 64, size=1)


def _resolve(packages: list[PackageInfo], *wanted: str, arch: str = "amd64", exclude: tuple[str, ...] = ()
             ) -> dict[str, str]:
    return {p.name: p.version for p in Resolver(PackageIndex(arch, packages), exclude=exclude).resolve(wanted)}


def test_resolver_versions_alternatives_and_virtuals() -> None:
    index = [
        _pkg("app", Depends="libold (>= 2) | libnew, mail-transport-agent, libc6 (>= 2.30)",
             Pre_Depends="libz"),
        _pkg("libold", "1.5"),  # too old: the alternative is used
        _pkg("libnew", "3.0", Depends="libc6"),
        _pkg("postfix", "3.7", Provides="mail-transport-agent"),
        _pkg("exim4", "4.96", Provides="mail-transport-agent"),
        _pkg("libc6", "2.29"), _pkg("libc6", "2.36-9"),  # the newest fitting version wins
        _pkg("libz", "1:1.2.13", arch="all"),
        _pkg("other-arch", arch="arm64"),
    ]
    assert _resolve(index, "app") == {"app": "1.0", "libnew": "3.0", "exim4": "4.96", "libc6": "2.36-9",
                                      "libz": "1:1.2.13"}
    assert _resolve(index, "app", "postfix")["postfix"] == "3.7"  # a requested provider satisfies the virtual
    assert "exim4" not in _resolve(index, "postfix", "app")
    with pytest.raises(UnknownPackage, match="other-arch"):
        _resolve(index, "other-arch")  # only amd64 + all packages are candidates


def test_resolver_versioned_provides_and_qualifiers() -> None:
    index = [
        _pkg("tool", Depends="python3:any (>= 3.11), libx:native, python3-supported-max (>= 3.11)"),
        _pkg("python3", "3.11.2-1", Provides="python3-supported-max (= 3.11)", Multi_Arch="allowed"),
        _pkg("libx"),
    ]
    assert set(_resolve(index, "tool")) == {"tool", "python3", "libx"}
    index[1] = _pkg("python3", "3.11.2-1", Provides="python3-supported-max")  # unversioned: no match for >=
    with pytest.raises(ResolutionError, match="python3-supported-max"):
        _resolve(index, "tool")


def test_resolver_skips_essential_and_excluded_unless_asked() -> None:
    index = [
        _pkg("python3", Pre_Depends="python3-minimal", Depends="dpkg (>= 1.13), tzdata"),
        _pkg("python3-minimal", Depends="coreutils | busybox"),
        _pkg("tzdata", arch="all", Depends="debconf (>= 0.5) | debconf-2.0"),
        _pkg("dpkg", "1.21.22", Essential="yes", Depends="tar"), _pkg("tar", Essential="yes"),
        _pkg("coreutils", Essential="yes"), _pkg("busybox"),
        _pkg("debconf", arch="all", Pre_Depends="perl-base"), _pkg("perl-base", Essential="yes"),
    ]
    assert set(_resolve(index, "python3", exclude=("debconf", "debconf-2.0"))) == {
        "python3", "python3-minimal", "tzdata"}
    assert set(_resolve(index, "python3", "dpkg", exclude=("debconf", "debconf-2.0"))) == {
        "python3", "python3-minimal", "tzdata", "dpkg"}  # tar: still an Essential dependency, skipped
    assert "debconf" in _resolve(index, "python3")  # nothing excluded
    assert "perl-base" not in _resolve(index, "python3")


def test_resolver_backtracks_to_the_next_alternative() -> None:
    index = [
        _pkg("app", Depends="liba | libb"),
        _pkg("liba", Depends="libmissing"),
        _pkg("libb"),
    ]
    assert set(_resolve(index, "app")) == {"app", "libb"}


def test_resolver_unsatisfiable_chain_and_unknown_package() -> None:
    index = [
        _pkg("python3", Depends="python3.11"),
        _pkg("python3.11", Depends="libpython3.11-stdlib"),
        _pkg("libpython3.11-stdlib", Depends="libc6 (>= 2.34), libnonexistent (>= 1)"),
        _pkg("libc6", "2.36"),
    ]
    with pytest.raises(ResolutionError) as info:
        _resolve(index, "python3")
    assert "python3 -> python3.11 -> libpython3.11-stdlib -> libnonexistent (>= 1)" in str(info.value)
    assert "no such package" in str(info.value)
    with pytest.raises(UnknownPackage, match="unknown package 'pyhton3'"):
        _resolve(index, "pyhton3")
    with pytest.raises(ResolutionError, match=r"only 2\.36"):
        _resolve(index, "libc6=2.40")


def test_platform_names() -> None:
    assert str(platform_for("amd64")) == "linux/amd64"
    assert str(platform_for("arm64")) == "linux/arm64/v8"
    assert str(platform_for("armhf")) == "linux/arm/v7"
    assert str(platform_for("ppc64el")) == "linux/ppc64le"
    assert str(platform_for("i386")) == "linux/386"
    assert str(platform_for("s390x")) == "linux/s390x"
    for arch in ("amd64", "arm64", "armhf", "ppc64el", "i386", "s390x"):
        assert debian_arch(platform_for(arch)) == arch
    assert debian_arch(Platform.parse("linux/arm64")) == "arm64"
    assert debian_arch(Platform.parse("linux/x86_64")) == "amd64"


def test_lock_file_round_trip(tmp_path: Path) -> None:
    spec = DebianSpec(suite="bookworm", packages=("python3", "ca-certificates"))
    pkgs = (LockedPackage(name="libc6", version="2.36-9+deb12u14", architecture="amd64",
                          filename="pool/main/g/glibc/libc6_2.36-9+deb12u14_amd64.deb", sha256="a" * 64, size=12),
            LockedPackage(name="ca-certificates", version='2023"x', architecture="all", filename="pool/c.deb",
                          sha256="b" * 64, size=3))
    amd = DebianLock(arch="amd64", suite="bookworm", mirror="http://m/debian", packages=pkgs, release="12.15",
                     codename="bookworm", inputs=inputs_fingerprint(spec))
    arm = DebianLock(arch="arm64", suite="bookworm", mirror="http://m/debian", packages=pkgs[1:], release="12.15",
                     codename="bookworm", inputs=inputs_fingerprint(spec))
    lock = updated(updated(None, spec, amd), spec, arm)
    path = tmp_path / "debian.lock"
    assert lock.write(path)
    assert not lock.write(path)  # unchanged: not rewritten
    back = LockFile.read(path)
    assert back.matches(spec)
    assert set(back.archs) == {"amd64", "arm64"}
    assert {p.name: p for p in back.archs["amd64"].packages} == {p.name: p for p in pkgs}
    assert back.archs["arm64"].release == "12.15"
    assert not back.matches(DebianSpec(suite="bookworm", packages=("python3",)))
    # other inputs: the old architectures are dropped
    assert set(updated(back, DebianSpec(suite="bookworm", packages=("python3",)), amd).archs) == {"amd64"}
    path.write_text("version = 1\nsuite = \n")
    with pytest.raises(ConfigError, match="cannot read lock file"):
        LockFile.read(path)


def test_host_mirror_from_apt_sources(tmp_path: Path) -> None:
    d = tmp_path / "sources.list.d"
    d.mkdir()
    (d / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n"
        "Types: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    assert host_mirror("bookworm", sources=tmp_path / "none", sources_dir=d) == "http://mirror.example/debian"
    assert host_mirror("bookworm-security", sources=tmp_path / "none", sources_dir=d) == (
        "http://mirror.example/debian-security")
    assert host_mirror("trixie-security", sources=tmp_path / "none", sources_dir=d) is None
    (d / "debian.sources").unlink()
    (tmp_path / "sources.list").write_text(
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://old.example/debian bullseye main\n"
        "deb http://other.example/debian bookworm main\n")
    assert host_mirror("bookworm", sources=tmp_path / "sources.list", sources_dir=d) == "http://other.example/debian"
    assert host_mirror("trixie", sources=tmp_path / "sources.list", sources_dir=d) == "http://old.example/debian"
    assert host_mirror("bookworm", sources=tmp_path / "none", sources_dir=tmp_path / "none") is None


def make_deb(folder: Path, name: str, version: str = "1.0", *, arch: str = "amd64", depends: str = "",
             files: dict[str, bytes] | None = None, links: dict[str, str] | None = None, compression: str = "xz",
             extra: str = "") -> Path:
    """A tiny real .deb built with dpkg-deb."""
    assert shutil.which("dpkg-deb"), "dpkg-deb is required (tests never skip)"
    root = folder / f"build-{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    control = f"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t <t@example.org>\n"
    if depends:
        control += f"Depends: {depends}\n"
    control += extra + f"Description: test package {name}\n test package\n"
    (root / "DEBIAN" / "control").write_text(control)
    for path, data in (files or {}).items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    for path, target in (links or {}).items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.symlink_to(target)
    out = folder / f"{name}_{version}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(out)],
                   check=True, capture_output=True)
    shutil.rmtree(root)
    return out


@pytest.mark.parametrize("compression", ["xz", "zstd", "gzip"])
def test_deb_unpacking(tmp_path: Path, compression: str) -> None:
    root = tmp_path / "src"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!tool\n")
    (root / "bin" / "tool").chmod(0o4755)
    (root / "lib" / "x86_64-linux-gnu").mkdir(parents=True)
    (root / "lib" / "x86_64-linux-gnu" / "libz.so.1.2").write_bytes(b"ELF")
    (root / "lib" / "x86_64-linux-gnu" / "libz.so.1").symlink_to("libz.so.1.2")
    (root / "lib" / "x86_64-linux-gnu" / "libup.so").symlink_to("../../usr/lib/real.so")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "real.so").write_bytes(b"REAL")
    (root / "usr" / "lib" / "hard.so").hardlink_to(root / "usr" / "lib" / "real.so")
    (root / "usr" / "share" / "man" / "man1").mkdir(parents=True)
    (root / "usr" / "share" / "man" / "man1" / "tool.1.gz").write_bytes(b"man")
    (root / "usr" / "share" / "doc" / "t").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / "t" / "copyright").write_bytes(b"(c)")
    (root / "usr" / "share" / "doc" / "t" / "changelog.gz").write_bytes(b"log")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text("Package: t\nVersion: 1:2.0-1\nArchitecture: amd64\n"
                                             "Maintainer: t <t@example.org>\nDescription: t\n two lines\n")
    (root / "DEBIAN" / "postinst").write_text("#!/bin/sh\nexit 1\n")
    (root / "DEBIAN" / "postinst").chmod(0o755)
    deb = tmp_path / "t.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(deb)],
                   check=True, capture_output=True)
    members = read_members(deb)
    assert control_fields(members)["Version"] == "1:2.0-1"
    assert control_fields(members)["Description"] == "t\n two lines"
    entries = {e.path: e for e in data_entries(members, keep=slim_filter)}
    assert "bin/tool" not in entries and entries["usr/bin/tool"].mode == 0o4755
    assert entries["usr/bin/tool"].data == b"#!tool\n"
    assert entries["usr/lib/x86_64-linux-gnu/libz.so.1"].linkname == "libz.so.1.2"
    # a relative link that moved with merged /usr still reaches the same file
    assert entries["usr/lib/x86_64-linux-gnu/libup.so"].linkname == "../real.so"
    assert entries["usr/lib/hard.so"].kind == "file" and entries["usr/lib/hard.so"].data == b"REAL"
    assert "usr/share/man/man1/tool.1.gz" not in entries
    assert "usr/share/doc/t/copyright" in entries and "usr/share/doc/t/changelog.gz" not in entries
    unmerged = {e.path for e in data_entries(members, merged_usr=False)}
    assert "bin/tool" in unmerged and "usr/share/man/man1/tool.1.gz" in unmerged
    assert merge_usr_path("lib64/ld-linux-x86-64.so.2") == "usr/lib64/ld-linux-x86-64.so.2"
    assert merge_usr_path("libexec/x") == "libexec/x"


def test_merged_usr_links_shipped_by_a_package_stay_in_place(tmp_path: Path) -> None:
    """trixie's base-files ships ``bin -> usr/bin`` and friends: moving them under /usr would make
    ``usr/bin -> bin``, a loop that leaves the image unable to start anything."""
    deb = make_deb(tmp_path, "base-files", "13.8", files={"usr/bin/true": b"ELF"},
                   links={"bin": "usr/bin", "lib64": "usr/lib64", "sbin": "/usr/sbin"})
    entries = {e.path: e for e in data_entries(read_members(deb))}
    assert entries["bin"].kind == "symlink" and entries["bin"].linkname == "usr/bin"
    assert entries["lib64"].linkname == "usr/lib64" and entries["sbin"].linkname == "/usr/sbin"
    assert "usr/bin" not in entries or entries["usr/bin"].kind == "dir"
    assert "usr/lib64" not in entries and entries["usr/bin/true"].data == b"ELF"


def test_ca_bundle_like_update_ca_certificates() -> None:
    entries = [TarEntry.file("usr/share/ca-certificates/mozilla/B_(x),y.crt", b"B"),
               TarEntry.file("usr/share/ca-certificates/mozilla/A.crt", b"A\n"),
               TarEntry.file("usr/share/ca-certificates/other.txt", b"no")]
    out = {e.path: e for e in ca_bundle(entries)}
    assert out["etc/ssl/certs/ca-certificates.crt"].data == b"A\nB\n"
    assert out["etc/ssl/certs/B_=x=_y.pem"].linkname == "/usr/share/ca-certificates/mozilla/B_(x),y.crt"
    assert ca_bundle([]) == []


def test_release_parsing_and_expiry() -> None:
    from ocibuild.debian.release import Release, _expired

    text = ("Origin: Debian\nSuite: oldstable-security\nCodename: bookworm-security\nVersion: 12\n"
            "Valid-Until: Sat, 28 Nov 2020 00:53:02 UTC\nArchitectures: amd64 arm64\nComponents: main\nSHA256:\n"
            " " + "a" * 64 + "  123 main/binary-amd64/Packages.xz\n " + "B" * 64 + " 9 main/binary-amd64/Packages\n")
    release = Release.parse(text, signed=True)
    assert release.codename == "bookworm-security" and release.architectures == ("amd64", "arm64")
    assert release.files["main/binary-amd64/Packages.xz"] == ("a" * 64, 123)
    assert release.files["main/binary-amd64/Packages"] == ("b" * 64, 9)
    assert _expired(release.valid_until)
    assert not _expired("Fri, 01 Jan 2100 00:00:00 UTC")

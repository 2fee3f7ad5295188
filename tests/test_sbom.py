"""SBOMs of real builds (ocibuild.attest): SPDX 2.3 checked by spdx-tools' parser and validator,
CycloneDX 1.6 by cyclonedx-python-lib's strict JSON schema validator; the SBOM lists exactly the
distributions whose ``*.dist-info`` are in the image (found here by walking the layer tars of the
written layout), every ``.deb`` of a Debian-package base's lock, model files by sha256, PEP 770 SBOMs
merged; two builds in fresh stores give the same bytes."""

from __future__ import annotations

import base64
import email.parser
import hashlib
import json
import posixpath
import re
import stat
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from harness.layout import image_layers
from packageurl import PackageURL
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
from test_debian_units import make_deb

import ocibuild
from ocibuild import attest
from ocibuild.attest.licenses import DeclaredLicense, declared_license, spdx_expression
from ocibuild.debian import DebianSpec, LockFile
from ocibuild.transports import DebianBase

EPOCH = 1700000000
CDX_SBOM = {
    "bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
    "metadata": {"component": {"type": "library", "name": "bundler", "version": "1.0"}},
    "components": [
        {"bom-ref": "libfoo", "type": "library", "name": "libfoo", "version": "1.2.3",
         "purl": "pkg:generic/libfoo@1.2.3", "licenses": [{"license": {"id": "Zlib"}}],
         "hashes": [{"alg": "SHA-256", "content": "ab" * 32}, {"alg": "SHA-1", "content": "not-hex"}],
         "components": [{"bom-ref": "libfoo-inner", "type": "library", "name": "libinner", "version": "0.1"}]},
    ],
}
SPDX_SBOM = {
    "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": "bundler",
    "packages": [
        {"SPDXID": "SPDXRef-bundler", "name": "bundler", "versionInfo": "1.0", "downloadLocation": "NOASSERTION"},
        {"SPDXID": "SPDXRef-libbar", "name": "libbar", "versionInfo": "2.0", "downloadLocation": "NOASSERTION",
         "licenseDeclared": "Apache-2.0", "checksums": [{"algorithm": "SHA1", "checksumValue": "cd" * 20}],
         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                           "referenceLocator": "pkg:generic/libbar@2.0"}]},
    ],
    "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                       "relatedSpdxElement": "SPDXRef-bundler"}],
}


# --------------------------------------------------------------------------------------------------
# inputs made here: wheels (with license fields and PEP 770 SBOMs), a project, a folder of .deb files
# --------------------------------------------------------------------------------------------------


def make_wheel(folder: Path, name: str, version: str, *, metadata: str | bytes = "",
               extra: dict[str, bytes] | None = None) -> Path:
    """A pure wheel with a correct RECORD; ``metadata`` lines go into METADATA, ``extra`` files into
    the wheel (e.g. ``<name>-<version>.dist-info/sboms/x.cdx.json``)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": b"X = 1\n",
             f"{info}/METADATA": f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n".encode()
                                 + (metadata if isinstance(metadata, bytes) else metadata.encode())
                                 + b"\n\nA description.\n",
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
             **(extra or {})}
    record = "".join(f"{k},sha256={base64.urlsafe_b64encode(hashlib.sha256(v).digest()).rstrip(b'=').decode()},"
                     f"{len(v)}\n" for k, v in files.items()) + f"{info}/RECORD,,\n"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, data in [*files.items(), (f"{info}/RECORD", record.encode())]:
            zi = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(zi, data)
    return path


def wheelhouse(folder: Path) -> Path:
    make_wheel(folder, "bundler", "1.0", metadata="License-Expression: mit or apache-2.0", extra={
        "bundler-1.0.dist-info/sboms/bundled.cdx.json": json.dumps(CDX_SBOM).encode(),
        "bundler-1.0.dist-info/sboms/more.spdx.json": json.dumps(SPDX_SBOM).encode(),
        "bundler-1.0.dist-info/sboms/broken.cdx.json": b"{not json",
    })
    make_wheel(folder, "free_text", "0.3", metadata="License: Copyright (c) Somebody.\n"
                                                      "        All rights reserved.")
    # hostile: an SBOM with a lone surrogate and the same bom-ref twice
    dup = b'{"bomFormat": "CycloneDX", "components": [{"bom-ref": "x", "name": "lib\\ud800one"}, {"bom-ref": "x", ' \
          b'"name": "two"}]}'
    make_wheel(folder, "odd", "1.0", metadata="License: Café licence",
               extra={"odd-1.0.dist-info/sboms/dup.cdx.json": dup})
    make_wheel(folder, "classified", "2.1", metadata="Classifier: License :: OSI Approved :: MIT License\n"
                                                       "Classifier: Programming Language :: Python")
    return folder


def python_project(folder: Path, wheels: Path, *, base: Path) -> ocibuild.BuildPlan:
    """A project of three local wheels and six from PyPI on the Debian bookworm python3 layout."""
    folder.mkdir(parents=True)
    (folder / "main.py").write_text("import six, bundler\nprint(six.PY3)\n")
    (folder / "requirements.txt").write_text("bundler==1.0\nfree-text==0.3\nclassified==2.1\nodd==1.0\nsix==1.17.0\n")
    return ocibuild.BuildPlan(
        project_dir=folder, base=ocibuild.parse_location(f"oci:{base}:bookworm-py"),
        python=ocibuild.PythonSpec(requirements=folder / "requirements.txt", find_links=(str(wheels),),
                                   bytecode=False),
        layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),), source_date_epoch=EPOCH)


def deb_folder(folder: Path) -> Path:
    """Hand-made .deb files: a C library (with the loader), a library with an epoch in its version, and
    a Python package whose dist-info the base then holds."""
    folder.mkdir(parents=True)
    make_deb(folder, "libc6", "2.36-9+deb12u10", files={"lib/x86_64-linux-gnu/libc.so.6": b"libc",
                                                        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": b"ld"},
             links={"lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"})
    make_deb(folder, "zlib1g", "1:1.2.13.dfsg-1", depends="libc6 (>= 2.14)",
             files={"usr/lib/x86_64-linux-gnu/libz.so.1": b"z"})
    make_deb(folder, "python3-foo", "2.0-1", arch="all", depends="zlib1g", files={
        "usr/lib/python3/dist-packages/foo/__init__.py": b"",
        "usr/lib/python3/dist-packages/foo-2.0.dist-info/METADATA":
            b"Metadata-Version: 2.1\nName: foo\nVersion: 2.0\nLicense: BSD-3-Clause\n",
        "usr/lib/python3/dist-packages/bar-0.1.dist-info/METADATA":  # not UTF-8: the base is not trusted
            b"Metadata-Version: 2.1\nName: bar\nVersion: 0.1\nLicense: Caf\xe9 licence\n"})
    return folder


def debian_plan(project: Path, debs: Path, lock: Path, **extra: Any) -> ocibuild.BuildPlan:
    project.mkdir(parents=True, exist_ok=True)
    (project / "app.sh").write_text("echo hi\n")
    spec = DebianSpec(suite="bookworm", packages=("python3-foo",), deb_dir=debs, bytecode=False)
    return ocibuild.BuildPlan(project_dir=project, base=DebianBase(spec=spec, lock=lock, architectures=("amd64",)),
                              platforms=(ocibuild.Platform.parse("linux/amd64"),),
                              layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),), source_date_epoch=EPOCH,
                              **extra)


# --------------------------------------------------------------------------------------------------
# checks that do not use ocibuild: the validators and a walk of the written layout
# --------------------------------------------------------------------------------------------------


def check_spdx(payload: bytes, tmp: Path) -> dict[str, Any]:
    path = tmp / "sbom.spdx.json"
    path.write_bytes(payload)
    problems = validate_full_spdx_document(parse_file(str(path)))
    assert problems == [], [p.validation_message for p in problems]
    doc: dict[str, Any] = json.loads(payload)
    return doc


def check_cyclonedx(payload: bytes) -> dict[str, Any]:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(payload.decode())
    assert error is None, error
    doc: dict[str, Any] = json.loads(payload)
    return doc


def dist_infos(layout: Path, tag: str) -> dict[str, tuple[str, str]]:
    """``{dist-info folder: (Name, Version)}`` of the merged filesystem of the image, from its layer tars
    (whiteouts applied)."""
    files: dict[str, bytes] = {}
    for _, blob in image_layers(layout, tag):
        with tarfile.open(blob, "r:*") as tar:
            for member in tar:
                path = "/" + posixpath.normpath(member.name).lstrip("/")
                parent, name = posixpath.split(path)
                if name.startswith(".wh."):
                    gone = parent if name == ".wh..wh..opq" else posixpath.join(parent, name[4:])
                    files = {p: d for p, d in files.items() if p != gone and not p.startswith(gone + "/")}
                    continue
                if member.isfile() and name == "METADATA" and parent.endswith(".dist-info"):
                    files[path] = tar.extractfile(member).read()  # type: ignore[union-attr]
    out = {}
    for path, data in files.items():
        headers = email.parser.BytesHeaderParser().parsebytes(data)
        out[posixpath.dirname(path)] = (str(headers["Name"]), str(headers["Version"]))
    return out


def spdx_packages(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["SPDXID"]: p for p in doc["packages"]}


def purl_of(pkg: dict[str, Any]) -> str:
    return next((r["referenceLocator"] for r in pkg.get("externalRefs", []) if r["referenceType"] == "purl"), "")


def relations(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------------
# licenses (table-driven)
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("MIT", "MIT"),
    ("mit or apache-2.0", "MIT OR Apache-2.0"),
    ("(MIT OR Apache-2.0) AND BSD-3-Clause", "(MIT OR Apache-2.0) AND BSD-3-Clause"),
    ("GPL-2.0-or-later WITH Classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0"),
    ("LGPL-2.1+", "LGPL-2.1+"),
    ("BSD", None),
    ("Apache 2.0", None),
    ("MIT AND", None),
    ("(MIT", None),
    ("MIT WITH MIT", None),
    ("LicenseRef-mine", None),
    ("", None),
])
def test_spdx_expression(text: str, expected: str | None) -> None:
    assert spdx_expression(text) == expected


@pytest.mark.parametrize(("fields", "expected"), [
    ({"License-Expression": ["apache-2.0"], "License": ["MIT"]}, DeclaredLicense(value="Apache-2.0", spdx=True)),
    ({"License-Expression": ["not valid"], "License": ["MIT"]}, DeclaredLicense(value="MIT", spdx=True)),
    ({"License": ["UNKNOWN"], "Classifier": ["License :: OSI Approved :: MIT License"]},
     DeclaredLicense(value="MIT", spdx=True)),
    ({"License": ["BSD"], "Classifier": ["License :: OSI Approved :: ISC License (ISCL)",
                                         "License :: OSI Approved :: MIT License"]},
     DeclaredLicense(value="ISC OR MIT", spdx=True)),
    ({"License": ["Copyright me"], "Classifier": ["License :: OSI Approved :: Apache Software License"]},
     DeclaredLicense(value="Copyright me", spdx=False)),
    ({"Classifier": ["License :: OSI Approved :: BSD License", "License :: OSI Approved"]},
     DeclaredLicense(value="BSD License", spdx=False)),
    ({"Classifier": ["Programming Language :: Python"]}, None),
    ({}, None),
])
def test_declared_license(fields: dict[str, list[str]], expected: DeclaredLicense | None) -> None:
    assert declared_license(fields) == expected


def test_purls_match_packageurl_python() -> None:
    from ocibuild.attest.inventory import purl

    for kind, namespace, name, version, qualifiers in [
        ("deb", "debian", "login", "1:4.13+dfsg1-1+deb12u2", {"arch": "amd64"}),
        ("deb", "debian", "openssl", "3.0.20-1~deb12u2", {"arch": "amd64"}),
        ("pypi", "", "zope-interface", "7.0+local.1", {}),
        ("oci", "", "app", "sha256:" + "0" * 64, {"arch": "arm64"}),
    ]:
        expected = PackageURL(type=kind, namespace=namespace or None, name=name, version=version,
                              qualifiers=qualifiers or None).to_string()
        assert purl(kind, name, version, namespace=namespace, qualifiers=qualifiers) == expected


# --------------------------------------------------------------------------------------------------
# real builds
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def python_build(tmp_path_factory: pytest.TempPathFactory, debian_python_layout: Path
                 ) -> tuple[ocibuild.BuildResult, Path, Path]:
    """The python project built and written to an OCI layout: (result, layout, wheelhouse)."""
    tmp = tmp_path_factory.mktemp("sbom-python")
    wheels = wheelhouse(tmp / "wheels")
    plan = python_project(tmp / "app", wheels, base=debian_python_layout)
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp / "store"))
    ocibuild.publish(result, [f"oci:{tmp / 'layout'}:v1"])
    return result, tmp / "layout", wheels


def test_spdx_lists_exactly_the_image_and_validates(tmp_path: Path,
                                                     python_build: tuple[ocibuild.BuildResult, Path, Path]) -> None:
    result, layout, wheels = python_build
    (doc_obj,) = attest.documents(result, kind="spdx", provenance=False)
    assert doc_obj.artifact_type == doc_obj.media_type == "application/spdx+json"
    assert doc_obj.subject.digest == result.image.digest
    doc = check_spdx(doc_obj.payload, tmp_path)
    packages = spdx_packages(doc)
    assert doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z"
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-image") in relations(doc)
    image = packages["SPDXRef-image"]
    assert image["checksums"] == [{"algorithm": "SHA256", "checksumValue": result.image.digest.hex}]
    assert packages["SPDXRef-base"]["checksums"][0]["checksumValue"] == result.base.digest.hex

    # exactly the distributions whose dist-info the image holds, with versions and purls
    found = dist_infos(layout, "v1")
    assert {n.lower() for n, _ in found.values()} >= {"bundler", "free_text", "classified", "six"}
    pypi = [p for p in doc["packages"] if purl_of(p).startswith("pkg:pypi/") and p["SPDXID"].startswith(
        "SPDXRef-Package-pypi-")]
    assert sorted((p["name"], p["versionInfo"]) for p in pypi) == sorted(found.values())
    for p in pypi:
        name = re.sub(r"[-_.]+", "-", p["name"]).lower()
        assert purl_of(p) == f"pkg:pypi/{name}@{p['versionInfo']}"
        assert (p["SPDXID"], "CONTAINED_BY", "SPDXRef-image") in relations(doc)
    by_name = {p["name"]: p for p in pypi}
    # the wheels of the build: sha256 of the wheel file, its name, and the app depends on them
    for wheel in wheels.glob("*.whl"):
        dist = wheel.name.split("-")[0]
        pkg = by_name[dist]
        assert pkg["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256(wheel)}]
        assert pkg["packageFileName"] == wheel.name and pkg["downloadLocation"] == "NOASSERTION"
        assert ("SPDXRef-app", "DEPENDS_ON", pkg["SPDXID"]) in relations(doc)
    assert by_name["six"]["downloadLocation"].startswith("https://files.pythonhosted.org/")
    # licenses: an expression normalised, a classifier mapped, free text kept as a LicenseRef
    assert by_name["bundler"]["licenseDeclared"] == "MIT OR Apache-2.0"
    assert by_name["classified"]["licenseDeclared"] == "MIT"
    assert by_name["six"]["licenseDeclared"] == "MIT"
    ref = by_name["free_text"]["licenseDeclared"]
    assert ref.startswith("LicenseRef-ocibuild-")
    extracted = {x["licenseId"]: x["extractedText"] for x in doc["hasExtractedLicensingInfos"]}
    assert "Copyright (c) Somebody." in extracted[ref]

    # the base's dpkg packages (from /var/lib/dpkg/status) with arch purls
    debs = {p["name"]: p for p in doc["packages"] if purl_of(p).startswith("pkg:deb/debian/")}
    assert purl_of(debs["python3.11"]).startswith("pkg:deb/debian/python3.11@3.11.") and "?arch=amd64" in \
        purl_of(debs["python3.11"])
    assert len(debs) > 50

    # PEP 770: the bundled components are packages CONTAINED_BY the wheel's package; the described one is not
    bundler = by_name["bundler"]["SPDXID"]
    merged = {p["name"]: p for p in doc["packages"] if (p["SPDXID"], "CONTAINED_BY", bundler) in relations(doc)}
    assert set(merged) == {"libfoo", "libinner", "libbar"}
    assert merged["libfoo"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]
    assert merged["libfoo"]["licenseDeclared"] == "Zlib" and purl_of(merged["libfoo"]) == "pkg:generic/libfoo@1.2.3"
    assert merged["libbar"]["licenseDeclared"] == "Apache-2.0"
    assert merged["libbar"]["checksums"] == [{"algorithm": "SHA1", "checksumValue": "cd" * 20}]
    assert "broken.cdx.json" in by_name["bundler"]["comment"]
    # a lone surrogate became U+FFFD, duplicate bom-refs two packages: the document stays valid
    assert extracted[by_name["odd"]["licenseDeclared"]] == "Café licence"
    odd = {p["name"] for p in doc["packages"] if (p["SPDXID"], "CONTAINED_BY", by_name["odd"]["SPDXID"])
           in relations(doc)}
    assert odd == {"lib\ufffdone", "two"}


def test_cyclonedx_validates_and_matches(python_build: tuple[ocibuild.BuildResult, Path, Path]) -> None:
    result, layout, wheels = python_build
    (doc_obj,) = attest.documents(result, kind="cyclonedx", provenance=False)
    assert doc_obj.media_type == "application/vnd.cyclonedx+json"
    bom = check_cyclonedx(doc_obj.payload)
    assert re.fullmatch(r"urn:uuid:[0-9a-f-]{36}", bom["serialNumber"])
    assert bom["metadata"]["timestamp"] == "2023-11-14T22:13:20Z"
    assert bom["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": result.image.digest.hex}]
    pypi = {c["name"]: c for c in bom["components"] if c.get("purl", "").startswith("pkg:pypi/")}
    assert sorted((c["name"], c["version"]) for c in pypi.values()) == sorted(dist_infos(layout, "v1").values())
    bundler = pypi["bundler"]
    assert bundler["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert {c["name"] for c in bundler["components"]} == {"libfoo", "libinner", "libbar"}
    assert pypi["free_text"]["licenses"][0]["license"]["name"].startswith("Copyright (c) Somebody.")
    wheel = wheels / "bundler-1.0-py3-none-any.whl"
    assert bundler["hashes"] == [{"alg": "SHA-256", "content": sha256(wheel)}]
    assert bundler["externalReferences"] == [{"type": "distribution", "url": wheel.absolute().as_uri(),
                                              "hashes": [{"alg": "SHA-256", "content": sha256(wheel)}]}]
    deps = {d["ref"]: set(d["dependsOn"]) for d in bom["dependencies"]}
    assert {c["bom-ref"] for c in pypi.values()} <= deps["image"] and bundler["bom-ref"] in deps["app"]


def test_two_builds_in_fresh_stores_give_the_same_sbom(tmp_path: Path,
                                                       python_build: tuple[ocibuild.BuildResult, Path, Path]) -> None:
    first = python_build[0]
    plan = first.plan  # the same project folder and wheelhouse, a fresh store
    again = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store"))
    assert again.digest == first.digest
    for kind in ("spdx", "cyclonedx"):
        one = [d.payload for d in attest.documents(first, kind=kind)]
        two = [d.payload for d in attest.documents(again, kind=kind)]
        assert one == two and len(one) == 2


def test_an_sbom_is_remembered_per_image_and_inputs(tmp_path: Path,
                                                   python_build: tuple[ocibuild.BuildResult, Path, Path]) -> None:
    """An unchanged image of a batch or a rebuild: its SBOM comes from the store (no layer walk); other
    inputs (here: where the wheels came from) give another SBOM, not the remembered one."""
    from dataclasses import replace

    first = python_build[0]
    again = ocibuild.build(first.plan, store=ocibuild.ContentStore(tmp_path / "store"))
    (made,) = attest.documents(again, kind="spdx", provenance=False)
    records = sorted((tmp_path / "store" / "selectors").glob("sbom-doc-1-*.json"))
    assert len(records) == 1
    walked: list[str] = []
    real = attest.document.inventory

    def counting(result: ocibuild.BuildResult, image: object = None) -> object:
        walked.append(str(image))
        return real(result, image)  # type: ignore[arg-type]

    attest.document.inventory = counting  # type: ignore[assignment]
    try:
        (remembered,) = attest.documents(again, kind="spdx", provenance=False)
        assert remembered.payload == made.payload and not walked  # from the store, not walked again
        # the same image from wheels found elsewhere: its own SBOM (the wheels' URLs differ)
        platform = again.platforms[0]
        assert platform.inputs is not None and platform.inputs.wheels
        moved = tuple(replace(w, url="https://mirror.example/" + w.filename) for w in platform.inputs.wheels)
        other = replace(again, platforms=(replace(platform, inputs=replace(platform.inputs, wheels=moved)),))
        (elsewhere,) = attest.documents(other, kind="spdx", provenance=False)
        assert walked and elsewhere.payload != made.payload
    finally:
        attest.document.inventory = real  # type: ignore[assignment]
    # a damaged record is not trusted: the SBOM is made again, the same bytes
    records[0].write_text('"sha256:' + "0" * 64 + '"')
    (rebuilt,) = attest.documents(again, kind="spdx", provenance=False)
    assert rebuilt.payload == made.payload


def test_debian_package_base_lists_every_locked_deb(tmp_path: Path) -> None:
    debs = deb_folder(tmp_path / "debs")
    lock_path = tmp_path / "debian.lock"
    weights = tmp_path / "app" / "weights"
    weights.mkdir(parents=True)
    (weights / "model.bin").write_bytes(b"\x00" * 4096 + b"weights")
    (weights / "config.json").write_text('{"layers": 2}\n')
    plan = debian_plan(tmp_path / "app", debs, lock_path,
                       models=(ocibuild.ModelSpec(name="weights", src=Path("weights")),), embed_models=True)
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store"))
    lock = LockFile.read(lock_path).archs["amd64"]
    assert lock.names == {"libc6", "zlib1g", "python3-foo"}

    spdx = check_spdx(spdx_payload := attest.spdx_document(attest.inventory(result), created_epoch=EPOCH), tmp_path)
    bom = check_cyclonedx(attest.cyclonedx_document(attest.inventory(result), created_epoch=EPOCH))
    debs_in = {p["name"]: p for p in spdx["packages"] if purl_of(p).startswith("pkg:deb/")}
    assert set(debs_in) == lock.names
    for p in lock.packages:
        pkg = debs_in[p.name]
        assert pkg["versionInfo"] == p.version
        assert purl_of(pkg) == PackageURL(type="deb", namespace="debian", name=p.name, version=p.version,
                                          qualifiers={"arch": p.architecture}).to_string()
        assert pkg["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256(debs / p.filename)}]
    assert purl_of(debs_in["zlib1g"]) == "pkg:deb/debian/zlib1g@1:1.2.13.dfsg-1?arch=amd64"
    assert purl_of(debs_in["python3-foo"]).endswith("?arch=all")
    # the dist-info a .deb brought is listed as well, as the base's
    foo = next(p for p in spdx["packages"] if p["name"] == "foo")
    assert foo["versionInfo"] == "2.0" and foo["licenseDeclared"] == "BSD-3-Clause"
    assert "from the base image" in foo["sourceInfo"]
    bar = next(p for p in spdx["packages"] if p["name"] == "bar")
    assert {x["licenseId"]: x["extractedText"] for x in spdx["hasExtractedLicensingInfos"]}[
        bar["licenseDeclared"]] == "Caf\ufffd licence"
    assert spdx_packages(spdx)["SPDXRef-base"]["checksums"][0]["checksumValue"] == result.base.digest.hex
    # embedded model files by path and sha256
    files = {p["name"]: p["checksums"][0]["checksumValue"] for p in spdx["packages"]
             if p.get("primaryPackagePurpose") == "FILE"}
    assert files == {f"/mnt/models/weights/models/{f.name}": sha256(f) for f in weights.iterdir()}
    cdx_debs = {c["name"]: c for c in bom["components"] if c.get("purl", "").startswith("pkg:deb/")}
    assert set(cdx_debs) == lock.names
    assert cdx_debs["libc6"]["externalReferences"][0]["url"] == (debs / "libc6_2.36-9+deb12u10_amd64.deb").as_uri()
    model = next(c for c in bom["components"] if c["type"] == "machine-learning-model")
    assert {c["name"] for c in model["components"]} == set(files)

    # the same build in a fresh store (the lock read back): the same SBOM
    again = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store2"))
    assert attest.spdx_document(attest.inventory(again), created_epoch=EPOCH) == spdx_payload


def test_referenced_model_files_and_scratch_base(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "weights").mkdir(parents=True)
    (app / "weights" / "model.safetensors").write_bytes(b"w" * 2048)
    (app / "main.py").write_text("print(1)\n")
    plan = ocibuild.BuildPlan(project_dir=app, layers=(ocibuild.LayerSpec(src=Path("."), dest="/app"),),
                              models=(ocibuild.ModelSpec(name="weights", src=Path("weights")),),
                              source_date_epoch=EPOCH)
    result = ocibuild.build(plan, store=ocibuild.ContentStore(tmp_path / "store"))
    inv = attest.inventory(result)
    assert inv.base is None and inv.packages == () and inv.app is not None
    assert inv.app.sha256 == result.layers[-1].layer.diff_id.hex  # the code layer's diff_id
    spdx = check_spdx(attest.spdx_document(inv, created_epoch=EPOCH), tmp_path)
    packages = spdx_packages(spdx)
    assert "SPDXRef-base" not in packages
    model = packages["SPDXRef-model-weights"]
    assert model["checksums"][0]["checksumValue"] == result.models[0].image.digest.hex
    assert ("SPDXRef-image", "DEPENDS_ON", "SPDXRef-model-weights") in relations(spdx)
    files = [p for p in spdx["packages"] if p.get("primaryPackagePurpose") == "FILE"]
    assert [(p["name"], p["checksums"][0]["checksumValue"]) for p in files] == [
        ("/mnt/models/weights/models/model.safetensors", hashlib.sha256(b"w" * 2048).hexdigest())]
    check_cyclonedx(attest.cyclonedx_document(inv, created_epoch=EPOCH))


def test_bad_sbom_kind_is_one_clear_error(python_build: tuple[ocibuild.BuildResult, Path, Path]) -> None:
    with pytest.raises(ocibuild.ConfigError, match="SBOM format 'xml' is not one of spdx, cyclonedx, none"):
        attest.documents(python_build[0], kind="xml")


def test_public_names_are_documented() -> None:
    import inspect

    from test_public_api import _alias_docs

    aliases = _alias_docs()
    for name in attest.__all__:
        obj = getattr(attest, name)
        doc = aliases.get(name, "") if isinstance(obj, str | tuple) else inspect.getdoc(obj) or ""
        assert doc.strip() and not doc.startswith(f"{name}("), f"ocibuild.attest.{name} has no docstring"

"""Documents attached to images as OCI 1.1 referrers (issue 14, part 3), never inside the image index.

Against the real CNCF distribution 2.8 (``docker-registry``, no referrers API: the ``sha256-<hex>``
fallback tag), OCI layouts and OCI archives, read back by independent clients (skopeo, oras-py,
umoci, oci-image-tool, plain HTTP) and by ``ocibuild sbom`` / ``ocibuild provenance``. A registry that
HAS the referrers API is an in-process fake (``harness.hostile``): distribution 2.8 cannot be one.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import oras.oci
import oras.provider
import pytest
import requests
from harness.hostile import HostileRegistry, RegistryHandler, endless_json, tiny_image
from harness.proc import run, skopeo_inspect, skopeo_inspect_raw
from harness.registry import Registry
from harness.validate import oci_image_tool_validate

from ocibuild.errors import InvalidValue, OutputError, RegistryError
from ocibuild.referrers import (
    CYCLONEDX_JSON,
    EMPTY,
    IN_TOTO_JSON,
    SPDX_JSON,
    Attachment,
    artifact_manifest,
    attach,
    attach_to_layout,
    fallback_tag,
    layout_additions,
    list_attached,
    resolve_subjects,
)
from ocibuild.registry import RegistryClient, Repository
from ocibuild.sinks.archive import write_oci_archive
from ocibuild.sources import resolve_base
from ocibuild.spec import Descriptor, Digest, MediaType, Platform, Reference
from ocibuild.store import ContentStore
from ocibuild.transports import OciLayout

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
NO_EVIDENCE = ("--sbom", "none")  # these tests attach their own documents
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def spdx(name: str) -> bytes:
    return json.dumps({"spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT", "name": name,
                       "dataLicense": "CC0-1.0", "packages": []}, sort_keys=True, indent=1).encode() + b"\n"


def statement(name: str) -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1", "predicateType": "https://slsa.dev/provenance/v1",
                       "subject": [{"name": name}]}, sort_keys=True).encode() + b"\n"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One content store for this module's builds (hello is built once, then cached)."""
    return tmp_path_factory.mktemp("referrers-cache")


def ocibuild(*args: str | Path, cache: Path, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """``python -m ocibuild ARGS`` in ``cwd`` (not the checkout), output as bytes (documents are compared exactly)."""
    env = {**os.environ, "OCIBUILD_CACHE": str(cache), "SOURCE_DATE_EPOCH": "1700000000"}
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, env=env,
                          cwd=cwd, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed:\n{proc.stderr.decode()}")
    return proc


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The one line a failing command prints (no traceback)."""
    assert proc.returncode == 1, proc
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocibuild: error: "), lines
    return lines[0]


def push_hello(reg: Registry, repo: str, cache: Path, cwd: Path) -> Descriptor:
    """``examples/hello`` on scratch pushed by ocibuild to ``repo:v1``; its manifest's descriptor."""
    digest = ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"docker://{reg.host}/{repo}:v1",
                      cache=cache, cwd=cwd).stdout.decode().strip()
    raw = requests.get(f"{reg.url}/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST}, timeout=30).content
    assert sha256(raw) == digest
    return Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.parse(digest), size=len(raw))


def fallback_index(reg: Registry, repo: str, subject: Descriptor) -> dict[str, Any]:
    """The fallback tag's index, as skopeo reads it."""
    raw = skopeo_inspect_raw(f"docker://{reg.host}/{repo}:{fallback_tag(subject.digest)}", "--tls-verify=false")
    doc: dict[str, Any] = json.loads(raw)
    return doc


def manifest_puts(reg: Registry, repo: str, since: int) -> list[str]:
    """The references manifests were PUT under since the mark."""
    return [r["route"].rsplit("/", 1)[1] for r in reg.requests_since(since)
            if r["method"] == "PUT" and r["route"].startswith(f"/v2/{repo}/manifests/")]


# ---------------------------------------------------------------------------------------------------
# the artifact manifest
# ---------------------------------------------------------------------------------------------------

SUBJECT = Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.of(b"an image manifest"), size=17,
                     annotations={"org.opencontainers.image.ref.name": "v1"},
                     platform=Platform.parse("linux/amd64"))


def test_artifact_manifest_is_spec_shaped_and_reproducible() -> None:
    payload = spdx("app")
    attachment = Attachment.of(SPDX_JSON, payload, created=1700000000)
    raw, desc = artifact_manifest(SUBJECT, attachment)
    assert raw == artifact_manifest(SUBJECT, Attachment.of(SPDX_JSON, payload, created=1700000000))[0]
    assert json.loads(raw) == {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SPDX_JSON,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                   "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
        "layers": [{"mediaType": SPDX_JSON, "digest": sha256(payload), "size": len(payload)}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": str(SUBJECT.digest), "size": 17},  # no platform, no tag
        "annotations": {"org.opencontainers.image.created": "2023-11-14T22:13:20Z"},
    }
    assert raw == json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()  # canonical
    assert desc.to_dict() == {"mediaType": OCI_MANIFEST, "digest": sha256(raw), "size": len(raw),
                              "artifactType": SPDX_JSON, "annotations": attachment.annotations}
    assert str(desc.digest) == "sha256:b1593f18d457eb9c788444f1045cbec0792e06967d254633b1a74a5cd9a36440"  # golden
    assert str(EMPTY.digest) == sha256(b"{}")
    assert fallback_tag(SUBJECT.digest) == "sha256-" + SUBJECT.digest.hex
    assert Attachment.of(IN_TOTO_JSON, b"{}").annotations == {}  # no clock unless SOURCE_DATE_EPOCH is passed


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"artifact_type": "spdx"}, "artifact_type 'spdx' is not a media type"),
    ({"artifact_type": ""}, "artifact_type '' is not a media type"),
    ({"media_type": "json"}, "media_type 'json' is not a media type"),
    ({"annotations": {"a": 1}}, "annotation 'a'"),
    ({"payload": "text"}, "payload must be bytes"),
])
def test_bad_attachments_are_refused(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"artifact_type": SPDX_JSON, "payload": b"{}", **kwargs}
    with pytest.raises(InvalidValue, match=message):
        Attachment(**values)


def test_documents_attach_to_manifests_and_indexes_only() -> None:
    layer = Descriptor(media_type=MediaType.OCI_LAYER_GZIP, digest=Digest.of(b"x"), size=1)
    with pytest.raises(InvalidValue, match="attach to an image manifest or an image index"):
        artifact_manifest(layer, Attachment.of(SPDX_JSON, b"{}"))


# ---------------------------------------------------------------------------------------------------
# a registry without the referrers API: the fallback tag
# ---------------------------------------------------------------------------------------------------

def test_attach_to_distribution_lists_both_in_the_fallback_tag(plain_registry: Registry, cache: Path,
                                                               tmp_path: Path) -> None:
    reg, repo = plain_registry, "ref/attach"
    image = push_hello(reg, repo, cache, tmp_path)
    image_raw = skopeo_inspect_raw(f"docker://{reg.host}/{repo}:v1", "--tls-verify=false")
    sbom, prov = spdx("hello"), statement("hello")
    mark = reg.mark()
    descs = attach(RegistryClient(), Reference.parse(f"{reg.host}/{repo}:v1"), image,
                   [Attachment.of(SPDX_JSON, sbom, created=0), Attachment.of(IN_TOTO_JSON, prov)])

    # detection by GET .../referrers/<digest> (404 here); artifacts by digest, the index at the fallback tag only
    log = reg.requests_since(mark)
    assert [(r["method"], r["status"]) for r in log if "/referrers/" in r["route"]] == [("GET", 404)]
    tag = fallback_tag(image.digest)
    assert manifest_puts(reg, repo, mark) == [str(d.digest) for d in descs] + [tag]

    index = fallback_index(reg, repo, image)
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    assert index["manifests"] == [d.to_dict() for d in descs]
    assert [m["artifactType"] for m in index["manifests"]] == [SPDX_JSON, IN_TOTO_JSON]
    for entry, payload in zip(index["manifests"], (sbom, prov), strict=True):
        manifest = json.loads(skopeo_inspect_raw(f"docker://{reg.host}/{repo}@{entry['digest']}", "--tls-verify=false"))
        assert manifest["subject"] == {"mediaType": OCI_MANIFEST, "digest": str(image.digest), "size": image.size}
        assert manifest["artifactType"] == entry["artifactType"]
        assert manifest["config"] == EMPTY.to_dict()
        assert manifest["layers"] == [{"mediaType": entry["artifactType"], "digest": sha256(payload),
                                       "size": len(payload)}]
        blob = requests.get(f"{reg.url}/v2/{repo}/blobs/{sha256(payload)}", timeout=30).content
        assert blob == payload

    # the image's tag still names the image, not an index carrying attestations
    assert skopeo_inspect_raw(f"docker://{reg.host}/{repo}:v1", "--tls-verify=false") == image_raw
    assert skopeo_inspect(f"docker://{reg.host}/{repo}:v1", "--tls-verify=false")["Digest"] == str(image.digest)

    # an independent client reads the fallback index
    oras_index = oras.provider.Registry(insecure=True).get_manifest(f"{reg.host}/{repo}:{tag}")
    assert [m["digest"] for m in oras_index["manifests"]] == [str(d.digest) for d in descs]

    # ocibuild reads back what it attached: the library, then the commands (byte for byte)
    store = ContentStore(tmp_path / "store")
    found = list_attached(f"docker://{reg.host}/{repo}:v1", store=store, client=RegistryClient())
    assert [(a.descriptor.digest, a.descriptor.artifact_type, a.payload) for a in found] == [
        (descs[0].digest, SPDX_JSON, sbom), (descs[1].digest, IN_TOTO_JSON, prov)]
    mark = reg.mark()
    only = list_attached(f"docker://{reg.host}/{repo}:v1", image, store=store, client=RegistryClient(),
                         artifact_types=[IN_TOTO_JSON])
    assert [a.payload for a in only] == [prov]
    assert reg.count("GET", f"/manifests/{descs[0].digest}", since=mark) == 0  # the SBOM was not even read
    assert ocibuild("sbom", f"docker://{reg.host}/{repo}:v1", cache=cache, cwd=tmp_path).stdout == sbom
    assert ocibuild("provenance", f"{reg.host}/{repo}:v1", cache=cache, cwd=tmp_path).stdout == prov


def test_entries_of_other_tools_are_kept_and_attaching_twice_adds_nothing(plain_registry: Registry, cache: Path,
                                                                          tmp_path: Path) -> None:
    reg, repo = plain_registry, "ref/shared"
    image = push_hello(reg, repo, cache, tmp_path)
    tag = fallback_tag(image.digest)
    # another tool (oras-py) attaches a signature-like artifact and lists it in the fallback tag itself
    (tmp_path / "sig.json").write_bytes(b'{"signed": "by another tool"}\n')
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=str(image.digest), size=image.size)
    client = oras.provider.Registry(insecure=True)
    cwd = Path.cwd()
    (tmp_path / "stray.json").write_bytes(b'{"about": "another manifest"}\n')
    os.chdir(tmp_path)  # oras-py takes files relative to the working folder
    try:
        pushed = client.push(f"{reg.host}/{repo}:other-tool", files=["sig.json:application/vnd.example.sig+json"],
                             subject=subject, manifest_annotations={"tool": "oras-py"}, quiet=True)
        foreign_digest = pushed.headers["Docker-Content-Digest"]
        foreign_raw = requests.get(f"{reg.url}/v2/{repo}/manifests/{foreign_digest}",
                                   headers={"Accept": OCI_MANIFEST}, timeout=30).content
        # and one whose subject is that artifact, not the image: listed here by mistake
        other = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=foreign_digest, size=len(foreign_raw))
        stray = client.push(f"{reg.host}/{repo}:stray", files=["stray.json:application/vnd.example.sig+json"],
                            subject=other, quiet=True)
    finally:
        os.chdir(cwd)
    stray_raw = requests.get(f"{reg.url}/v2/{repo}/manifests/stray", headers={"Accept": OCI_MANIFEST},
                             timeout=30).content
    assert sha256(stray_raw) == stray.headers["Docker-Content-Digest"]
    foreign = {"mediaType": OCI_MANIFEST, "digest": foreign_digest, "size": len(foreign_raw),
               "artifactType": json.loads(foreign_raw)["config"]["mediaType"], "annotations": {"tool": "oras-py"}}
    misplaced = {"mediaType": OCI_MANIFEST, "digest": sha256(stray_raw), "size": len(stray_raw)}
    theirs = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [foreign, misplaced],
              "annotations": {"by": "other"}}
    put = requests.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=json.dumps(theirs, indent=2),
                       headers={"Content-Type": OCI_INDEX}, timeout=30)
    assert put.status_code == 201, put.text

    sbom = spdx("shared")
    ours = attach(RegistryClient(), Reference.parse(f"{reg.host}/{repo}:v1"), image, [Attachment.of(SPDX_JSON, sbom)])
    index = fallback_index(reg, repo, image)
    assert index["manifests"] == [foreign, misplaced, ours[0].to_dict()]  # theirs kept as they wrote them
    assert index["annotations"] == {"by": "other"}  # what we do not know stays too

    # attaching the same document again changes nothing: not even a PUT of the tag
    mark = reg.mark()
    again = attach(RegistryClient(), Reference.parse(f"{reg.host}/{repo}:v1"), image, [Attachment.of(SPDX_JSON, sbom)])
    assert again == ours
    assert tag not in manifest_puts(reg, repo, mark)
    assert fallback_index(reg, repo, image) == index

    # a second document is appended; the other tool's entry is still first
    prov = statement("shared")
    more = attach(RegistryClient(), Repository(host=reg.host, name=repo), image, [Attachment.of(IN_TOTO_JSON, prov)])
    assert fallback_index(reg, repo, image)["manifests"] == [foreign, misplaced, ours[0].to_dict(),
                                                             more[0].to_dict()]

    # readers see the three attached to the image, the other tool's included; not the one about another manifest
    found = list_attached(f"docker://{reg.host}/{repo}:v1", store=ContentStore(tmp_path / "store"),
                          client=RegistryClient())
    assert [a.payload for a in found] == [b'{"signed": "by another tool"}\n', sbom, prov]


def test_concurrent_attachers_lose_no_entry(plain_registry: Registry, cache: Path, tmp_path: Path) -> None:
    reg, repo = plain_registry, "ref/race"
    image = push_hello(reg, repo, cache, tmp_path)
    ref = Reference.parse(f"{reg.host}/{repo}:v1")
    expected: list[str] = []
    for round_ in range(3):
        start = threading.Barrier(4)
        results: dict[int, Any] = {}

        def one(i: int, round_: int = round_, start: threading.Barrier = start,
                results: dict[int, Any] = results) -> None:
            client = RegistryClient()
            start.wait()
            try:
                results[i] = attach(client, ref, image, [Attachment.of(SPDX_JSON, spdx(f"writer {round_}.{i}"))])
            except Exception as exc:  # collected, asserted below
                results[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert all(isinstance(r, list) for r in results.values()), [str(r) for r in results.values()]
        expected += [str(results[i][0].digest) for i in range(4)]
        listed = [m["digest"] for m in fallback_index(reg, repo, image)["manifests"]]
        assert sorted(listed) == sorted(expected)


def test_a_malformed_fallback_tag_is_one_error_line(plain_registry: Registry, cache: Path, tmp_path: Path) -> None:
    reg, repo = plain_registry, "ref/malformed"
    image = push_hello(reg, repo, cache, tmp_path)
    tag = fallback_tag(image.digest)
    ref = Reference.parse(f"{reg.host}/{repo}:v1")
    # JSON distribution accepts (it ignores fields it does not know) but nested deeper than any OCI document
    deep: Any = "x"
    for _ in range(150):
        deep = [deep]
    bad = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "junk": deep}
    put = requests.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=json.dumps(bad),
                       headers={"Content-Type": OCI_INDEX}, timeout=30)
    assert put.status_code == 201, put.text
    with pytest.raises(RegistryError) as caught:
        attach(RegistryClient(), ref, image, [Attachment.of(SPDX_JSON, spdx("m"))])
    message = str(caught.value)
    assert f"{reg.host}/{repo}:{tag}" in message and "malformed" in message and "nested" in message
    assert "\n" not in message
    line = one_error_line(ocibuild("sbom", f"docker://{reg.host}/{repo}:v1", cache=cache, cwd=tmp_path, check=False))
    assert f"{reg.host}/{repo}:{tag}, the referrers tag, is malformed" in line

    # the tag holds an image manifest, not an index: refused, not overwritten
    raw = skopeo_inspect_raw(f"docker://{reg.host}/{repo}:v1", "--tls-verify=false")
    requests.put(f"{reg.url}/v2/{repo}/manifests/{tag}", data=raw, headers={"Content-Type": OCI_MANIFEST},
                 timeout=30).raise_for_status()
    with pytest.raises(RegistryError, match="is not an image index"):
        attach(RegistryClient(), ref, image, [Attachment.of(SPDX_JSON, spdx("m"))])
    assert skopeo_inspect_raw(f"docker://{reg.host}/{repo}:{tag}", "--tls-verify=false") == raw


def test_nothing_attached_is_a_clear_error(plain_registry: Registry, cache: Path, tmp_path: Path) -> None:
    reg, repo = plain_registry, "ref/none"
    image = push_hello(reg, repo, cache, tmp_path)
    line = one_error_line(ocibuild("sbom", f"docker://{reg.host}/{repo}:v1", cache=cache, cwd=tmp_path, check=False))
    assert line == (f"ocibuild: error: no SBOM is attached to docker://{reg.host}/{repo}:v1@{image.digest}; "
                    "build with --sbom spdx")
    line = one_error_line(ocibuild("provenance", f"docker://{reg.host}/{repo}:v1", cache=cache, cwd=tmp_path,
                                   check=False))
    assert line.endswith(f"no provenance is attached to docker://{reg.host}/{repo}:v1@{image.digest}; "
                         "build with --provenance")


# ---------------------------------------------------------------------------------------------------
# OCI layouts and archives
# ---------------------------------------------------------------------------------------------------

def test_layout_lists_artifacts_untagged_and_tools_still_read_it(cache: Path, tmp_path: Path) -> None:
    layout = tmp_path / "app"
    digest = ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"oci:{layout}:v1", cache=cache,
                      cwd=tmp_path).stdout.decode().strip()
    store = ContentStore(cache)
    (subject,) = resolve_subjects(f"oci:{layout}:v1", store=store)
    assert str(subject.digest) == digest
    sbom, prov = spdx("layout"), statement("layout")
    attachments = [Attachment.of(SPDX_JSON, sbom, created=0), Attachment.of(IN_TOTO_JSON, prov)]
    descs = attach_to_layout(layout, subject, attachments)
    index_bytes = (layout / "index.json").read_bytes()
    assert attach_to_layout(layout, subject, attachments) == descs  # idempotent: index.json unchanged
    assert (layout / "index.json").read_bytes() == index_bytes

    index = json.loads(index_bytes)
    assert index["manifests"][0]["annotations"] == {"org.opencontainers.image.ref.name": "v1"}
    assert index["manifests"][1:] == [d.to_dict() for d in descs]
    assert all("org.opencontainers.image.ref.name" not in m.get("annotations", {}) for m in index["manifests"][1:])
    for d, payload in zip(descs, (sbom, prov), strict=True):
        manifest = json.loads((layout / d.digest.blob_name).read_bytes())
        assert manifest["subject"]["digest"] == digest
        assert (layout / "blobs" / "sha256" / sha256(payload)[7:]).read_bytes() == payload

    # other tools see one tag and the same image; the layout is valid (and conftest validates it again)
    assert skopeo_inspect(f"oci:{layout}:v1")["Digest"] == digest
    tags = run(["umoci", "ls", "--layout", layout], text=True).stdout.split()
    assert tags == ["v1"]
    oci_image_tool_validate(layout, "v1")
    for d in descs:
        run(["oci-image-tool", "validate", "--type", "manifest", layout / d.digest.blob_name])

    # readers; the layout also still reads as a base without its tag (the artifacts are not images)
    found = list_attached(OciLayout(path=layout, tag="v1"), store=store)
    assert [(a.descriptor.artifact_type, a.payload) for a in found] == [(SPDX_JSON, sbom), (IN_TOTO_JSON, prov)]
    assert ocibuild("sbom", f"oci:{layout}:v1", cache=cache, cwd=tmp_path).stdout == sbom
    assert ocibuild("provenance", f"oci:{layout}", cache=cache, cwd=tmp_path).stdout == prov
    assert str(resolve_base(OciLayout(path=layout), store).digest) == digest

    # later writes keep the artifacts: another tag, and an untagged image
    ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"oci:{layout}:v2", "--env", "X=1",
             cache=cache,
             cwd=tmp_path)
    ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"oci:{layout}", "--env", "X=2",
             cache=cache,
             cwd=tmp_path)
    listed = [m["digest"] for m in json.loads((layout / "index.json").read_bytes())["manifests"]]
    assert {str(d.digest) for d in descs} <= set(listed)
    assert ocibuild("sbom", f"oci:{layout}:v1", cache=cache, cwd=tmp_path).stdout == sbom


def test_attach_to_layout_refuses_what_is_not_there(cache: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="not an OCI layout"):
        attach_to_layout(tmp_path / "nothing", SUBJECT, [Attachment.of(SPDX_JSON, b"{}")])
    layout = tmp_path / "app"
    ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"oci:{layout}:v1",
             cache=cache, cwd=tmp_path)
    before = sorted(p.name for p in (layout / "blobs" / "sha256").iterdir())
    with pytest.raises(OutputError, match=f"holds no such manifest.*|{SUBJECT.digest}"):
        attach_to_layout(layout, SUBJECT, [Attachment.of(SPDX_JSON, b"{}")])
    assert sorted(p.name for p in (layout / "blobs" / "sha256").iterdir()) == before


def test_multi_platform_layout_per_platform_sboms_and_index_provenance(cache: Path, tmp_path: Path) -> None:
    layout = tmp_path / "multi"
    top = ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--platform", "linux/amd64,linux/arm64",
                   "--output", f"oci:{layout}:v1", cache=cache, cwd=tmp_path).stdout.decode().strip()
    store = ContentStore(cache)
    index, amd64 = resolve_subjects(f"oci:{layout}:v1", Platform.parse("linux/amd64"), store=store)
    index2, arm64 = resolve_subjects(f"oci:{layout}:v1", Platform.parse("linux/arm64"), store=store)
    assert index == index2 and str(index.digest) == top and index.media_type == MediaType.OCI_INDEX
    for subject, name in ((amd64, "amd64"), (arm64, "arm64")):
        attach_to_layout(layout, subject, [Attachment.of(SPDX_JSON, spdx(name))])
    attach_to_layout(layout, index, [Attachment.of(IN_TOTO_JSON, statement("both"))])

    assert ocibuild("sbom", f"oci:{layout}:v1", "--platform", "linux/arm64", cache=cache, cwd=tmp_path).stdout \
        == spdx("arm64")
    assert ocibuild("sbom", f"oci:{layout}:v1", "--platform", "linux/amd64", cache=cache, cwd=tmp_path).stdout \
        == spdx("amd64")
    assert ocibuild("provenance", f"oci:{layout}:v1", cache=cache, cwd=tmp_path).stdout == statement("both")
    line = one_error_line(ocibuild("sbom", f"oci:{layout}:v1", "--platform", "linux/arm64", "--format", "cyclonedx",
                                   cache=cache, cwd=tmp_path, check=False))
    assert line == (f"ocibuild: error: no CycloneDX SBOM is attached to oci:{layout}:v1@{arm64.digest} (an SPDX one "
                    "is: --format spdx); build with --sbom cyclonedx")
    # the tag still names the index, which lists the two images and nothing else
    raw = skopeo_inspect_raw(f"oci:{layout}:v1")
    assert sha256(raw) == top and [m["digest"] for m in json.loads(raw)["manifests"]] == [
        str(amd64.digest), str(arm64.digest)]
    oci_image_tool_validate(layout, "v1")


def test_oci_archive_carries_the_artifacts(cache: Path, tmp_path: Path) -> None:
    layout = tmp_path / "src"
    ocibuild("build", HELLO, *NO_EVIDENCE, "--base", "scratch", "--output", f"oci:{layout}:v1",
             cache=cache, cwd=tmp_path)
    store = ContentStore(cache)
    image = resolve_base(OciLayout(path=layout, tag="v1"), store)
    sbom = spdx("archive")
    extra = layout_additions([(image.descriptor(), [Attachment.of(CYCLONEDX_JSON, sbom)])])
    archive = tmp_path / "app.tar"
    write_oci_archive(archive, "v1", image, 0, extra_entries=extra.entries, extra_blobs=extra.blobs)

    assert skopeo_inspect(f"oci-archive:{archive}:v1")["Digest"] == str(image.digest)
    found = list_attached(f"oci-archive:{archive}:v1", store=store)
    assert [(a.descriptor.artifact_type, a.payload) for a in found] == [(CYCLONEDX_JSON, sbom)]
    assert ocibuild("sbom", f"oci-archive:{archive}:v1", cache=cache, cwd=tmp_path).stdout == sbom
    assert ocibuild("sbom", f"oci-archive:{archive}", "--format", "cyclonedx", cache=cache, cwd=tmp_path).stdout \
        == sbom
    line = one_error_line(ocibuild("provenance", f"docker-archive:{archive}", cache=cache, cwd=tmp_path, check=False))
    assert "holds no attached documents" in line


# ---------------------------------------------------------------------------------------------------
# a registry WITH the referrers API: an in-process fake (distribution 2.8 cannot be one)
# ---------------------------------------------------------------------------------------------------

def _referrers_api(reg: HostileRegistry, *, page_size: int = 100) -> None:
    """Answer ``GET /v2/<name>/referrers/<digest>`` from the fake's store, as OCI 1.1 says (paged)."""

    def answer(h: RegistryHandler) -> None:
        path, _, query = h.path.partition("?")
        name, _, subject = path.removeprefix("/v2/").partition("/referrers/")
        with reg.store.lock:
            stored = [(ref, raw) for (n, ref), (raw, _) in reg.store.manifests.items() if n == name]
        entries = []
        for ref, raw in sorted(stored):
            doc = json.loads(raw)
            if ref.startswith("sha256:") and (doc.get("subject") or {}).get("digest") == subject:
                entries.append({"mediaType": OCI_MANIFEST, "digest": ref, "size": len(raw),
                                "artifactType": doc.get("artifactType", "")})
        start = int(query.removeprefix("last=") or 0) if query.startswith("last=") else 0
        page = entries[start:start + page_size]
        headers = []
        if start + page_size < len(entries):
            headers.append(("Link", f'</v2/{name}/referrers/{subject}?last={start + page_size}>; rel="next"'))
        h.answer(200, json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": page}).encode(), headers,
                 content_type=OCI_INDEX)

    reg.on("GET", r"/referrers/", answer)


@pytest.fixture
def fake() -> Iterator[tuple[HostileRegistry, Descriptor]]:
    reg = HostileRegistry()
    image = tiny_image()
    reg.store.add_image("app", "v1", image)
    yield reg, Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.parse(image.digest),
                          size=len(image.manifest))
    reg.stop()


def test_referrers_api_is_used_where_the_registry_has_it(fake: tuple[HostileRegistry, Descriptor],
                                                         tmp_path: Path) -> None:
    reg, image = fake
    _referrers_api(reg, page_size=1)  # one per page: the Link header is followed
    docs = [Attachment.of(SPDX_JSON, spdx("api")), Attachment.of(IN_TOTO_JSON, statement("api"))]
    descs = attach(RegistryClient(), Reference.parse(f"{reg.host}/app:v1"), image, docs)
    puts = [r["path"] for r in reg.requests_log() if r["method"] == "PUT" and "/manifests/" in r["path"]]
    assert puts == [f"/v2/app/manifests/{d.digest}" for d in descs]  # no fallback tag
    found = list_attached(f"docker://{reg.host}/app:v1", store=ContentStore(tmp_path / "store"),
                          client=RegistryClient())
    assert sorted((a.descriptor.digest, a.payload) for a in found) == sorted(
        (d.digest, a.payload) for d, a in zip(descs, docs, strict=True))
    assert not any(fallback_tag(image.digest) in r["path"] for r in reg.requests_log())


def test_a_referrers_answer_that_is_no_index_means_no_api(fake: tuple[HostileRegistry, Descriptor]) -> None:
    reg, image = fake
    reg.on("GET", r"/referrers/", lambda h: h.answer(200, b"<html>welcome</html>", content_type="text/html"))
    attach(RegistryClient(), Reference.parse(f"{reg.host}/app:v1"), image, [Attachment.of(SPDX_JSON, spdx("x"))])
    assert (("app", fallback_tag(image.digest)) in reg.store.manifests)


def test_an_endless_referrers_answer_is_cut(fake: tuple[HostileRegistry, Descriptor], tmp_path: Path) -> None:
    reg, image = fake
    reg.on("GET", r"/referrers/", lambda h: h.stream(endless_json(), content_type=OCI_INDEX))
    with pytest.raises(RegistryError) as caught:
        list_attached(f"docker://{reg.host}/app:v1", image, store=ContentStore(tmp_path / "store"),
                      client=RegistryClient())
    assert "larger than the 4194304 bytes allowed" in str(caught.value) and "\n" not in str(caught.value)

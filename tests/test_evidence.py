"""Evidence with every build: SBOM and provenance as referrers by default, signatures and attestations
with --sign-key, `verify --key` over documents, and `verify --rebuild` from the recorded provenance."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from harness.cli import ocibuild
from harness.layout import read_blob, tag_descriptor
from harness.proc import skopeo
from harness.registry import Registry
from test_python_deps import _fake_wheel
from test_rebuild import tamper

from ocibuild.referrers import SPDX_JSON, Attachment, attach, attach_to_layout
from ocibuild.registry import RegistryClient, TLSConfig
from ocibuild.spec import Descriptor, Digest, MediaType, Reference

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
ENV = {"SOURCE_DATE_EPOCH": "1700000000", "OCIBUILD_SIGNING_PASSWORD": "correct horse battery"}
SPDX, INTOTO, DSSE = "application/spdx+json", "application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json"


def artifacts(layout: Path) -> list[str]:
    index = json.loads((layout / "index.json").read_text())
    return sorted(m.get("artifactType", "") for m in index["manifests"] if "artifactType" in m)


def test_layouts_get_an_sbom_and_provenance_by_default(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    layout = tmp_path / "out"
    ocibuild("build", HELLO, "--base", "scratch", "--output", f"oci:{layout}:v1", cache=cache, env=ENV)
    assert artifacts(layout) == [SPDX, INTOTO]
    sbom = json.loads(ocibuild("sbom", f"oci:{layout}:v1", cache=cache).stdout)
    assert sbom["spdxVersion"] == "SPDX-2.3"
    statement = json.loads(ocibuild("provenance", f"oci:{layout}:v1", cache=cache).stdout)
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert skopeo("inspect", "--raw", f"oci:{layout}:v1").stdout  # the tag still names the image

    other = tmp_path / "cdx"
    ocibuild("build", HELLO, "--base", "scratch", "--sbom", "cyclonedx", "--no-provenance", "--output",
             f"oci:{other}:v1", cache=cache, env=ENV)
    assert artifacts(other) == ["application/vnd.cyclonedx+json"]
    none = tmp_path / "none"
    ocibuild("build", HELLO, "--base", "scratch", "--sbom", "none", "--output", f"oci:{none}:v1", cache=cache,
             env=ENV)
    assert artifacts(none) == []
    proc = ocibuild("sbom", f"oci:{none}:v1", cache=cache, check=False)
    assert proc.returncode == 1 and "no SBOM is attached" in proc.stderr and "Traceback" not in proc.stderr


def test_two_builds_give_the_same_documents(tmp_path: Path) -> None:
    docs = []
    layout = tmp_path / "out"  # the same output (it is part of the recorded plan), two fresh stores, and the
    for run in ("a", "a", "b"):  # first store again (its layer walks are replayed, not read)
        ocibuild("build", HELLO, "--base", "scratch", "--output", f"oci:{layout}:v1", cache=tmp_path / f"cache-{run}",
                 env=ENV)
        index = json.loads((layout / "index.json").read_text())
        docs.append(sorted((m["artifactType"], m["digest"]) for m in index["manifests"] if "artifactType" in m))
        shutil.rmtree(layout)
    assert docs[0] == docs[1] == docs[2] and len(docs[0]) == 2


def test_sign_key_signs_attests_and_verify_catches_a_swapped_sbom(tmp_path: Path, plain_registry: Registry) -> None:
    reg, cache = plain_registry, tmp_path / "cache"
    key = tmp_path / "team"
    ocibuild("keygen", key, cache=cache, env=ENV)
    assert (tmp_path / "team.key").stat().st_mode & 0o777 == 0o600
    repo = f"evidence/app{os.getpid()}"
    ref = f"{reg.host}/{repo}:v1"
    digest = ocibuild("build", HELLO, "--base", "scratch", "--sign-key", f"{key}.key", "--output", f"docker://{ref}",
                      cache=cache, env=ENV).stdout.strip()
    fallback = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                                 f"docker://{reg.host}/{repo}:sha256-{digest.split(':')[1]}").stdout)
    listed = sorted(m["artifactType"] for m in fallback["manifests"])
    assert listed == sorted([SPDX, INTOTO, DSSE, DSSE]), listed  # the documents and their signed envelopes
    for suffix in (".sig", ".att"):
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{repo}:sha256-{digest.split(':')[1]}"
               f"{suffix}")
    ok = ocibuild("verify", f"docker://{ref}", "--key", f"{key}.pub", cache=cache, env=ENV)
    assert "verified 1 signature and 2 attestations and 2 attached documents" in ok.stderr, ok.stderr

    # another SBOM put in the place of ours: the fallback tag now lists it instead
    sbom_entry = next(m for m in fallback["manifests"] if m["artifactType"] == SPDX)
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false",
                                 f"docker://{reg.host}/{repo}@{sbom_entry['digest']}").stdout)
    forged = tmp_path / "forged"
    ocibuild("build", HELLO, "--base", "scratch", "--env", "FORGED=1", "--output", f"oci:{forged}:v1", cache=cache,
             env=ENV)
    forged_doc = json.loads(ocibuild("sbom", f"oci:{forged}:v1", cache=cache).stdout)
    assert manifest["layers"][0]["mediaType"] == SPDX and forged_doc
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()
    client = RegistryClient(tls=TLSConfig(insecure_registries=(reg.host,)))
    subject = Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.parse(digest), size=len(raw))
    attach(client, Reference.parse(ref), subject, [Attachment.of(SPDX_JSON, json.dumps(forged_doc).encode())])
    bad = ocibuild("verify", f"docker://{ref}", "--key", f"{key}.pub", cache=cache, env=ENV, check=False)
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "application/spdx+json document" in lines[-1] and "is not attested" in lines[-1], lines[-1]


def test_sign_key_needs_a_registry_output_and_the_password(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ocibuild("keygen", tmp_path / "k", cache=cache, env=ENV)
    proc = ocibuild("build", HELLO, "--base", "scratch", "--sign-key", tmp_path / "k.key", "--output",
                    f"oci:{tmp_path / 'out'}:v1", cache=cache, env=ENV, check=False)
    assert proc.returncode == 1 and "add a docker:// output" in proc.stderr
    env = {k: v for k, v in ENV.items() if k != "OCIBUILD_SIGNING_PASSWORD"}
    os.environ.pop("OCIBUILD_SIGNING_PASSWORD", None)
    proc = ocibuild("build", HELLO, "--base", "scratch", "--sign-key", tmp_path / "k.key", "--output",
                    "docker://127.0.0.1:1/x:v1", cache=cache, env=env, check=False)
    assert proc.returncode == 1 and "OCIBUILD_SIGNING_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def python_project(root: Path) -> Path:
    project = root / "proj"
    project.mkdir(parents=True)
    _fake_wheel(project / "wheelhouse", "fakepkg", "1.0", "py3-none-any")
    (project / "requirements.txt").write_text("fakepkg==1.0\n")
    (project / "app.py").write_text("import fakepkg\nprint(fakepkg.X)\n")
    (project / "ocibuild.toml").write_text(
        'base = "scratch"\n[python]\nrequirements = "requirements.txt"\ninterpreter = "/usr/bin/python3"\n'
        'python_version = "3.11"\nlibc = "glibc"\nlibc_version = "2.36"\nfind_links = ["wheelhouse"]\n'
        'no_index = true\n[[layers]]\nsrc = "app.py"\ndest = "/app/app.py"\n')
    return project


def test_verify_rebuild_reproduces_names_a_changed_file_and_a_missing_input(tmp_path: Path) -> None:
    project = python_project(tmp_path / "first")
    layout = tmp_path / "out"
    digest = ocibuild("build", project, "--output", f"oci:{layout}:v1", cache=tmp_path / "cache",
                      env=ENV).stdout.strip()
    # another working folder, a fresh store, the wheels only from a wheelhouse (the project moved away)
    elsewhere = tmp_path / "second"
    elsewhere.mkdir()
    shutil.copytree(project, elsewhere / "src")
    shutil.copytree(project / "wheelhouse", elsewhere / "wheels")
    shutil.rmtree(tmp_path / "first")
    args = ("verify", f"oci:{layout}:v1", "--rebuild", "--project", "src", "--offline-from", "wheels")
    proc = ocibuild(*args, cache=elsewhere / "cache", cwd=elsewhere, env=ENV)
    assert proc.stdout.strip() == f"reproduced {digest}"

    # an image whose code layer was altered (config and manifest rewritten to match), the provenance of the
    # original attached to it
    provenance = ocibuild("provenance", f"oci:{layout}:v1", cache=elsewhere / "cache").stdout.encode()
    manifest = json.loads(read_blob(layout, tag_descriptor(layout, "v1")["digest"]))
    tamper(layout, "v1", len(manifest["layers"]) - 1, "app/app.py", b"print('changed')\n")
    altered = tag_descriptor(layout, "v1")
    attach_to_layout(layout, Descriptor(media_type=MediaType.OCI_MANIFEST, digest=Digest.parse(altered["digest"]),
                                        size=altered["size"]), [Attachment.of(INTOTO, provenance)])
    bad = ocibuild(*args, cache=elsewhere / "cache2", cwd=elsewhere, env=ENV, check=False)
    assert bad.returncode == 1, bad.stderr
    assert f"layer {len(manifest['layers'])} (ocibuild: COPY app.py /app/app.py) differs" in bad.stdout, bad.stdout
    assert "files that differ: /app/app.py" in bad.stdout

    # an input missing from the wheelhouse: named with its sha256
    empty = elsewhere / "empty"
    empty.mkdir()
    missing = ocibuild("verify", f"oci:{layout}:v1", "--rebuild", "--project", "src", "--offline-from", "empty",
                       cache=elsewhere / "cache3", cwd=elsewhere, env=ENV, check=False)
    lines = missing.stderr.strip().splitlines()
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert lines[-1].startswith("ocibuild: error: input fakepkg-1.0-py3-none-any.whl (sha256 "), lines[-1]

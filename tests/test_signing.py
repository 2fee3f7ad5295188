"""Key-based signing (issue 14, part 4) and ``ocibuild verify --key`` (part 5), against a real registry
(Debian's docker-registry) and real tools:

- ``ocibuild keygen`` / ``sign`` / ``verify`` as subprocesses: key files and their modes, password rules,
  one error line per bad input, no secret in any output (``--debug`` included), the store or the registry;
- the cosign layout in the registry (``sha256-<hex>.sig`` / ``.att``), re-signing, other keys' signatures
  kept, a replaced signature tag, tampered and misdirected payloads, attestations and their subjects;
- skopeo (Debian 12's, sigstore verification patched out) with a ``sigstoreSigned`` policy: it must find
  no signature on an unsigned image and find ours on a signed one (the rejecting half);
- the accepting half by ``harness.cosign_policy``, a verifier written from containers/image's acceptance
  rules that does its cryptography with the openssl command line and imports nothing from ocibuild. It
  first proves itself on signatures made by cosign and by Red Hat's release signing (committed in
  ``tests/data/cosign-vectors`` with their licence), then accepts ours and rejects another key's and
  tampered ones.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from cryptography.hazmat.primitives import serialization
from harness import cosign_policy
from harness.proc import skopeo
from harness.registry import Registry, RegistryFactory

from ocibuild.errors import ConfigError
from ocibuild.signing import dsse_pae, load_signing_key, parse_simple_signing

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
VECTORS = Path(__file__).resolve().parent / "data" / "cosign-vectors"
PASSWORD = "pässwörd-7Hq2!zX"  # non-ASCII on purpose
OTHER_PASSWORD = "another-secret-91kd"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
SIMPLE = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE = "application/vnd.dsse.envelope.v1+json"
SIG_ANN = "dev.cosignproject.cosign/signature"
PROVENANCE = "https://slsa.dev/provenance/v1"
SPDX = "https://spdx.dev/Document"

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------------------------------------
# helpers: the CLI, raw registry access
# ---------------------------------------------------------------------------------------------------


@dataclass
class World:
    """Keys, a cache and a registry shared by the tests of this module."""

    tmp: Path
    cache: Path
    registry: Registry
    k1: Path  # prefix: k1.key / k1.pub, password PASSWORD
    k2: Path  # another key, password OTHER_PASSWORD

    def env(self, password: str | None = PASSWORD, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("OCIBUILD_SIGNING_PASSWORD", "OCIBUILD_DEBUG")}
        env.update({"OCIBUILD_CACHE": str(self.cache), "DOCKER_CONFIG": str(self.tmp / "docker-config"),
                    "SOURCE_DATE_EPOCH": "1700000000"})
        if password is not None:
            env["OCIBUILD_SIGNING_PASSWORD"] = password
        env.update(extra)
        return env

    def ref(self, repo: str, tag: str = "v1") -> str:
        return f"docker://{self.registry.host}/{repo}:{tag}"


def ocibuild(*args: str | Path, env: dict[str, str], check: bool = True, cwd: Path | None = None,
             ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "ocibuild", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, stdin=subprocess.DEVNULL, timeout=600, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ocibuild {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The process failed with exactly one line on stderr, ``ocibuild: error: ...``; returns it."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ocibuild: error: "), proc.stderr
    return lines[0]


class Raw:
    """Plain HTTP to the registry (not ocibuild's client): what an attacker with push access can do."""

    def __init__(self, registry: Registry) -> None:
        self.url = registry.url
        self.http = registry.session()

    def manifest(self, repo: str, ref: str) -> tuple[bytes, str]:
        r = self.http.get(f"{self.url}/v2/{repo}/manifests/{ref}", timeout=30,
                          headers={"Accept": cosign_policy.ACCEPT})
        r.raise_for_status()
        return r.content, r.headers["Content-Type"]

    def exists(self, repo: str, ref: str) -> bool:
        return self.http.head(f"{self.url}/v2/{repo}/manifests/{ref}", timeout=30,
                              headers={"Accept": cosign_policy.ACCEPT}).status_code == 200

    def blob(self, repo: str, digest: str) -> bytes:
        r = self.http.get(f"{self.url}/v2/{repo}/blobs/{digest}", timeout=30)
        r.raise_for_status()
        return r.content

    def put_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.http.post(f"{self.url}/v2/{repo}/blobs/uploads/", timeout=30)
        assert r.status_code == 202, r.text
        location = urljoin(self.url + "/", r.headers["Location"])
        r = self.http.put(location, params={"digest": digest}, data=data, timeout=30,
                          headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 201, r.text
        return digest

    def put_manifest(self, repo: str, ref: str, data: bytes, media_type: str = OCI_MANIFEST) -> None:
        r = self.http.put(f"{self.url}/v2/{repo}/manifests/{ref}", data=data, timeout=30,
                          headers={"Content-Type": media_type})
        assert r.status_code == 201, r.text

    def json(self, repo: str, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.manifest(repo, ref)[0])
        return doc


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


def att_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".att"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, plain_registry: Registry) -> World:
    tmp = tmp_path_factory.mktemp("signing")
    w = World(tmp=tmp, cache=tmp / "cache", registry=plain_registry, k1=tmp / "keys" / "k1", k2=tmp / "keys" / "k2")
    (tmp / "keys").mkdir()
    ocibuild("keygen", w.k1, env=w.env())
    ocibuild("keygen", w.k2, env=w.env(OTHER_PASSWORD))
    return w


def push(w: World, repo: str, *, platforms: str = "linux/amd64", tag: str = "v1") -> str:
    """Build examples/hello from scratch and push it to ``repo:tag``; returns the image (or index) digest."""
    proc = ocibuild("build", HELLO, "--base", "scratch", "--platform", platforms, "--output", w.ref(repo, tag),
                    env=w.env())
    return proc.stdout.strip().splitlines()[-1]


def subjects(w: World, repo: str, tag: str = "v1") -> dict[str, str]:
    """``{label: digest}``: ``index`` (or ``manifest``) and each platform's manifest, as verify names them."""
    raw = Raw(w.registry).manifest(repo, tag)[0]
    top = "sha256:" + hashlib.sha256(raw).hexdigest()
    doc = json.loads(raw)
    if "manifests" not in doc:
        return {"manifest": top}
    out = {"index": top}
    for m in doc["manifests"]:
        p = m["platform"]
        out["/".join(x for x in (p["os"], p["architecture"], p.get("variant", "")) if x)] = m["digest"]
    return out


def statement(predicate_type: str, *digests: str, predicate: dict[str, Any] | None = None) -> bytes:
    return json.dumps({"_type": "https://in-toto.io/Statement/v1",
                       "subject": [{"name": f"image-{i}", "digest": {"sha256": d.removeprefix("sha256:")}}
                                   for i, d in enumerate(digests)],
                       "predicateType": predicate_type, "predicate": predicate or {"note": "test"}},
                      indent=1).encode()


# ---------------------------------------------------------------------------------------------------
# keys and passwords
# ---------------------------------------------------------------------------------------------------


def test_keygen_writes_an_encrypted_pkcs8_key_0600_and_a_public_key(world: World, tmp_path: Path) -> None:
    # a umask of 000 must not make the private key readable by others, not even while it is written
    proc = subprocess.run(["sh", "-c", 'umask 000; exec "$0" -m ocibuild keygen "$1"', sys.executable,
                           str(tmp_path / "release")], capture_output=True, text=True, env=world.env(),
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 0, proc.stderr
    key, pub = tmp_path / "release.key", tmp_path / "release.pub"
    assert proc.stdout.strip() == str(pub)
    assert key.stat().st_mode & 0o777 == 0o600
    assert pub.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.key", "release.pub"]  # no temp file left
    pem = key.read_text()
    assert pem.startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----") and "PRIVATE KEY-----" in pem.splitlines()[-1]
    # another reader of PKCS#8 (openssl) decrypts it with the password and finds a P-256 key
    out = subprocess.run(["openssl", "pkey", "-in", str(key), "-passin", "env:OCIBUILD_SIGNING_PASSWORD",
                          "-noout", "-text"], capture_output=True, text=True, env=world.env(), check=True)
    assert "prime256v1" in out.stdout or "P-256" in out.stdout
    derived = subprocess.run(["openssl", "pkey", "-in", str(key), "-passin", "env:OCIBUILD_SIGNING_PASSWORD",
                              "-pubout"], capture_output=True, env=world.env(), check=True).stdout
    assert derived == pub.read_bytes()
    # the files are never replaced
    before = key.read_bytes()
    line = one_error_line(ocibuild("keygen", tmp_path / "release", env=world.env(), check=False))
    assert "release.key already exists" in line
    assert key.read_bytes() == before


def test_keygen_password_rules(world: World, tmp_path: Path) -> None:
    line = one_error_line(ocibuild("keygen", tmp_path / "a", env=world.env(""), check=False))
    assert "password is empty" in line and "--no-password" in line
    line = one_error_line(ocibuild("keygen", tmp_path / "b", env=world.env(None), check=False))
    assert "OCIBUILD_SIGNING_PASSWORD" in line  # no terminal to ask on
    line = one_error_line(ocibuild("keygen", tmp_path / "c", "--no-password", env=world.env(), check=False))
    assert "--no-password" in line and "OCIBUILD_SIGNING_PASSWORD" in line
    line = one_error_line(ocibuild("keygen", tmp_path / "missing" / "k", env=world.env(), check=False))
    assert line == f"ocibuild: error: keygen: folder {tmp_path / 'missing'} does not exist"
    assert not list(tmp_path.iterdir())
    ocibuild("keygen", tmp_path / "plain", "--no-password", env=world.env(None))
    key = tmp_path / "plain.key"
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key.stat().st_mode & 0o777 == 0o600


def test_a_wrong_or_missing_password_is_one_error_line(world: World) -> None:
    push(world, "pw/app")
    line = one_error_line(ocibuild("sign", world.ref("pw/app"), "--key", f"{world.k1}.key",
                                   env=world.env("not-the-password"), check=False))
    assert line == f"ocibuild: error: signing key {world.k1}.key: wrong password (or the key file is corrupt)"
    debug = ocibuild("sign", world.ref("pw/app"), "--key", f"{world.k1}.key", "--debug",
                     env=world.env("not-the-password"), check=False)
    assert debug.returncode == 1 and "not-the-password" not in debug.stdout + debug.stderr
    line = one_error_line(ocibuild("sign", world.ref("pw/app"), "--key", f"{world.k1}.key", env=world.env(None),
                                   check=False))
    assert "set OCIBUILD_SIGNING_PASSWORD" in line
    digest = subjects(world, "pw/app")["manifest"]
    assert not Raw(world.registry).exists("pw/app", sig_tag(digest))  # nothing was signed


def test_bad_inputs_are_one_error_line(world: World, tmp_path: Path) -> None:
    push(world, "bad/app")
    ref = world.ref("bad/app")
    cases: list[tuple[list[str | Path], str]] = [
        (["verify", ref], "give --key PUB"),
        (["verify", f"oci:{tmp_path}/layout:v1", "--key", f"{world.k1}.pub"], "works on pushed images"),
        (["verify", ref, "--key", tmp_path / "missing.pub"], "missing.pub: no such file"),
        (["verify", ref, "--key", f"{world.k1}.key"], "holds a private key"),
        (["sign", ref, "--key", tmp_path / "missing.key"], "missing.key: no such file"),
        (["sign", ref, "--key", f"{world.k1}.pub"], "not a PEM private key"),
        (["sign", ref, "--key", f"{world.k1}.key", "--annotation", "novalue"], "expected KEY=VALUE"),
        (["sign", ref, "--key", f"{world.k1}.key", "--attestation", tmp_path / "none.json"], "none.json"),
    ]
    cosign_key = tmp_path / "cosign.key"
    cosign_key.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\neyJrZGYiOnt9fQ==\n"
                          "-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    cases.append((["sign", ref, "--key", cosign_key], "cosign import-key-pair"))
    not_a_statement = tmp_path / "not-a-statement.json"
    not_a_statement.write_text('{"hello": 1}')
    cases.append((["sign", ref, "--key", f"{world.k1}.key", "--attestation", not_a_statement],
                  "is not an in-toto statement"))
    for args, expected in cases:
        line = one_error_line(ocibuild(*args, env=world.env(), check=False))
        assert expected in line, (args, line)
    digest = subjects(world, "bad/app")["manifest"]
    assert not Raw(world.registry).exists("bad/app", sig_tag(digest))


def test_library_key_errors_name_the_file_not_the_secret(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not an ECDSA P-256 key"):
        load_signing_key(rsa_key, None)
    p384 = tmp_path / "p384.key"
    p384.write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="not an ECDSA P-256 key"):
        load_signing_key(p384, None)
    p256 = tmp_path / "p256.key"
    p256.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"hunter22")))
    with pytest.raises(ConfigError) as err:
        load_signing_key(p256, b"wrong-hunter")
    assert "wrong password" in str(err.value) and "hunter" not in str(err.value)
    with pytest.raises(ConfigError, match="is encrypted"):
        load_signing_key(p256, None)
    assert repr(load_signing_key(p256, b"hunter22")) == f"SigningKey(source='{p256}')"


def test_no_secret_in_any_output_the_store_or_the_registry(tmp_path: Path, registry_factory: RegistryFactory,
                                                           world: World) -> None:
    reg = registry_factory("plain")
    w = World(tmp=tmp_path, cache=tmp_path / "cache", registry=reg, k1=tmp_path / "leak", k2=world.k2)
    outputs: list[str] = []

    def run(*args: str | Path) -> None:
        proc = ocibuild(*args, "--debug", env=w.env())
        outputs.extend([proc.stdout, proc.stderr])

    run("keygen", w.k1)
    build = ocibuild("build", HELLO, "--base", "scratch", "--platform", "linux/amd64,linux/arm64",
                     "--output", w.ref("leak/app"), "--debug", env=w.env())
    outputs.extend([build.stdout, build.stderr])
    index = build.stdout.strip().splitlines()[-1]
    st = tmp_path / "statement.json"
    st.write_bytes(statement(PROVENANCE, index))
    run("sign", w.ref("leak/app"), "--key", f"{w.k1}.key", "--attestation", st)
    run("verify", w.ref("leak/app"), "--key", f"{w.k1}.pub")
    wrong = ocibuild("sign", w.ref("leak/app"), "--key", f"{w.k1}.key", "--debug", env=w.env(PASSWORD + "x"),
                     check=False)
    outputs.extend([wrong.stdout, wrong.stderr])
    assert "debug:" in "".join(outputs)  # --debug was on

    pem = Path(f"{w.k1}.key").read_bytes()
    key = serialization.load_pem_private_key(pem, PASSWORD.encode())
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    scalar = key.private_numbers().private_value  # type: ignore[union-attr]
    secrets = {
        "password": PASSWORD.encode(), "password (ascii part)": PASSWORD[3:].encode(),
        "wrong password": (PASSWORD + "x").encode(),
        "private key DER": der, "private key DER base64": base64.b64encode(der),
        "private scalar hex": f"{scalar:064x}".encode(), "private scalar decimal": str(scalar).encode(),
        "private scalar bytes": scalar.to_bytes(32, "big"),
    }
    secrets.update({f"encrypted PEM line {i}": line for i, line in enumerate(pem.splitlines()[1:-1])})
    haystacks = [("output", o.encode()) for o in outputs]
    for root in (w.cache, reg.data_dir):
        haystacks += [(str(p), p.read_bytes()) for p in root.rglob("*") if p.is_file()]
    assert len(haystacks) > 10
    for where, data in haystacks:
        for what, secret in secrets.items():
            assert secret not in data, f"{what} found in {where}"


# ---------------------------------------------------------------------------------------------------
# signing and verifying
# ---------------------------------------------------------------------------------------------------


def test_sign_and_verify_an_index_and_each_platform(world: World) -> None:
    push(world, "multi/app", platforms="linux/amd64,linux/arm64")
    subs = subjects(world, "multi/app")
    assert list(subs) == ["index", "linux/amd64", "linux/arm64/v8"]
    signed = ocibuild("sign", world.ref("multi/app"), "--key", f"{world.k1}.key", env=world.env())
    assert len(signed.stdout.splitlines()) == 3

    raw = Raw(world.registry)
    identity = f"{world.registry.host}/multi/app:v1"
    for digest in subs.values():
        body, media_type = raw.manifest("multi/app", sig_tag(digest))
        assert media_type == OCI_MANIFEST  # containers/image refuses any other type at this tag
        doc = json.loads(body)
        assert doc["mediaType"] == OCI_MANIFEST and len(doc["layers"]) == 1
        layer = doc["layers"][0]
        assert layer["mediaType"] == SIMPLE and set(layer["annotations"]) == {SIG_ANN}
        payload = raw.blob("multi/app", layer["digest"])
        assert json.loads(payload) == {
            "critical": {"identity": {"docker-reference": identity}, "image": {"docker-manifest-digest": digest},
                         "type": "cosign container image signature"},
            "optional": {"creator": json.loads(payload)["optional"]["creator"]}}
        assert json.loads(payload)["optional"]["creator"].startswith("ocibuild ")
        config = json.loads(raw.blob("multi/app", doc["config"]["digest"]))
        assert doc["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}

    ok = ocibuild("verify", world.ref("multi/app"), "--key", f"{world.k1}.pub", env=world.env())
    lines = ok.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["ok"] * 3
    for line, (label, digest) in zip(lines, subs.items(), strict=True):
        what = "index" if label == "index" else f"{label} manifest"
        assert f"signature of {what} {digest} verifies with {world.k1}.pub (identity {identity})" in line
    assert "verified 3 signatures and 0 attestations" in ok.stderr
    by_digest = ocibuild("verify", f"docker://{world.registry.host}/multi/app@{subs['index']}", "--key",
                         f"{world.k1}.pub", env=world.env())
    assert by_digest.stdout == ok.stdout
    as_json = json.loads(ocibuild("verify", world.ref("multi/app"), "--key", f"{world.k1}.pub", "--json",
                                  env=world.env()).stdout)
    assert as_json["ok"] is True and as_json["digest"] == subs["index"]
    assert [c["digest"] for c in as_json["checks"]] == list(subs.values())

    other = ocibuild("verify", world.ref("multi/app"), "--key", f"{world.k2}.pub", env=world.env(), check=False)
    line = one_error_line(other)
    assert line.startswith(f"ocibuild: error: signature of index {subs['index']} does not verify with "
                           f"{world.k2}.pub") and line.endswith("(and 2 more)")
    assert [x.split()[0] for x in other.stdout.splitlines()] == ["FAILED"] * 3
    assert f"signature of linux/arm64/v8 manifest {subs['linux/arm64/v8']} does not verify" in other.stdout


def test_resigning_is_idempotent_and_keeps_other_signatures(world: World) -> None:
    push(world, "resign/app")
    digest = subjects(world, "resign/app")["manifest"]
    raw, reg = Raw(world.registry), world.registry
    ocibuild("sign", world.ref("resign/app"), "--key", f"{world.k1}.key", env=world.env())
    first = raw.manifest("resign/app", sig_tag(digest))[0]
    mark = reg.mark()
    ocibuild("sign", world.ref("resign/app"), "--key", f"{world.k1}.key", env=world.env())
    assert raw.manifest("resign/app", sig_tag(digest))[0] == first  # deterministic: the same bytes
    assert reg.count("PUT", r"/manifests/", since=mark) == 0  # and nothing was rewritten

    ocibuild("sign", world.ref("resign/app"), "--key", f"{world.k2}.key", env=world.env(OTHER_PASSWORD))
    layers = raw.json("resign/app", sig_tag(digest))["layers"]
    assert len(layers) == 2 and layers[0] == json.loads(first)["layers"][0]  # k1's kept, k2's appended
    for key in (world.k1, world.k2):
        ocibuild("verify", world.ref("resign/app"), "--key", f"{key}.pub", env=world.env())

    # k1 signs again with another payload: its old signature is replaced, k2's stays
    ocibuild("sign", world.ref("resign/app"), "--key", f"{world.k1}.key", "-a", "team=payments", env=world.env())
    layers2 = raw.json("resign/app", sig_tag(digest))["layers"]
    assert len(layers2) == 2 and layers2[0] == layers[1]
    assert json.loads(raw.blob("resign/app", layers2[1]["digest"]))["optional"]["team"] == "payments"
    for key in (world.k1, world.k2):
        ocibuild("verify", world.ref("resign/app"), "--key", f"{key}.pub", env=world.env())


def test_a_signature_tag_replaced_by_another_keys_fails_naming_the_manifest(world: World) -> None:
    push(world, "replaced/app", platforms="linux/amd64,linux/arm64")
    subs = subjects(world, "replaced/app")
    raw = Raw(world.registry)
    ocibuild("sign", world.ref("replaced/app"), "--key", f"{world.k2}.key", env=world.env(OTHER_PASSWORD))
    k2_only = raw.manifest("replaced/app", sig_tag(subs["linux/amd64"]))[0]
    ocibuild("sign", world.ref("replaced/app"), "--key", f"{world.k1}.key", env=world.env())
    ocibuild("verify", world.ref("replaced/app"), "--key", f"{world.k1}.pub", env=world.env())

    raw.put_manifest("replaced/app", sig_tag(subs["linux/amd64"]), k2_only)  # someone with push access
    proc = ocibuild("verify", world.ref("replaced/app"), "--key", f"{world.k1}.pub", env=world.env(), check=False)
    line = one_error_line(proc)
    assert line.startswith(f"ocibuild: error: signature of linux/amd64 manifest {subs['linux/amd64']} does not "
                           f"verify with {world.k1}.pub")
    assert "(and" not in line
    assert [x.split()[0] for x in proc.stdout.splitlines()] == ["ok", "FAILED", "ok"]


def test_tampered_and_misdirected_payloads_fail(world: World) -> None:
    raw = Raw(world.registry)
    a = push(world, "tamper/app", tag="a")
    b = push(world, "tamper/app", tag="b", platforms="linux/arm64")
    assert a != b
    for tag in ("a", "b"):
        ocibuild("sign", world.ref("tamper/app", tag), "--key", f"{world.k1}.key", env=world.env())
    ok_b = raw.manifest("tamper/app", sig_tag(b))[0]

    # 1. the payload edited after signing (here: it names another repository), signature kept
    doc = json.loads(ok_b)
    payload = json.loads(raw.blob("tamper/app", doc["layers"][0]["digest"]))
    payload["critical"]["identity"]["docker-reference"] = f"{world.registry.host}/evil/app:b"
    forged = json.dumps(payload, separators=(",", ":")).encode()
    doc["layers"][0].update(digest=raw.put_blob("tamper/app", forged), size=len(forged))
    raw.put_manifest("tamper/app", sig_tag(b), json.dumps(doc).encode())
    line = one_error_line(ocibuild("verify", world.ref("tamper/app", "b"), "--key", f"{world.k1}.pub",
                                   env=world.env(), check=False))
    assert f"signature of manifest {b} does not verify with {world.k1}.pub" in line
    assert "none by this key matching its payload" in line

    # 2. a valid signature of another image's digest put at b's tag
    raw.put_manifest("tamper/app", sig_tag(b), raw.manifest("tamper/app", sig_tag(a))[0])
    line = one_error_line(ocibuild("verify", world.ref("tamper/app", "b"), "--key", f"{world.k1}.pub",
                                   env=world.env(), check=False))
    assert f"the payload signed by this key names {a}, not {b}" in line

    # 3. a valid signature of the same digest, but for another repository
    raw.put_manifest("tamper/app", sig_tag(b), ok_b)
    ocibuild("verify", world.ref("tamper/app", "b"), "--key", f"{world.k1}.pub", env=world.env())
    push(world, "tamper/copy", tag="b", platforms="linux/arm64")
    original = json.loads(ok_b)
    for d in [original["config"]["digest"], *(layer["digest"] for layer in original["layers"])]:
        raw.put_blob("tamper/copy", raw.blob("tamper/app", d))
    raw.put_manifest("tamper/copy", sig_tag(b), ok_b)
    line = one_error_line(ocibuild("verify", world.ref("tamper/copy", "b"), "--key", f"{world.k1}.pub",
                                   env=world.env(), check=False))
    assert (f"names repository '{world.registry.host}/tamper/app:b', not {world.registry.host}/tamper/copy"
            in line)

    # 4. no signature at all
    push(world, "tamper/unsigned")
    line = one_error_line(ocibuild("verify", world.ref("tamper/unsigned"), "--key", f"{world.k1}.pub",
                                   env=world.env(), check=False))
    assert "no signature at" in line and sig_tag(subjects(world, "tamper/unsigned")["manifest"]) in line


def test_attestations_are_signed_dsse_envelopes_checked_against_their_subject(world: World, tmp_path: Path) -> None:
    push(world, "att/app", platforms="linux/amd64,linux/arm64")
    subs = subjects(world, "att/app")
    amd, arm = subs["linux/amd64"], subs["linux/arm64/v8"]
    prov = tmp_path / "provenance.json"
    prov.write_bytes(statement(PROVENANCE, subs["index"], amd, arm))
    sbom = tmp_path / "sbom-amd64.json"
    sbom.write_bytes(statement(SPDX, amd, predicate={"spdxVersion": "SPDX-2.3"}))
    out = ocibuild("sign", world.ref("att/app"), "--key", f"{world.k1}.key", "--attestation", prov,
                   "--attestation", sbom, env=world.env()).stdout
    assert sum(line.startswith("attested") for line in out.splitlines()) == 4

    raw = Raw(world.registry)
    att = raw.json("att/app", att_tag(amd))
    assert [(layer["mediaType"], layer["annotations"]) for layer in att["layers"]] == [
        (DSSE, {"predicateType": PROVENANCE, SIG_ANN: ""}), (DSSE, {"predicateType": SPDX, SIG_ANN: ""})]
    envelope = json.loads(raw.blob("att/app", att["layers"][1]["digest"]))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert base64.b64decode(envelope["payload"]) == sbom.read_bytes()  # signed exactly as given
    # the DSSE signature checked by openssl over the PAE computed here, not by ocibuild
    pae = b"DSSEv1 %d %s %d %s" % (28, b"application/vnd.in-toto+json", len(sbom.read_bytes()), sbom.read_bytes())
    assert pae == dsse_pae("application/vnd.in-toto+json", sbom.read_bytes())
    assert cosign_policy.openssl_verifies(Path(f"{world.k1}.pub").read_bytes(),
                                          base64.b64decode(envelope["signatures"][0]["sig"]), pae)
    assert len(raw.json("att/app", att_tag(arm))["layers"]) == 1
    assert len(raw.json("att/app", att_tag(subs["index"]))["layers"]) == 1

    ok = ocibuild("verify", world.ref("att/app"), "--key", f"{world.k1}.pub", env=world.env())
    assert [line.split()[0] for line in ok.stdout.splitlines()] == ["ok"] * 7
    assert f"attestation {SPDX} of linux/amd64 manifest {amd} verifies with {world.k1}.pub" in ok.stdout
    assert "verified 3 signatures and 4 attestations" in ok.stderr

    # attaching again replaces this key's attestation of the same predicate type
    before = raw.manifest("att/app", att_tag(amd))[0]
    ocibuild("sign", world.ref("att/app"), "--key", f"{world.k1}.key", "--attestation", sbom, env=world.env())
    assert raw.manifest("att/app", att_tag(amd))[0] == before
    sbom.write_bytes(statement(SPDX, amd, predicate={"spdxVersion": "SPDX-2.3", "name": "v2"}))
    ocibuild("sign", world.ref("att/app"), "--key", f"{world.k1}.key", "--attestation", sbom, env=world.env())
    layers = raw.json("att/app", att_tag(amd))["layers"]
    assert [layer["annotations"]["predicateType"] for layer in layers] == [PROVENANCE, SPDX]
    assert base64.b64decode(json.loads(raw.blob("att/app", layers[1]["digest"]))["payload"]) == sbom.read_bytes()

    # a tampered statement (envelope payload changed, signature kept) fails, naming it
    good = raw.manifest("att/app", att_tag(amd))[0]
    doc = json.loads(good)
    env = json.loads(raw.blob("att/app", doc["layers"][1]["digest"]))
    env["payload"] = base64.b64encode(statement(SPDX, amd, predicate={"spdxVersion": "SPDX-2.3", "evil": 1})).decode()
    forged = json.dumps(env).encode()
    doc["layers"][1].update(digest=raw.put_blob("att/app", forged), size=len(forged))
    raw.put_manifest("att/app", att_tag(amd), json.dumps(doc).encode())
    line = one_error_line(ocibuild("verify", world.ref("att/app"), "--key", f"{world.k1}.pub", env=world.env(),
                                   check=False))
    assert line == (f"ocibuild: error: attestation {SPDX} of linux/amd64 manifest {amd} does not verify with "
                    f"{world.k1}.pub: no signature in its envelope is by this key")

    # a validly signed attestation of amd64 moved to arm64's tag: its subject does not match
    raw.put_manifest("att/app", att_tag(amd), good)
    raw.put_manifest("att/app", att_tag(arm), good)
    proc = ocibuild("verify", world.ref("att/app"), "--key", f"{world.k1}.pub", env=world.env(), check=False)
    # (its provenance names every manifest, so only the SBOM, which names amd64 alone, fails)
    assert one_error_line(proc) == (f"ocibuild: error: attestation {SPDX} of linux/arm64/v8 manifest {arm}: "
                                    f"subject does not match: the statement names {amd}, not {arm}")

    # a statement about none of the image's manifests is refused before anything is signed
    stray = tmp_path / "stray.json"
    stray.write_bytes(statement(SPDX, "sha256:" + "0" * 64))
    line = one_error_line(ocibuild("sign", world.ref("att/app"), "--key", f"{world.k1}.key", "--attestation",
                                   stray, env=world.env(), check=False))
    assert "are none of the manifests" in line


def test_sign_and_verify_over_tls_with_a_token_registry(world: World, token_registry: tuple[Registry, Any],
                                                        pki: Any) -> None:
    reg, _tokens = token_registry
    w = World(tmp=world.tmp, cache=world.cache, registry=reg, k1=world.k1, k2=world.k2)
    auth = ["--ca-file", str(pki.ca_cert), "--creds", f"{reg.user}:{reg.password}"]
    ocibuild("build", HELLO, "--base", "scratch", "--platform", "linux/amd64,linux/arm64", "--output",
             w.ref("tls/app"), *auth, env=w.env())
    ocibuild("sign", w.ref("tls/app"), "--key", f"{w.k1}.key", *auth, env=w.env())
    ok = ocibuild("verify", w.ref("tls/app"), "--key", f"{w.k1}.pub", *auth, env=w.env())
    assert [line.split()[0] for line in ok.stdout.splitlines()] == ["ok"] * 3
    # anonymous pulls are allowed by this token server: verification needs no push rights
    anon = ocibuild("verify", w.ref("tls/app"), "--key", f"{w.k1}.pub", "--ca-file", str(pki.ca_cert), env=w.env())
    assert anon.stdout == ok.stdout
    # signing again with the same key writes nothing, so it needs no push rights either; another key does
    ocibuild("sign", w.ref("tls/app"), "--key", f"{w.k1}.key", "--ca-file", str(pki.ca_cert), env=w.env())
    line = one_error_line(ocibuild("sign", w.ref("tls/app"), "--key", f"{w.k2}.key", "--ca-file", str(pki.ca_cert),
                                   env=w.env(OTHER_PASSWORD), check=False))
    assert "tls/app" in line and ("UNAUTHORIZED" in line or "DENIED" in line), line


# ---------------------------------------------------------------------------------------------------
# skopeo: containers/image finds our signatures (its acceptance is patched out on Debian 12)
# ---------------------------------------------------------------------------------------------------


def test_skopeo_with_a_sigstore_policy_finds_our_signatures(world: World, tmp_path: Path) -> None:
    host = world.registry.host
    push(world, "policy/unsigned")
    push(world, "policy/signed")
    push(world, "policy/index", platforms="linux/amd64,linux/arm64")
    for repo in ("policy/signed", "policy/index"):
        ocibuild("sign", world.ref(repo), "--key", f"{world.k1}.key", env=world.env())
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {host: [
        {"type": "sigstoreSigned", "keyPath": f"{world.k1}.pub"}]}}}))
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "test.yaml").write_text(f"docker:\n  {host}:\n    use-sigstore-attachments: true\n")

    def copy(repo: str) -> str:
        proc = skopeo("--policy", policy, "--registries.d", regd, "--debug", "copy", "--src-tls-verify=false",
                      world.ref(repo), f"oci:{tmp_path / repo.replace('/', '-')}:x", check=False)
        assert proc.returncode != 0, proc.stderr
        return proc.stderr

    unsigned = copy("policy/unsigned")
    assert "Source image rejected: A signature was required, but no signature exists" in unsigned

    for repo in ("policy/signed", "policy/index"):
        subs = subjects(world, repo)
        log = copy(repo)
        if "index" in subs:  # skopeo 1.9 checks the instance it copies (this machine's platform), not the index
            chosen = re.search(r"copying \(only\) instance (sha256:[0-9a-f]{64})", log)
            assert chosen and chosen.group(1) in list(subs.values())[1:], log
            checked = chosen.group(1)
        else:
            checked = subs["manifest"]
        payload_digest = Raw(world.registry).json(repo, sig_tag(checked))["layers"][0]["digest"]
        # it found our signature manifest and fetched our payload, then stopped where Debian's patch stops it
        assert f"Looking for sigstore attachments in {host}/{repo}:{sig_tag(checked)}" in log
        assert "Found a sigstore attachment manifest with 1 layers" in log
        assert f"Fetching sigstore attachment 1/1: {payload_digest}" in log
        assert "Source image rejected: Debian-local change: sigstore disabled" in log
        assert "no signature exists" not in log


# ---------------------------------------------------------------------------------------------------
# the accepting half: harness.cosign_policy, proven on cosign-made vectors first
# ---------------------------------------------------------------------------------------------------

_VECTORS = json.loads((VECTORS / "vectors.json").read_text())


@pytest.mark.parametrize("case", _VECTORS["cases"], ids=lambda c: c["name"])
def test_independent_verifier_proves_itself_on_signatures_made_by_other_tools(case: dict[str, str]) -> None:
    payload = (VECTORS / case["payload_file"]).read_bytes()
    signature = (VECTORS / case["signature_file"]).read_text().strip()
    key = cosign_policy.public_key_pem(VECTORS / case["key_file"])
    image = case["image"]
    digest = image.partition("@")[2]
    name = image.partition("@")[0]
    signed_ref = cosign_policy.read_payload(payload)[1]

    # accepted as containers/image accepts cosign signatures: signedIdentity matchRepository
    cosign_policy.accept(payload, signature, key, manifest_digest=digest, intended=image, rule="matchRepository")
    # the default rule refuses a repository-only identity (containers-policy.json(5): cosign signatures
    # "only contain a repository"), and accepts one that names the digest
    if "@" in signed_ref or ":" in signed_ref.rsplit("/", 1)[-1]:
        cosign_policy.accept(payload, signature, key, manifest_digest=digest, intended=image)
    else:
        with pytest.raises(cosign_policy.Rejected, match="identity"):
            cosign_policy.accept(payload, signature, key, manifest_digest=digest, intended=image)
    # another manifest, another repository
    with pytest.raises(cosign_policy.Rejected, match="digest"):
        cosign_policy.accept(payload, signature, key, manifest_digest="sha256:" + "1" * 64, intended=image,
                             rule="matchRepository")
    with pytest.raises(cosign_policy.Rejected, match="identity"):
        cosign_policy.accept(payload, signature, key, manifest_digest=digest, intended=name + "-other@" + digest,
                             rule="matchRepository")
    # another key
    if "other_key_file" in case:
        other = cosign_policy.public_key_pem(VECTORS / case["other_key_file"])
        with pytest.raises(cosign_policy.Rejected, match="cryptographic"):
            cosign_policy.accept(payload, signature, other, manifest_digest=digest, intended=image,
                                 rule="matchRepository")
    # a payload changed by one character, or a signature changed by one bit
    tampered = payload.replace(digest.encode(), digest[:-1].encode() + (b"0" if digest[-1] != "0" else b"1"))
    assert tampered != payload
    with pytest.raises(cosign_policy.Rejected, match="cryptographic"):
        cosign_policy.accept(tampered, signature, key, manifest_digest=digest, intended=image,
                             rule="matchRepository")
    raw_sig = bytearray(base64.b64decode(signature))
    raw_sig[len(raw_sig) // 2] ^= 1
    with pytest.raises(cosign_policy.Rejected, match="cryptographic"):
        cosign_policy.accept(payload, base64.b64encode(bytes(raw_sig)).decode(), key, manifest_digest=digest,
                             intended=image, rule="matchRepository")
    # ocibuild's own reading of the payload agrees
    assert parse_simple_signing(payload) == (digest, signed_ref)


def test_independent_verifier_refuses_valid_signatures_of_unacceptable_payloads() -> None:
    vectors = _VECTORS["valid_signatures_of_unacceptable_payloads"]
    key = cosign_policy.public_key_pem(VECTORS / vectors["key_file"])
    for case in vectors["cases"]:
        payload = case["payload"].encode()
        assert cosign_policy.openssl_verifies(key, base64.b64decode(case["signature"]), payload)
        with pytest.raises(cosign_policy.Rejected) as err:
            cosign_policy.accept(payload, case["signature"], key, manifest_digest="sha256:" + "a" * 64,
                                 intended="example.com/a@sha256:" + "a" * 64, rule="matchRepository")
        assert "cryptographic" not in str(err.value)
        with pytest.raises(ValueError):
            parse_simple_signing(payload)


def test_independent_verifier_accepts_ours_and_rejects_another_keys_and_tampered(world: World) -> None:
    push(world, "indep/app", platforms="linux/amd64,linux/arm64")
    push(world, "indep/unsigned")
    ocibuild("sign", world.ref("indep/app"), "--key", f"{world.k1}.key", env=world.env())
    subs = subjects(world, "indep/app")
    reg, http = world.registry, world.registry.session()
    k1 = Path(f"{world.k1}.pub").read_bytes()
    k2 = Path(f"{world.k2}.pub").read_bytes()
    check = lambda ref, key, **kw: cosign_policy.check_image(reg.url, "indep/app", ref, key, session=http,  # noqa: E731
                                                             host=reg.host, **kw)

    # pulled by tag under the default policy (matchRepoDigestOrExact), by digest, and with matchRepository
    identity = f"{reg.host}/indep/app:v1"
    assert check("v1", k1) == dict.fromkeys(subs.values(), identity)
    assert check(subs["index"], k1) == dict.fromkeys(subs.values(), identity)
    assert check("v1", k1, rule="matchRepository") == dict.fromkeys(subs.values(), identity)
    with pytest.raises(cosign_policy.Rejected, match="cryptographic signature verification failed"):
        check("v1", k2)
    with pytest.raises(cosign_policy.Rejected, match="no signature exists"):
        cosign_policy.check_image(reg.url, "indep/unsigned", "v1", k1, session=http, host=reg.host)

    # another key's signature beside ours: still accepted (one is enough), and accepted for that key
    ocibuild("sign", world.ref("indep/app"), "--key", f"{world.k2}.key", env=world.env(OTHER_PASSWORD))
    assert check("v1", k1) == check("v1", k2)

    # our payload tampered with (signature kept): rejected
    raw = Raw(reg)
    doc = raw.json("indep/app", sig_tag(subs["linux/amd64"]))
    for layer in doc["layers"]:
        payload = json.loads(raw.blob("indep/app", layer["digest"]))
        payload["optional"]["creator"] = "someone else"
        forged = json.dumps(payload).encode()
        layer.update(digest=raw.put_blob("indep/app", forged), size=len(forged))
    raw.put_manifest("indep/app", sig_tag(subs["linux/amd64"]), json.dumps(doc).encode())
    with pytest.raises(cosign_policy.Rejected, match="cryptographic signature verification failed"):
        check("v1", k1)
    proc = ocibuild("verify", world.ref("indep/app"), "--key", f"{world.k1}.pub", env=world.env(), check=False)
    assert f"signature of linux/amd64 manifest {subs['linux/amd64']} does not verify" in one_error_line(proc)


# containers/image's TestUntrustedSigstorePayloadUnmarshalJSON: payloads it refuses, and changes it allows
def _valid() -> dict[str, Any]:
    return {"critical": {"identity": {"docker-reference": "example.com/ns/app:1"},
                         "image": {"docker-manifest-digest": "sha256:" + "ab" * 32},
                         "type": "cosign container image signature"},
            "optional": {"creator": "someone", "timestamp": 1484683104}}


_BREAK = {
    "no critical": lambda v: v.pop("critical"),
    "no optional": lambda v: v.pop("optional"),
    "extra top-level field": lambda v: v.update(unexpected=1),
    "critical not an object": lambda v: v.update(critical=1),
    "optional not an object": lambda v: v.update(optional=1),
    "no type": lambda v: v["critical"].pop("type"),
    "no image": lambda v: v["critical"].pop("image"),
    "no identity": lambda v: v["critical"].pop("identity"),
    "extra critical field": lambda v: v["critical"].update(unexpected=1),
    "type not a string": lambda v: v["critical"].update(type=1),
    "another type": lambda v: v["critical"].update(type="unexpected"),
    "image not an object": lambda v: v["critical"].update(image=1),
    "no digest": lambda v: v["critical"]["image"].pop("docker-manifest-digest"),
    "extra image field": lambda v: v["critical"]["image"].update(unexpected=1),
    "digest not a string": lambda v: v["critical"]["image"].update({"docker-manifest-digest": 1}),
    "identity not an object": lambda v: v["critical"].update(identity=1),
    "no reference": lambda v: v["critical"]["identity"].pop("docker-reference"),
    "extra identity field": lambda v: v["critical"]["identity"].update(unexpected=1),
    "reference not a string": lambda v: v["critical"]["identity"].update({"docker-reference": 1}),
    "creator not a string": lambda v: v["optional"].update(creator=1),
    "timestamp a string": lambda v: v["optional"].update(timestamp="unexpected"),
    "timestamp fractional": lambda v: v["optional"].update(timestamp=0.5),
}


@pytest.mark.parametrize("name", sorted(_BREAK))
def test_both_payload_readers_refuse_what_containers_image_refuses(name: str) -> None:
    doc = _valid()
    _BREAK[name](doc)
    payload = json.dumps(doc).encode()
    with pytest.raises(ValueError):
        parse_simple_signing(payload)
    with pytest.raises(cosign_policy.Rejected):
        cosign_policy.read_payload(payload)


@pytest.mark.parametrize("payload", [
    json.dumps({**_valid(), "optional": {**_valid()["optional"], "unexpected": 1}}).encode(),
    json.dumps({**_valid(), "optional": None}).encode(),
    json.dumps({**_valid(), "optional": {}}).encode(),
], ids=["extra optional field", "optional null (cosign)", "optional empty"])
def test_both_payload_readers_accept_what_containers_image_accepts(payload: bytes) -> None:
    expected = ("sha256:" + "ab" * 32, "example.com/ns/app:1")
    assert parse_simple_signing(payload) == expected
    assert cosign_policy.read_payload(payload) == expected


def test_duplicate_keys_are_refused() -> None:
    text = json.dumps(_valid())
    dup = text.replace('"type":', '"type": "x", "type":', 1).encode()
    with pytest.raises(ValueError, match="duplicate"):
        parse_simple_signing(dup)
    with pytest.raises(cosign_policy.Rejected, match="duplicate"):
        cosign_policy.read_payload(dup)

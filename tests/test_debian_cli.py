"""Debian-package bases through the command line and the build file: `ocibuild base debian`, the default
base, `[base.debian]`, HTTPS from inside the image, and bad input (real Debian mirror)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from harness.cli import ocibuild
from harness.pki import PKI
from harness.registry import Registry
from harness.runtime import run_image
from harness.validate import oci_image_tool_validate, validate_layout

REPO = Path(__file__).resolve().parents[1]
HELLO = REPO / "examples" / "hello"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def deb_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deb-cache")


def python_project(tmp: Path, build_file: str = "") -> Path:
    p = tmp / "proj"
    p.mkdir()
    shutil.copy(HELLO / "hello.py", p / "hello.py")
    (p / "ocibuild.toml").write_text('entrypoint = ["python3", "/app/hello.py"]\n' + build_file)
    return p


def test_base_debian_command_two_platforms(tmp_path: Path, deb_cache: Path) -> None:
    out = tmp_path / "bases"
    ocibuild("base", "debian", "--suite", "trixie", "--packages", "python3,ca-certificates,libgomp1",
             "--platform", "linux/amd64,linux/arm64", "--output", f"oci:{out}:trixie", "--lock",
             tmp_path / "deb.lock", cache=deb_cache)
    validate_layout(out)
    oci_image_tool_validate(out, "trixie")
    lock = (tmp_path / "deb.lock").read_text()
    assert "python3.13" in lock and "sha256" in lock and "arm64" in lock
    script = ("import ssl, json, sqlite3, os; "
              "print(ssl.OPENSSL_VERSION.split()[0], sqlite3.sqlite_version_info[0], os.getuid())")
    for arch in ("amd64", "arm64"):
        run = run_image(out, "trixie", ["python3", "-c", script], arch=arch)
        assert run.returncode == 0, run.stderr
        assert run.stdout.split() == ["OpenSSL", "3", "65532"]  # runs as nonroot by default

    # same lock, another store, another day, no --suite (trixie is the default): the same digest
    again = ocibuild("base", "debian", "--packages", "python3,ca-certificates,libgomp1", "--platform",
                     "linux/amd64,linux/arm64", "--output", f"oci:{tmp_path / 'again'}:trixie", "--lock",
                     tmp_path / "deb.lock", cache=tmp_path / "other-cache")
    first = json.loads((out / "index.json").read_text())["manifests"][0]["digest"]
    assert again.stdout.strip() == first


def test_base_debian_archive_uses_source_date_epoch_like_build(tmp_path: Path, deb_cache: Path) -> None:
    """`base debian` publishes through the same sinks as `build`: SOURCE_DATE_EPOCH (1700000000 here)
    stamps the archive entries and the index's created annotation."""
    import tarfile

    archive = tmp_path / "base.tar"
    ocibuild("base", "debian", "--packages", "python3,ca-certificates,libgomp1", "--platform",
             "linux/amd64,linux/arm64", "--output", f"oci-archive:{archive}:trixie", "--lock",
             tmp_path / "deb.lock", cache=deb_cache)
    built = tmp_path / "app.tar"
    ocibuild("build", HELLO, "--base", "scratch", "--output", f"oci-archive:{built}:v1", cache=deb_cache)
    for path in (archive, built):
        with tarfile.open(path) as tar:
            assert {m.mtime for m in tar.getmembers()} == {1700000000}, path
    with tarfile.open(archive) as tar:
        top = json.loads(tar.extractfile("index.json").read())["manifests"][0]  # type: ignore[union-attr]
        assert top["mediaType"] == "application/vnd.oci.image.index.v1+json"
        index = json.loads(tar.extractfile(f"blobs/sha256/{top['digest'][7:]}").read())  # type: ignore[union-attr]
    assert index["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"


def test_default_base_is_built_from_debian_packages(tmp_path: Path, deb_cache: Path) -> None:
    project = python_project(tmp_path)
    out = tmp_path / "img"
    proc = ocibuild("build", project, "--output", f"oci:{out}:v1", cache=deb_cache)
    assert "debian packages (trixie: python3, ca-certificates, libstdc++6, libgomp1)" in proc.stderr
    run = run_image(out, "v1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "Hello from ocibuild: Python 3.13 on x86_64"


def test_https_verification_inside_the_image(tmp_path: Path, deb_cache: Path, tls_registry: Registry,
                                             pki: PKI) -> None:
    """The image's CA bundle is used for verification: a server signed by a CA the image does not
    trust is refused; given the test CA, the handshake succeeds (the registry then answers 401)."""
    project = python_project(tmp_path)
    shutil.copy(pki.ca_cert, project / "test-ca.crt")
    out = tmp_path / "img"
    ocibuild("build", project, "--output", f"oci:{out}:v1", cache=deb_cache)
    script = ("import ssl, sys, urllib.request, urllib.error\n"
              "ctx = ssl.create_default_context(cafile=sys.argv[2] or None)\n"
              "try:\n    urllib.request.urlopen(sys.argv[1], context=ctx, timeout=10)\n"
              "except urllib.error.HTTPError as e:\n    print('http', e.code)\n"
              "except urllib.error.URLError as e:\n    print('refused', 'CERTIFICATE_VERIFY_FAILED' in str(e))\n")
    url = f"https://{tls_registry.host}/v2/"
    trusted = run_image(out, "v1", ["python3", "-c", script, url, "/app/test-ca.crt"], host_network=True)
    assert trusted.stdout.strip() == "http 401", trusted.stderr
    default = run_image(out, "v1", ["python3", "-c", script, url, ""], host_network=True)
    assert default.stdout.strip() == "refused True", default.stderr
    bundle = run_image(out, "v1", ["python3", "-c", "print(open('/etc/ssl/certs/ca-certificates.crt').read()"
                                                    ".count('BEGIN CERTIFICATE'))"])
    assert int(bundle.stdout) > 100


def test_build_file_debian_table_with_lock(tmp_path: Path, deb_cache: Path) -> None:
    """A suite other than the default (bookworm, Python 3.11) named in the table, with a lock."""
    project = python_project(tmp_path, '[base.debian]\nsuite = "bookworm"\npackages = ["python3"]\n'
                                       'architectures = ["amd64"]\nlock = "debian.lock"\n')
    first = ocibuild("build", project, "--output", f"oci:{tmp_path / 'o1'}:t", cache=deb_cache)
    assert (project / "debian.lock").is_file()
    second = ocibuild("build", project, "--output", f"oci:{tmp_path / 'o2'}:t", cache=tmp_path / "fresh")
    assert first.stdout == second.stdout
    bad = ocibuild("build", project, "--platform", "linux/arm64", "--output", f"oci:{tmp_path / 'o3'}:t",
                   cache=deb_cache, check=False)
    assert bad.returncode == 1 and "configured for linux/amd64, not linux/arm64/v8" in bad.stderr


@pytest.mark.parametrize(("args", "fragments"), [
    (["--packages", "python3,ocibuild-no-such-package"], ("ocibuild-no-such-package",)),
    (["--mirror", "http://127.0.0.1:9/debian"], ("127.0.0.1:9",)),
    (["--platform", "linux/sparc9"], ("unknown architecture",)),
])
def test_base_debian_bad_input(tmp_path: Path, args: list[str], fragments: tuple[str, ...]) -> None:
    cache = tmp_path / "cache"
    proc = ocibuild("base", "debian", *args, "--output", f"oci:{tmp_path / 'out'}:t", cache=cache, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ocibuild: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert not (tmp_path / "out").exists()
    blobs = cache / "blobs" / "sha256"
    assert not blobs.exists() or not any(p.name.endswith(".deb") for p in blobs.iterdir())


def test_debian_table_errors(tmp_path: Path) -> None:
    project = python_project(tmp_path, '[base.debian]\nsuit = "bookworm"\n')
    proc = ocibuild("build", project, "--output", f"oci:{tmp_path / 'o'}:t", cache=tmp_path / "c", check=False)
    assert proc.returncode == 1 and "unknown key 'suit'; did you mean 'suite'?" in proc.stderr

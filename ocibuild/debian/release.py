"""The signed root of a Debian suite: ``InRelease`` (or ``Release`` + ``Release.gpg``) checked with
``gpgv`` against the archive keyring, and the sha256 list of index files it vouches for."""

from __future__ import annotations

import datetime
import email.utils
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SignatureError, SourceError
from .control import iter_stanzas
from .mirror import Fetcher, NotFound

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")




@dataclass(frozen=True, kw_only=True, slots=True)
class Release:
    """A parsed ``Release`` file: identity plus ``path -> (sha256, size)`` of every index."""

    suite: str
    codename: str
    version: str
    date: str
    valid_until: str
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    files: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    signed: bool = False

    @classmethod
    def parse(cls, text: str, *, signed: bool) -> Release:
        stanzas = list(iter_stanzas(text))
        if not stanzas:
            raise SourceError("the Release file is empty")
        st = stanzas[0]
        files: dict[str, tuple[str, int]] = {}
        for line in st.get("SHA256", "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                files[parts[2]] = (parts[0].lower(), int(parts[1]))
        return cls(suite=st.get("Suite", ""), codename=st.get("Codename", ""), version=st.get("Version", ""),
                   date=st.get("Date", ""), valid_until=st.get("Valid-Until", ""),
                   architectures=tuple(st.get("Architectures", "").split()),
                   components=tuple(st.get("Components", "").split()), files=files, signed=signed)


def _strip_clearsign(text: str) -> str:
    """The body of a clear-signed message without checking it (only used with allow_unsigned)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        return text
    try:
        start = lines.index("") + 1
    except ValueError:
        return ""
    body: list[str] = []
    for line in lines[start:]:
        if line.startswith("-----BEGIN PGP SIGNATURE-----"):
            break
        body.append(line[2:] if line.startswith("- ") else line)
    return "\n".join(body) + "\n"


def gpgv(keyring: Path, signed: bytes, detached: bytes | None = None) -> str:
    """Verify with ``gpgv`` and return the signed text (for a clear-signed message: only what the
    signature covers). Raises ``SignatureError`` if gpgv is missing or the signature is not good."""
    exe = shutil.which("gpgv")
    if exe is None:
        raise SignatureError("gpgv is not installed, so the Debian release signature cannot be checked; "
                             "install gpgv (apt-get install gpgv) or pass allow_unsigned=True")
    if not keyring.is_file():
        raise SignatureError(f"keyring {keyring} does not exist; install debian-archive-keyring, pass another "
                             "keyring, or pass allow_unsigned=True")
    with tempfile.TemporaryDirectory(prefix="ocibuild-gpgv-") as td:
        tmp = Path(td)
        data = tmp / "data"
        data.write_bytes(signed)
        if detached is None:
            out = tmp / "out"
            args = ["--output", str(out), str(data)]
        else:
            sig = tmp / "sig"
            sig.write_bytes(detached)
            args = [str(sig), str(data)]
        proc = subprocess.run([exe, "--status-fd", "1", "--homedir", td, "--keyring", str(keyring.absolute()),
                               *args], capture_output=True, timeout=60, check=False)
        status = proc.stdout.decode(errors="replace")
        if proc.returncode != 0 or "[GNUPG:] VALIDSIG" not in status:
            detail = proc.stderr.decode(errors="replace").strip().splitlines()
            reason = "; ".join(detail[-3:]) or f"gpgv exit {proc.returncode}"
            raise SignatureError(f"bad or missing signature: {reason}")
        text = (out.read_bytes() if detached is None else signed).decode("utf-8", errors="replace")
    return text


def fetch_release(fetcher: Fetcher, suite: str, *, keyring: Path | None = None,
                  allow_unsigned: bool = False) -> tuple[Release, bytes]:
    """Fetch and verify ``dists/<suite>/InRelease`` (falling back to ``Release`` + ``Release.gpg``).
    Returns the release and the raw bytes that were fetched. An unverifiable release is an error unless
    ``allow_unsigned`` (then its hashes are still used to check every index)."""
    keyring = keyring or DEFAULT_KEYRING
    base = f"dists/{suite}"
    detached: bytes | None = None
    try:
        raw = fetcher.read(f"{base}/InRelease")
    except NotFound:
        try:
            raw = fetcher.read(f"{base}/Release")
        except NotFound:
            raise SourceError(f"suite {suite!r} not found on {fetcher.mirror} (no dists/{suite}/InRelease or "
                              "Release); check the suite name and the mirror URL") from None
        try:
            detached = fetcher.read(f"{base}/Release.gpg")
        except NotFound:
            detached = b""
    try:
        if detached == b"":
            raise SignatureError(f"{fetcher.url(base + '/Release')} has no Release.gpg signature")
        text = gpgv(keyring, raw, detached)
        signed = True
    except SignatureError as exc:
        if not allow_unsigned:
            raise SignatureError(
                f"cannot verify {fetcher.url(base)}/{'Release' if detached is not None else 'InRelease'} against "
                f"{keyring}: {exc}. The mirror may be tampered with or the keyring outdated; pass "
                "allow_unsigned=True (--allow-unsigned) only for a mirror you trust") from None
        text = raw.decode("utf-8", errors="replace")
        text = _strip_clearsign(text) if detached is None else text
        signed = False
    release = Release.parse(text, signed=signed)
    if suite not in (release.suite, release.codename):
        raise SourceError(f"{fetcher.url(base)} describes suite {release.suite!r} ({release.codename!r}), not "
                          f"{suite!r}; the mirror is misconfigured or serving a replayed file")
    if release.valid_until and not allow_unsigned and _expired(release.valid_until):
        raise SignatureError(f"{fetcher.url(base)} expired on {release.valid_until} (Valid-Until): the mirror is "
                             "stale or replaying an old release; use an up-to-date mirror (or allow_unsigned=True)")
    return release, raw


def _expired(valid_until: str) -> bool:
    try:
        until = email.utils.parsedate_to_datetime(valid_until)
    except (TypeError, ValueError):
        return True
    if until.tzinfo is None:
        until = until.replace(tzinfo=datetime.UTC)
    return until < datetime.datetime.now(datetime.UTC)

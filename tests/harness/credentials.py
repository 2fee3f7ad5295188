"""Credential files and helpers for registry clients: docker ``config.json``, containers
``auth.json``, ``docker-credential-*`` helper scripts that record their calls, htpasswd lines."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from .proc import run

DEFAULT_USER = "testuser"
DEFAULT_PASSWORD = "testpass"


def htpasswd_line(user: str, password: str) -> str:
    """bcrypt htpasswd line (the only hash distribution accepts) via ``htpasswd -Bbn``."""
    p = run(["htpasswd", "-Bbn", user, password], timeout=30, text=True, what="htpasswd")
    return p.stdout.strip() + "\n"



def _auth_entry(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


def docker_config(directory: Path, registry_host: str, user: str | None, password: str | None, *,
                  cred_helpers: dict[str, str] | None = None, creds_store: str | None = None) -> Path:
    """Write ``DIR/config.json`` (use with ``DOCKER_CONFIG=DIR``): ``auths.<host>.auth`` =
    base64(user:pass) when ``user`` is given, plus optional ``credHelpers`` / ``credsStore``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {"auths": {}}
    if user is not None and password is not None:
        cfg["auths"][registry_host] = _auth_entry(user, password)
    if cred_helpers:
        cfg["credHelpers"] = cred_helpers
    if creds_store:
        cfg["credsStore"] = creds_store
    path = d / "config.json"
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    path.chmod(0o600)
    return path


def containers_auth(directory: Path, host: str, user: str, password: str) -> Path:
    """Write ``DIR/auth.json`` (containers-auth.json(5): same ``auths`` format; ``REGISTRY_AUTH_FILE``)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "auth.json"
    path.write_text(json.dumps({"auths": {host: _auth_entry(user, password)}}, indent=2) + "\n")
    path.chmod(0o600)
    return path


_HELPER = r'''#!{python}
"""docker-credential-{name}: test credential helper (get/store/erase/list), store = {store}"""
import json, sys, time
from pathlib import Path

STORE = Path({store!r})
CALLS = Path({calls!r})
NOT_FOUND = "credentials not found in native keychain"


def norm(url):
    url = url.strip()
    for p in ("https://", "http://"):
        if url.startswith(p):
            url = url[len(p):]
    return url.split("/", 1)[0]


def load():
    return json.loads(STORE.read_text()) if STORE.exists() else {{}}


def save(d):
    STORE.write_text(json.dumps(d, indent=2))


def main():
    action = sys.argv[1] if len(sys.argv) > 1 else ""
    data = sys.stdin.read()
    with CALLS.open("a") as f:
        f.write(json.dumps({{"action": action, "input": data.strip() if action != "store" else "<redacted>",
                            "time": time.time()}}) + "\n")
    creds = load()
    if action == "get":
        key = norm(data)
        for url, c in creds.items():
            if norm(url) == key:
                print(json.dumps({{"ServerURL": url, "Username": c["Username"], "Secret": c["Secret"]}}))
                return 0
        print(NOT_FOUND)
        return 1
    if action == "store":
        d = json.loads(data)
        creds[d["ServerURL"]] = {{"Username": d["Username"], "Secret": d["Secret"]}}
        save(creds)
        return 0
    if action == "erase":
        key = norm(data)
        hit = [u for u in creds if norm(u) == key]
        if not hit:
            print(NOT_FOUND)
            return 1
        for u in hit:
            del creds[u]
        save(creds)
        return 0
    if action == "list":
        print(json.dumps({{u: c["Username"] for u, c in creds.items()}}))
        return 0
    print("unknown action: " + action, file=sys.stderr)
    return 2


sys.exit(main())
'''


def credential_helper(bin_dir: Path, name: str, host: str | None, user: str | None = None,
                      password: str | None = None) -> Path:
    """Write an executable ``BIN_DIR/docker-credential-NAME`` implementing get/store/erase/list.

    Credentials live in ``BIN_DIR/docker-credential-NAME.json`` ({server: {Username, Secret}}), seeded
    with ``host`` -> user/password when given. Server URLs match after dropping scheme and path, so
    ``https://127.0.0.1:5000/v2/`` finds ``127.0.0.1:5000``. Unknown server: prints
    ``credentials not found in native keychain``, exit 1. Each call appends
    ``{"action", "input", "time"}`` to ``BIN_DIR/docker-credential-NAME.calls.jsonl`` (store input
    redacted). Put BIN_DIR first on PATH for the client under test."""
    d = Path(bin_dir)
    d.mkdir(parents=True, exist_ok=True)
    script = d / f"docker-credential-{name}"
    store = d / f"docker-credential-{name}.json"
    calls = d / f"docker-credential-{name}.calls.jsonl"
    seed: dict[str, dict[str, str]] = {}
    if host is not None and user is not None and password is not None:
        seed[host] = {"Username": user, "Secret": password}
    store.write_text(json.dumps(seed, indent=2))
    store.chmod(0o600)
    script.write_text(_HELPER.format(python=sys.executable, name=name, store=str(store), calls=str(calls)))
    script.chmod(0o755)
    return script


def credential_helper_calls(script: Path) -> list[dict[str, Any]]:
    """The recorded invocations of a :func:`credential_helper` script."""
    calls = Path(f"{script}.calls.jsonl")
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]

"""Credential sources and challenge parsing (the registry round trips are in test_registry.py)."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from ocibuild.errors import ConfigError
from ocibuild.registry import AuthFile, Credentials, default_credentials, store_login
from ocibuild.registry.auth import parse_challenge


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "scheme", "params"), [
    ('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"',
     "bearer", {"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull"}),
    ('Bearer realm="https://t/token",service="s",scope="repository:x:pull,push"', "bearer",
     {"realm": "https://t/token", "service": "s", "scope": "repository:x:pull,push"}),
    ('Basic realm="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ("Bearer realm=https://t/token, service=s", "bearer", {"realm": "https://t/token", "service": "s"}),
])
def test_parse_challenge(header: str, scheme: str, params: dict[str, str]) -> None:
    c = parse_challenge(header)
    assert c is not None and c.scheme == scheme and dict(c.params) == params


def test_credentials_never_show_secrets() -> None:
    c = Credentials(username="u", password="hunter2", identity_token="tok")
    assert "hunter2" not in repr(c) and "tok" not in repr(c)
    assert Credentials.parse("user:pa:ss", "--creds").password == "pa:ss"
    with pytest.raises(ConfigError, match="USER:PASSWORD"):
        Credentials.parse("user", "--creds")


def test_docker_config_auths_and_identity_token(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {
        "https://reg.example:5000": {"auth": _b64("alice:s3cret")},
        "other.example": {"identitytoken": "refresh-me"},
        "https://index.docker.io/v1/": {"auth": _b64("hub:pw")},
    }}))
    f = AuthFile(cfg, "docker config")
    alice = f.get("reg.example:5000")
    assert alice is not None and alice.basic == ("alice", "s3cret")
    other = f.get("other.example")
    assert other is not None and other.identity_token == "refresh-me"
    hub = f.get("docker.io")
    assert hub is not None and hub.username == "hub"
    assert f.get("unknown.example") is None
    assert AuthFile(tmp_path / "missing.json", "x").get("reg.example:5000") is None


def test_bad_auth_entry_is_a_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"r.example": {"auth": "!!!notbase64"}}}))
    with pytest.raises(ConfigError, match="not base64"):
        AuthFile(cfg, "docker config").get("r.example")


def _helper(bin_dir: Path, name: str, host: str) -> None:
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(f"""#!/bin/sh
input=$(cat)
if [ "$1" = get ] && [ "$input" = "{host}" ]; then
  echo '{{"ServerURL": "{host}", "Username": "helperuser", "Secret": "helperpass"}}'
elif [ "$1" = store ]; then
  printf '%s' "$input" > "{bin_dir}/stored.json"
else
  echo "credentials not found in native keychain"; exit 1
fi
""")
    script.chmod(0o755)


def test_cred_helpers_and_creds_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _helper(tmp_path, "test", "reg.example")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"credHelpers": {"reg.example": "test"}}))
    found = AuthFile(cfg, "docker config").get("reg.example")
    assert found is not None and found.basic == ("helperuser", "helperpass")
    cfg.write_text(json.dumps({"credsStore": "test", "auths": {"fallback.example": {"auth": _b64("f:b")}}}))
    assert AuthFile(cfg, "docker config").get("nothere.example") is None
    fallback = AuthFile(cfg, "docker config").get("fallback.example")
    assert fallback is not None and fallback.username == "f"


def test_default_chain_order(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {"r": {"auth": _b64("docker:1")}}}))
    (tmp_path / "auth.json").write_text(json.dumps({"auths": {"r": {"auth": _b64("podman:2")}}}))
    env = {"DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    found = default_credentials(environ=env).get("r")
    assert found is not None and found.username == "podman"
    with_env = {**env, "OCIBUILD_REGISTRY_USERNAME": "env", "OCIBUILD_REGISTRY_PASSWORD": "3"}
    found = default_credentials(environ=with_env).get("r")
    assert found is not None and found.basic == ("env", "3")
    only_docker = default_credentials(environ={"DOCKER_CONFIG": str(tmp_path / "docker"),
                                               "XDG_CONFIG_HOME": str(tmp_path / "none")}).get("r")
    assert only_docker is not None and only_docker.username == "docker"


def test_store_login_writes_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path / "d")}
    where = store_login("127.0.0.1:5000", Credentials(username="u", password="p"), env)
    cfg = tmp_path / "d" / "config.json"
    assert where == str(cfg) and stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert json.loads(cfg.read_text())["auths"]["127.0.0.1:5000"]["auth"] == _b64("u:p")
    found = AuthFile(cfg, "docker config").get("127.0.0.1:5000")
    assert found is not None and found.basic == ("u", "p")
    # with a credsStore, the helper stores it instead
    _helper(tmp_path, "test", "x")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    cfg.write_text(json.dumps({"credsStore": "test"}))
    assert "docker-credential-test" in store_login("127.0.0.1:5000", Credentials(username="u", password="p"), env)
    assert json.loads((tmp_path / "stored.json").read_text()) == {"ServerURL": "127.0.0.1:5000", "Username": "u",
                                                                  "Secret": "p"}

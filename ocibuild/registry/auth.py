"""Registry credentials: where they come from (explicit, environment, containers auth.json, docker
config.json with credential helpers) and the ``WWW-Authenticate`` challenge grammar.

Secrets never appear in ``repr``, messages or logs.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError, RegistryError

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")


@dataclass(frozen=True, kw_only=True, slots=True)
class Credentials:
    """A username and password, or an identity (refresh) token. ``repr`` never shows secrets."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    source: str = ""  # where they came from, for messages ("docker config.json", "--creds", ...)

    @classmethod
    def parse(cls, text: str, source: str) -> Credentials:
        """``USER:PASSWORD`` (the password may contain ':')."""
        user, sep, password = text.partition(":")
        if not sep or not user:
            raise ConfigError(f"{source}: expected USER:PASSWORD")
        return cls(username=user, password=password, source=source)

    @property
    def basic(self) -> tuple[str, str]:
        return (self.username, self.password)


class CredentialProvider(Protocol):
    """Looks up credentials for a registry host (``host[:port]``); ``None`` means anonymous."""

    def get(self, registry: str) -> Credentials | None: ...


def _keys(registry: str) -> list[str]:
    if registry in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        return list(DOCKER_HUB_KEYS)
    return [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"]


def _lookup(table: Mapping[str, object], registry: str) -> object | None:
    for key in _keys(registry):
        if key in table:
            return table[key]
    return None


def _decode_auths_entry(entry: object, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("identitytoken"):
        return Credentials(username=str(entry.get("username", "")), identity_token=str(entry["identitytoken"]),
                           source=source)
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"{source}: an 'auth' entry is not base64 of USER:PASSWORD; log in again") from None
        return Credentials(username=user, password=password, source=source)
    if entry.get("username") and entry.get("password"):
        return Credentials(username=str(entry["username"]), password=str(entry["password"]), source=source)
    return None


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read credentials file {path}: {exc}") from None
    return data if isinstance(data, dict) else None


def run_helper(helper: str, action: str, payload: str) -> str:
    """Run ``docker-credential-<helper> <action>`` with ``payload`` on stdin; return its stdout."""
    exe = shutil.which(f"docker-credential-{helper}")
    if exe is None:
        raise RegistryError(
            f"credential helper docker-credential-{helper} (named in your docker config.json) is not on PATH; "
            "install it or remove it from the config"
        )
    proc = subprocess.run([exe, action], input=payload, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        message = (proc.stdout + proc.stderr).strip()
        if "credentials not found" in message.lower():
            raise LookupError(message)
        raise RegistryError(f"credential helper docker-credential-{helper} {action} failed: {message[:200]}")
    return proc.stdout


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    """The same credentials for every registry (or only for ``registries`` if given)."""

    credentials: Credentials
    registries: tuple[str, ...] = ()

    def get(self, registry: str) -> Credentials | None:
        if self.registries and registry not in self.registries:
            return None
        return self.credentials


@dataclass(frozen=True, slots=True)
class AuthFile:
    """A docker ``config.json`` or a containers ``auth.json``: ``auths``, ``credHelpers``, ``credsStore``."""

    path: Path
    label: str

    def get(self, registry: str) -> Credentials | None:
        data = _read_json(self.path)
        if data is None:
            return None
        helpers = data.get("credHelpers")
        helper = _lookup(helpers, registry) if isinstance(helpers, dict) else None
        if helper is None and data.get("credsStore"):
            helper = data["credsStore"]
        if helper is not None:
            found = self._from_helper(str(helper), registry)
            if found is not None:
                return found
        auths = data.get("auths")
        entry = _lookup(auths, registry) if isinstance(auths, dict) else None
        return _decode_auths_entry(entry, f"{self.label} {self.path}")

    def _from_helper(self, helper: str, registry: str) -> Credentials | None:
        for key in _keys(registry)[:2]:
            try:
                out = json.loads(run_helper(helper, "get", key))
            except LookupError:
                continue
            except ValueError:
                raise RegistryError(f"credential helper docker-credential-{helper} returned invalid JSON") from None
            user, secret = str(out.get("Username", "")), str(out.get("Secret", ""))
            source = f"credential helper docker-credential-{helper}"
            if user == "<token>":
                return Credentials(identity_token=secret, source=source)
            return Credentials(username=user, password=secret, source=source)
        return None


@dataclass(frozen=True, slots=True)
class ChainedCredentials:
    """The first provider that knows the registry wins."""

    providers: tuple[CredentialProvider, ...]

    def get(self, registry: str) -> Credentials | None:
        for provider in self.providers:
            found = provider.get(registry)
            if found is not None:
                return found
        return None


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    env = environ if environ is not None else os.environ
    base = Path(env["DOCKER_CONFIG"]) if env.get("DOCKER_CONFIG") else Path.home() / ".docker"
    return base / "config.json"


def containers_auth_paths(environ: Mapping[str, str] | None = None) -> list[Path]:
    env = environ if environ is not None else os.environ
    if env.get("REGISTRY_AUTH_FILE"):
        return [Path(env["REGISTRY_AUTH_FILE"])]
    paths = []
    if env.get("XDG_RUNTIME_DIR"):
        paths.append(Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    config_home = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    paths.append(config_home / "containers" / "auth.json")
    return paths


def default_credentials(explicit: Iterable[CredentialProvider] = (),
                        environ: Mapping[str, str] | None = None) -> CredentialProvider:
    """Explicit providers, then ``OCIBUILD_REGISTRY_USERNAME``/``_PASSWORD``, then the containers
    auth.json files, then docker's config.json (with its credential helpers)."""
    env = environ if environ is not None else os.environ
    providers: list[CredentialProvider] = list(explicit)
    if env.get("OCIBUILD_REGISTRY_USERNAME"):
        providers.append(StaticCredentials(Credentials(
            username=env["OCIBUILD_REGISTRY_USERNAME"], password=env.get("OCIBUILD_REGISTRY_PASSWORD", ""),
            source="OCIBUILD_REGISTRY_USERNAME/OCIBUILD_REGISTRY_PASSWORD")))
    providers += [AuthFile(p, "containers auth file") for p in containers_auth_paths(env)]
    providers.append(AuthFile(docker_config_path(env), "docker config"))
    return ChainedCredentials(tuple(providers))


# --- WWW-Authenticate -------------------------------------------------------------------------------

_PARAM = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True, kw_only=True, slots=True)
class Challenge:
    scheme: str  # "bearer" or "basic"
    params: Mapping[str, str]

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic realm=...``)."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        value = m.group(2) if m.group(2) is not None else (m.group(3) or "")
        params[m.group(1).lower()] = value.replace('\\"', '"')
    return Challenge(scheme=scheme.lower(), params=params)


def scope_for(repository: str, actions: Sequence[str]) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def store_login(registry: str, credentials: Credentials, environ: Mapping[str, str] | None = None) -> str:
    """Save credentials the way ``docker login`` does: through the config's credsStore / credHelpers
    helper if it names one, else base64 in ``auths``. Returns where they went."""
    from ..store import atomic_write_bytes

    path = docker_config_path(environ)
    data = _read_json(path) or {}
    helpers = data.get("credHelpers")
    helper = _lookup(helpers, registry) if isinstance(helpers, dict) else None
    helper = helper or data.get("credsStore")
    key = "https://index.docker.io/v1/" if registry in DOCKER_HUB_KEYS else registry
    if helper:
        payload = json.dumps({"ServerURL": key, "Username": credentials.username, "Secret": credentials.password})
        run_helper(str(helper), "store", payload)
        return f"credential helper docker-credential-{helper}"
    auths = data.setdefault("auths", {})
    if not isinstance(auths, dict):
        raise ConfigError(f"{path}: 'auths' is not an object; fix the file")
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    auths[key] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write_bytes(path, (json.dumps(data, indent="\t") + "\n").encode())
    os.chmod(path, 0o600)
    return str(path)

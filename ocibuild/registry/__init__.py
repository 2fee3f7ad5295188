"""Registry access: the client (pull and push on a ``Repository``), its transport (session, auth, TLS,
retries, error messages, origin rules for credentials), the deadlines under it (``watchdog``) and
credential sources."""

from .auth import (
    AuthFile,
    ChainedCredentials,
    CredentialProvider,
    Credentials,
    StaticCredentials,
    default_credentials,
    store_login,
)
from .client import RegistryClient
from .known import KnownBlobs
from .tls import TLSConfig
from .transport import Repository, RetryPolicy, Transport, default_session

__all__ = [
    "AuthFile",
    "ChainedCredentials",
    "CredentialProvider",
    "Credentials",
    "KnownBlobs",
    "RegistryClient",
    "Repository",
    "RetryPolicy",
    "StaticCredentials",
    "TLSConfig",
    "Transport",
    "default_credentials",
    "default_session",
    "store_login",
]

"""Registry access: the client (pull, push, auth, TLS, retries) and credential sources."""

from .auth import (
    AuthFile,
    ChainedCredentials,
    CredentialProvider,
    Credentials,
    StaticCredentials,
    default_credentials,
    store_login,
)
from .client import RegistryClient, RetryPolicy
from .tls import TLSConfig

__all__ = [
    "AuthFile",
    "ChainedCredentials",
    "CredentialProvider",
    "Credentials",
    "RegistryClient",
    "RetryPolicy",
    "StaticCredentials",
    "TLSConfig",
    "default_credentials",
    "store_login",
]

"""Docker-style image references (``[registry/]repository[:tag][@digest]``).

Follows the grammar and normalisation of github.com/distribution/reference: a missing registry
means ``docker.io``, single-component Docker Hub names get a ``library/`` prefix, and a reference
with neither tag nor digest means tag ``latest``. Standard library only, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .document import SpecError

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255
TAG_LENGTH_MAX = 128
_TEXT_LENGTH_MAX = 1024  # name, tag and digest together are far shorter; bounds the regex work

_LEGACY_REGISTRY = "index.docker.io"
_OFFICIAL_PREFIX = "library/"

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_DOMAIN_COMPONENT = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_REGISTRY = re.compile(
    rf"(?P<host>{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]+))?"
)
_IMAGE_ID = re.compile(r"[a-f0-9]{64}")
_LOOPBACK_V4 = re.compile(r"127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_LOWER_HEX = re.compile(r"[a-f0-9]+")

_EXAMPLE = "'busybox', 'ubuntu:22.04', 'ghcr.io/org/app:1.0' or 'localhost:5000/app@sha256:<64 hex>'"
_EXAMPLE_DIGEST = "'app@sha256:<64 lowercase hex digits>'"
_EXAMPLE_TAG = "'app:1.0'"
_EXAMPLE_REGISTRY = "'registry.example.com:5000/team/app'"
_EXAMPLE_PATH = "'my-org/my_app.v2'"


class _Problem(Exception):
    """What is wrong with a reference, and an example of a valid form (internal)."""

    def __init__(self, what: str, example: str) -> None:
        super().__init__(what)
        self.what = what
        self.example = example

    def error(self, text: str) -> SpecError:
        shown = text if isinstance(text, str) else repr(text)
        shown = shown if len(shown) <= 300 else shown[:300] + "..."
        return SpecError(f"invalid image reference {shown!r}: {self.what} (e.g. {self.example})")


@dataclass(frozen=True, kw_only=True, slots=True)
class Reference:
    """A normalised image reference such as ``docker.io/library/busybox:latest``.

    Build one with :meth:`parse`; direct construction validates the fields and applies the same
    normalisation (``index.docker.io`` → ``docker.io``, ``library/`` prefix, default tag).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        registry = DEFAULT_REGISTRY if self.registry == _LEGACY_REGISTRY else self.registry
        repository = self.repository
        if registry == DEFAULT_REGISTRY and repository and "/" not in repository:
            repository = _OFFICIAL_PREFIX + repository
        tag = DEFAULT_TAG if self.tag is None and self.digest is None else self.tag
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "repository", repository)
        object.__setattr__(self, "tag", tag)
        try:
            _check(registry, repository, tag, self.digest)
        except _Problem as problem:
            raise problem.error(_format(registry, repository, tag, self.digest)) from None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise a reference; raise ``SpecError`` (a ``ValueError``) quoting ``text`` if it
        is invalid.

        >>> str(Reference.parse("busybox"))
        'docker.io/library/busybox:latest'
        >>> Reference.parse("localhost:5000/a/b:c").registry
        'localhost:5000'
        """
        try:
            registry, repository, tag, digest = _split(text)
            if registry == _LEGACY_REGISTRY:
                registry = DEFAULT_REGISTRY
            if registry == DEFAULT_REGISTRY and "/" not in repository:
                repository = _OFFICIAL_PREFIX + repository
            _check(registry, repository, tag, digest)
        except _Problem as problem:
            raise problem.error(text) from None
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``, e.g. ``docker.io/library/busybox``."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The full canonical string ``registry/repository[:tag][@digest]``."""
        return _format(self.registry, self.repository, self.tag, self.digest)

    def __str__(self) -> str:
        return self.familiar

    @property
    def ref(self) -> str:
        """The digest if set, else the tag: the ``<ref>`` in ``/v2/<repository>/manifests/<ref>``."""
        if self.digest is not None:
            return self.digest
        return self.tag if self.tag is not None else DEFAULT_TAG

    @property
    def api_host(self) -> str:
        """Host (and port) serving the registry API: ``registry-1.docker.io`` for Docker Hub."""
        return DOCKER_HUB_API_HOST if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def is_localhost(self) -> bool:
        """True for ``localhost``, ``127.x.x.x`` and ``[::1]`` (any port): plain HTTP is allowed."""
        match = _REGISTRY.fullmatch(self.registry)
        host = (match.group("host") if match else self.registry).lower()
        return host in ("localhost", "[::1]") or _LOOPBACK_V4.fullmatch(host) is not None

    def with_tag(self, tag: str) -> Reference:
        """Same repository at ``tag``; any digest is dropped so that :attr:`ref` is the tag."""
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        """Same repository pinned to ``digest`` (``algorithm:hex``); the tag is kept."""
        return replace(self, digest=digest)


def _format(registry: str, repository: str, tag: str | None, digest: str | None) -> str:
    text = f"{registry}/{repository}"
    if tag is not None:
        text += f":{tag}"
    if digest is not None:
        text += f"@{digest}"
    return text


def _split(text: str) -> tuple[str, str, str | None, str | None]:
    """Cut ``text`` into registry, repository, tag and digest (not yet normalised or validated)."""
    if not isinstance(text, str):
        raise _Problem(f"expected text, got {type(text).__name__}", _EXAMPLE)
    if not text:
        raise _Problem("the reference is empty", _EXAMPLE)
    if len(text) > _TEXT_LENGTH_MAX:
        raise _Problem(f"the reference is {len(text)} characters long; at most {_TEXT_LENGTH_MAX} are allowed",
                       _EXAMPLE)
    if any(c.isspace() for c in text):
        raise _Problem("whitespace is not allowed", _EXAMPLE)
    if "://" in text:
        raise _Problem("a URL scheme such as 'https://' is not part of an image reference", _EXAMPLE)
    if _IMAGE_ID.fullmatch(text):
        raise _Problem("a 64-character hex string is an image ID, not a repository name", _EXAMPLE_DIGEST)

    rest, at, digest = text.partition("@")
    if at and "@" in digest:
        raise _Problem("only one '@' (before the digest) is allowed", _EXAMPLE_DIGEST)
    if at and not digest:
        raise _Problem("the digest after '@' is empty", _EXAMPLE_DIGEST)

    tag: str | None = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
        if not tag:
            raise _Problem("the tag after ':' is empty", _EXAMPLE_TAG)
    if not rest:
        raise _Problem("the repository name is missing", _EXAMPLE)
    if rest.startswith("[") and "/" not in rest:
        raise _Problem(f"registry {rest!r} must be followed by '/repository'", _EXAMPLE_REGISTRY)
    if tag is None and not at:
        tag = DEFAULT_TAG

    registry, repository = DEFAULT_REGISTRY, rest
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if not remainder:
            raise _Problem(f"the repository name after registry {first!r} is missing", _EXAMPLE_REGISTRY)
        registry, repository = first, remainder
    if any("A" <= c <= "Z" for c in repository):
        suggestion = rest[: len(rest) - len(repository)] + repository.lower() + text[len(rest):]
        raise _Problem("repository names must be lowercase", repr(suggestion))
    return registry, repository, tag, digest if at else None


def _check(registry: str, repository: str, tag: str | None, digest: str | None) -> None:
    """Raise :class:`_Problem` unless every part is valid."""
    match = _REGISTRY.fullmatch(registry)
    if match is None:
        raise _Problem(
            f"invalid registry {registry!r}: expected a host name, IPv4 address or [IPv6] address "
            "with an optional ':port'",
            _EXAMPLE_REGISTRY,
        )
    port = match.group("port")
    if port is not None and (len(port) > 5 or not 0 < int(port) <= 65535):
        raise _Problem(f"invalid port in registry {registry!r}: must be 1-65535", _EXAMPLE_REGISTRY)

    if any("A" <= c <= "Z" for c in repository):
        suggestion = _format(registry, repository.lower(), tag, digest)
        raise _Problem("repository names must be lowercase", repr(suggestion))
    for component in repository.split("/"):
        if not component:
            raise _Problem(
                f"empty path component in repository {repository!r} ('//' or a leading or trailing '/')",
                _EXAMPLE_PATH,
            )
        if ":" in component:
            raise _Problem(
                f"unexpected ':' in {component!r}: only one ':' is allowed after the last '/', "
                "and it introduces the tag",
                _EXAMPLE_TAG,
            )
        if not _PATH_COMPONENT.fullmatch(component):
            raise _Problem(
                f"invalid path component {component!r}: use lowercase letters and digits, separated by "
                "'.', '_', '__' or dashes, starting and ending with a letter or digit",
                _EXAMPLE_PATH,
            )
    name_length = len(registry) + 1 + len(repository)
    if name_length > NAME_TOTAL_LENGTH_MAX:
        raise _Problem(
            f"the name is {name_length} characters long; at most {NAME_TOTAL_LENGTH_MAX} are allowed",
            _EXAMPLE,
        )

    if tag is not None:
        if len(tag) > TAG_LENGTH_MAX:
            raise _Problem(
                f"the tag is {len(tag)} characters long; at most {TAG_LENGTH_MAX} are allowed", _EXAMPLE_TAG
            )
        if not _TAG.fullmatch(tag):
            raise _Problem(
                f"invalid tag {tag!r}: use letters, digits, '_', '.' and '-', not starting with '.' or '-'",
                _EXAMPLE_TAG,
            )

    if digest is not None:
        _check_digest(digest)


def _check_digest(digest: str) -> None:
    algorithm, sep, encoded = digest.partition(":")
    if not sep:
        raise _Problem(f"invalid digest {digest!r}: expected 'algorithm:hex'", _EXAMPLE_DIGEST)
    want = _DIGEST_HEX_LENGTHS.get(algorithm)
    if want is None:
        raise _Problem(
            f"unsupported digest algorithm {algorithm!r}: use sha256 or sha512", _EXAMPLE_DIGEST
        )
    if len(encoded) != want or not _LOWER_HEX.fullmatch(encoded):
        raise _Problem(
            f"invalid {algorithm} digest {digest!r}: expected {want} lowercase hex digits", _EXAMPLE_DIGEST
        )

"""Tests for ocibuild.spec.reference: parsing, normalisation, validation and helpers."""

from __future__ import annotations

import dataclasses

import pytest

from ocibuild.spec.reference import Reference

SHA256 = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "0123456789abcdef" * 8

# text -> (registry, repository, tag, digest)
VALID: list[tuple[str, tuple[str, str, str | None, str | None]]] = [
    ("busybox", ("docker.io", "library/busybox", "latest", None)),
    ("ubuntu:22.04", ("docker.io", "library/ubuntu", "22.04", None)),
    ("ghcr.io/org/app:1", ("ghcr.io", "org/app", "1", None)),
    ("127.0.0.1:5000/base/python@" + SHA256, ("127.0.0.1:5000", "base/python", None, SHA256)),
    ("localhost/app", ("localhost", "app", "latest", None)),
    ("localhost:5000/a/b:c", ("localhost:5000", "a/b", "c", None)),
    ("[::1]:5000/app:1", ("[::1]:5000", "app", "1", None)),
    ("[::1]/app", ("[::1]", "app", "latest", None)),
    ("[2001:db8::1]:443/ns/app", ("[2001:db8::1]:443", "ns/app", "latest", None)),
    ("docker.io/library/x", ("docker.io", "library/x", "latest", None)),
    ("docker.io/x", ("docker.io", "library/x", "latest", None)),
    ("index.docker.io/foo/bar", ("docker.io", "foo/bar", "latest", None)),
    ("index.docker.io/busybox", ("docker.io", "library/busybox", "latest", None)),
    ("registry.example.com/team/app:1.4", ("registry.example.com", "team/app", "1.4", None)),
    ("a/b/c/d:tag@" + SHA256, ("docker.io", "a/b/c/d", "tag", SHA256)),
    ("foo__bar", ("docker.io", "library/foo__bar", "latest", None)),
    ("a-b--c", ("docker.io", "library/a-b--c", "latest", None)),
    ("org/a.b_c-d", ("docker.io", "org/a.b_c-d", "latest", None)),
    ("myorg/myapp", ("docker.io", "myorg/myapp", "latest", None)),
    ("python:3.12-slim@" + SHA256, ("docker.io", "library/python", "3.12-slim", SHA256)),
    ("alpine@" + SHA512, ("docker.io", "library/alpine", None, SHA512)),
    ("app:V1_RC.2-x", ("docker.io", "library/app", "V1_RC.2-x", None)),
    ("app:_private", ("docker.io", "library/app", "_private", None)),
    ("app:" + "t" * 128, ("docker.io", "library/app", "t" * 128, None)),
    ("example:5000/app", ("example:5000", "app", "latest", None)),
    ("Registry.Example.COM/app", ("Registry.Example.COM", "app", "latest", None)),
    ("localhost:5000", ("docker.io", "library/localhost", "5000", None)),  # docker: a tag, not a port
    ("quay.io/a0/b1/c2:latest", ("quay.io", "a0/b1/c2", "latest", None)),
    ("123/456", ("docker.io", "123/456", "latest", None)),
    # the 255-character limit applies to the normalised name, "docker.io/" included
    ("x" * 200 + "/" + "y" * 44, ("docker.io", "x" * 200 + "/" + "y" * 44, "latest", None)),
]

# text -> a fragment the message must contain (besides the quoted input)
INVALID: list[tuple[str, str]] = [
    ("Foo/bar", "must be lowercase"),
    ("UPPER:1", "must be lowercase"),
    ("ghcr.io/Org/app", "must be lowercase"),
    ("a:", "tag after ':' is empty"),
    (":tag", "repository name is missing"),
    ("a@sha256:short", "64 lowercase hex"),
    ("a@sha256:" + "A" * 64, "64 lowercase hex"),
    ("a@sha512:" + "0" * 64, "128 lowercase hex"),
    ("a@md5:d41d8cd98f00b204e9800998ecf8427e", "unsupported digest algorithm 'md5'"),
    ("a@" + "0" * 64, "expected 'algorithm:hex'"),
    ("a@", "digest after '@' is empty"),
    ("a@" + SHA256 + "@" + SHA256, "only one '@'"),
    ("-a", "invalid path component '-a'"),
    ("a-", "invalid path component 'a-'"),
    ("a..b", "invalid path component 'a..b'"),
    ("a___b", "invalid path component 'a___b'"),
    ("a//b", "empty path component"),
    ("a/", "empty path component"),
    ("/a", "empty path component"),
    ("ghcr.io/", "repository name after registry 'ghcr.io' is missing"),
    ("app:" + "t" * 129, "at most 128"),
    ("app:-tag", "invalid tag '-tag'"),
    ("app:.tag", "invalid tag '.tag'"),
    ("app:t@g" + "@" + SHA256, "only one '@'"),
    ("app:tag+1", "invalid tag 'tag+1'"),
    ("a" * 256, "at most 255"),
    ("x" * 200 + "/" + "y" * 45, "the name is 256 characters long; at most 255"),
    ("", "empty"),
    (" ", "whitespace"),
    ("busy box", "whitespace"),
    ("busybox\n", "whitespace"),
    ("a:tag:x", "only one ':'"),
    ("ex_ample.com/app", "invalid registry 'ex_ample.com'"),
    ("-bad.com/app", "invalid registry '-bad.com'"),
    ("host:port/app", "invalid registry 'host:port'"),
    ("localhost:99999/app", "1-65535"),
    ("[::1/app", "invalid registry '[::1'"),
    ("[::1]:5000", "must be followed by '/repository'"),
    ("https://ghcr.io/org/app", "URL scheme"),
    ("café/app", "invalid path component 'café'"),
    ("0123456789abcdef" * 4, "image ID"),
]


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[t[:40] for t, _ in VALID])
def test_parse_valid(text: str, expected: tuple[str, str, str | None, str | None]) -> None:
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize(("text", "_expected"), VALID, ids=[t[:40] for t, _ in VALID])
def test_str_round_trip(text: str, _expected: object) -> None:
    ref = Reference.parse(text)
    assert Reference.parse(str(ref)) == ref
    assert str(Reference.parse(str(ref))) == str(ref)
    assert ref.familiar == str(ref)


@pytest.mark.parametrize(("text", "fragment"), INVALID, ids=[repr(t[:40]) for t, _ in INVALID])
def test_parse_invalid(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        Reference.parse(text)
    message = str(info.value)
    assert message.startswith(f"invalid image reference {text!r}: "), message
    assert fragment in message
    assert "(e.g. '" in message  # every message shows a valid form


def test_lowercase_message_suggests_fix() -> None:
    with pytest.raises(ValueError, match=r"must be lowercase \(e\.g\. 'foo/bar:1\.0'\)"):
        Reference.parse("Foo/bar:1.0")


def test_canonical_string() -> None:
    assert str(Reference.parse("busybox")) == "docker.io/library/busybox:latest"
    assert str(Reference.parse("a/b:t@" + SHA256)) == f"docker.io/a/b:t@{SHA256}"
    assert str(Reference.parse("localhost/app@" + SHA256)) == f"localhost/app@{SHA256}"
    assert Reference.parse("index.docker.io/foo/bar:1").name == "docker.io/foo/bar"


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("busybox", "latest"),
        ("busybox:1.36", "1.36"),
        ("busybox@" + SHA256, SHA256),
        ("busybox:1.36@" + SHA256, SHA256),
    ],
)
def test_ref(text: str, ref: str) -> None:
    assert Reference.parse(text).ref == ref


@pytest.mark.parametrize(
    ("text", "host"),
    [
        ("busybox", "registry-1.docker.io"),
        ("docker.io/library/busybox", "registry-1.docker.io"),
        ("index.docker.io/foo/bar", "registry-1.docker.io"),
        ("ghcr.io/org/app", "ghcr.io"),
        ("localhost:5000/app", "localhost:5000"),
        ("[::1]:5000/app", "[::1]:5000"),
    ],
)
def test_api_host(text: str, host: str) -> None:
    assert Reference.parse(text).api_host == host


@pytest.mark.parametrize(
    ("text", "local"),
    [
        ("localhost/app", True),
        ("localhost:5000/app", True),
        ("127.0.0.1/app", True),
        ("127.0.0.1:5000/app", True),
        ("127.1.2.3:80/app", True),
        ("[::1]/app", True),
        ("[::1]:5000/app", True),
        ("busybox", False),
        ("ghcr.io/org/app", False),
        ("localhost.example.com/app", False),
        ("128.0.0.1:5000/app", False),
        ("127.0.0.1.example.com/app", False),
        ("[::2]:5000/app", False),
        ("docker.io/library/localhost", False),
    ],
)
def test_is_localhost(text: str, local: bool) -> None:
    assert Reference.parse(text).is_localhost is local


def test_with_tag_and_digest() -> None:
    base = Reference.parse("ghcr.io/org/app:1")
    tagged = base.with_tag("2")
    assert tagged == Reference.parse("ghcr.io/org/app:2")
    assert base.tag == "1"  # the original is untouched
    pinned = base.with_digest(SHA256)
    assert (pinned.tag, pinned.digest, pinned.ref) == ("1", SHA256, SHA256)
    assert str(pinned) == f"ghcr.io/org/app:1@{SHA256}"
    retagged = pinned.with_tag("3")
    assert (retagged.tag, retagged.digest, retagged.ref) == ("3", None, "3")
    with pytest.raises(ValueError, match="invalid tag"):
        base.with_tag("-bad")
    with pytest.raises(ValueError, match="unsupported digest algorithm"):
        base.with_digest("md5:d41d8cd98f00b204e9800998ecf8427e")


def test_frozen_and_hashable() -> None:
    ref = Reference.parse("busybox")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert {ref, Reference.parse("docker.io/library/busybox:latest")} == {ref}


def test_direct_construction_normalises_and_validates() -> None:
    ref = Reference(registry="index.docker.io", repository="busybox")
    assert ref == Reference.parse("busybox")
    assert Reference(registry="ghcr.io", repository="o/a", digest=SHA256).tag is None
    with pytest.raises(ValueError, match=r"invalid image reference 'ghcr\.io/O/a:latest'.*lowercase"):
        Reference(registry="ghcr.io", repository="O/a")
    with pytest.raises(ValueError, match="invalid registry"):
        Reference(registry="bad host", repository="a")

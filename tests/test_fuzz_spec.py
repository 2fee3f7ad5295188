"""Fuzzing the parsers of ocibuild.spec: whatever the input, the result is a value or a SpecError
(the documented ValueError subclass that sources turn into a one-line OcibuildError), never another
exception; and what parses serialises again (canonical JSON, UTF-8) without an error.

Deterministic: a fixed example budget per test and ``derandomize=True`` (the examples are derived
from each test's name), so CI always runs the same inputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocibuild.errors import OcibuildError
from ocibuild.spec import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    MediaType,
    Platform,
    Reference,
    SpecError,
    archive_manifest,
    canonical_json,
    check_image_manifest,
    parse_json,
    parse_manifest_or_index,
)

FUZZ = settings(max_examples=150, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------------------------------
# strategies: any JSON value, and objects shaped like OCI documents whose fields hold any value
# --------------------------------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers(min_value=-(1 << 70), max_value=1 << 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)

HEX = "0123456789abcdef"
digests = st.one_of(st.text(HEX, min_size=64, max_size=64).map(lambda h: f"sha256:{h}"),
                    st.sampled_from(["sha256:", "md5:abc", "sha256:" + "A" * 64, "sha512:" + "a" * 64]))
media_types = st.one_of(st.sampled_from([str(m) for m in MediaType]), st.sampled_from(["", "x", "text/plain",
                                                                                      "a/b;c=d"]))


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a plausible value, sometimes any JSON value."""
    return weighted(value, json_values, 9)


def weighted(often: st.SearchStrategy[Any], rarely: st.SearchStrategy[Any], odds: int) -> st.SearchStrategy[Any]:
    """``often`` ``odds`` times out of ``odds + 1``, else ``rarely``."""
    return st.integers(0, odds).flatmap(lambda n: often if n else rarely)


def shaped(fields: dict[str, st.SearchStrategy[Any]], *required: str) -> st.SearchStrategy[dict[str, Any]]:
    """Objects with any subset of ``fields`` (each a plausible or arbitrary value) plus an unknown key;
    mostly with the ``required`` ones."""
    optional = {k: v for k, v in fields.items() if k not in required}
    anything = st.fixed_dictionaries({}, optional={**fields, "x-unknown": json_values})
    complete = st.fixed_dictionaries({k: fields[k] for k in required}, optional=optional)
    return weighted(complete, anything, 4)


text = maybe(st.text(max_size=8))
platforms = shaped({"os": maybe(st.sampled_from(["linux", "windows", ""])),
                    "architecture": maybe(st.sampled_from(["amd64", "arm64", "arm", "weird"])),
                    "variant": maybe(st.sampled_from(["v7", "v8", "8"])), "os.version": text,
                    "os.features": maybe(st.lists(st.text(max_size=5), max_size=2)),
                    "features": maybe(st.lists(st.text(max_size=5), max_size=2))}, "os", "architecture")
string_maps = maybe(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2))
descriptors = shaped({"mediaType": maybe(media_types), "digest": maybe(digests),
                      "size": maybe(st.integers(min_value=-2, max_value=1 << 64)),
                      "annotations": maybe(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
                      "urls": maybe(st.lists(st.text(max_size=5), max_size=2)), "platform": maybe(platforms),
                      "artifactType": text, "data": text}, "mediaType", "digest", "size")
descriptor_lists = maybe(st.lists(maybe(descriptors), max_size=3))
manifests = shaped({"schemaVersion": maybe(st.just(2)), "mediaType": maybe(media_types),
                    "config": maybe(descriptors), "layers": descriptor_lists, "annotations": string_maps,
                    "subject": maybe(descriptors), "artifactType": text, "manifests": descriptor_lists},
                   "schemaVersion", "config", "layers")
indexes = shaped({"schemaVersion": maybe(st.just(2)), "mediaType": maybe(media_types),
                  "manifests": descriptor_lists, "annotations": string_maps, "subject": maybe(descriptors),
                  "config": json_values}, "schemaVersion", "manifests")
string_lists = maybe(st.lists(st.text(max_size=8), max_size=3))
container_configs = shaped({
    "User": text, "ExposedPorts": maybe(st.dictionaries(st.text(max_size=6), st.just({}), max_size=2)),
    "Env": maybe(st.one_of(string_lists, st.just("PATH=/bin"))), "Entrypoint": string_lists, "Cmd": string_lists,
    "Volumes": maybe(st.dictionaries(st.text(max_size=6), st.just({}), max_size=2)), "WorkingDir": text,
    "Labels": maybe(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
    "StopSignal": text, "ArgsEscaped": maybe(st.booleans()), "Healthcheck": json_values,
})
histories = shaped({"created": text, "created_by": text, "author": text,
                    "comment": text, "empty_layer": maybe(st.booleans())})
configs = st.builds(lambda base, extra: {**base, **extra}, platforms, shaped({
    "created": text, "author": text, "config": maybe(container_configs),
    "rootfs": maybe(shaped({"type": maybe(st.just("layers")), "diff_ids": maybe(st.lists(maybe(digests),
                                                                                         max_size=3))},
                           "type", "diff_ids")),
    "history": maybe(st.lists(maybe(histories), max_size=3)),
}, "rootfs", "config"))
archive_entries = maybe(st.lists(maybe(shaped({"Config": maybe(st.text(max_size=10)), "Layers": string_lists,
                                               "RepoTags": string_lists}, "Config", "Layers")), max_size=3))


def documents(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """Bytes of a document: the object as JSON, cut short or with a byte changed, or any bytes."""
    encoded = objects.map(lambda o: json.dumps(o).encode())
    return st.one_of(
        encoded, encoded,
        st.tuples(encoded, st.integers(min_value=0)).map(lambda t: t[0][: t[1] % (len(t[0]) + 1)]),
        st.tuples(encoded, st.integers(min_value=0), st.integers(0, 255)).map(
            lambda t: t[0][: t[1] % (len(t[0]) + 1)] + bytes([t[2]]) + t[0][t[1] % (len(t[0]) + 1) + 1:]),
        st.binary(max_size=64),
        st.text(max_size=32).map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"[" * 101 + b"]" * 101, b'{"schemaVersion": 2.0}',
                         b'{"a": NaN}', b'"\\ud800"', b'{"\\udfff": 1}', b"1" * 5000, b"\xef\xbb\xbf{}"]),
    )


def outcome(parse: Callable[[], Any]) -> Any:
    """The parsed value, or None after a SpecError / OcibuildError; any other exception fails."""
    try:
        return parse()
    except SpecError as exc:
        assert str(exc) and "\n" not in str(exc), repr(exc)
        return None
    except OcibuildError:
        return None


def reserialises(value: Any) -> None:
    """What parsed can be written back: canonical JSON in UTF-8, parsed again to the same value."""
    if value is not None:
        raw = canonical_json(value.to_dict())
        assert json.loads(raw) == value.to_dict()


# --------------------------------------------------------------------------------------------------
# the properties
# --------------------------------------------------------------------------------------------------


@FUZZ
@given(st.one_of(descriptors, json_values))
def test_descriptor_from_dict(data: Any) -> None:
    reserialises(outcome(lambda: Descriptor.from_dict(data)))


@FUZZ
@given(st.one_of(platforms, json_values))
def test_platform_from_dict(data: Any) -> None:
    reserialises(outcome(lambda: Platform.from_dict(data)))


@FUZZ
@given(st.one_of(manifests, json_values))
def test_manifest_from_dict(data: Any) -> None:
    manifest = outcome(lambda: ImageManifest.from_dict(data))
    reserialises(manifest)
    if manifest is not None:
        outcome(lambda: check_image_manifest(manifest))


@FUZZ
@given(documents(manifests))
def test_manifest_from_json(raw: bytes) -> None:
    reserialises(outcome(lambda: ImageManifest.from_json(raw)))


@FUZZ
@given(st.one_of(indexes, json_values))
def test_index_from_dict(data: Any) -> None:
    reserialises(outcome(lambda: ImageIndex.from_dict(data)))


@FUZZ
@given(documents(indexes))
def test_index_from_json(raw: bytes) -> None:
    reserialises(outcome(lambda: ImageIndex.from_json(raw)))


@FUZZ
@given(documents(st.one_of(manifests, indexes)), media_types)
def test_manifest_or_index_by_descriptor(raw: bytes, declared: str) -> None:
    doc = outcome(lambda: parse_manifest_or_index(raw, declared))
    reserialises(doc)
    if doc is not None and declared:
        assert str(doc.media_type) == declared or json.loads(raw).get("mediaType") in (None, declared)


@FUZZ
@given(st.one_of(configs, json_values))
def test_config_from_dict(data: Any) -> None:
    config = outcome(lambda: ImageConfig.from_dict(data))
    reserialises(config)
    if config is not None:
        assert all(isinstance(e, str) for e in config.config.env)
        config.config.env_dict()


@FUZZ
@given(documents(configs))
def test_config_from_json(raw: bytes) -> None:
    config = outcome(lambda: ImageConfig.from_json(raw))
    reserialises(config)
    if config is not None:
        assert config.to_json().decode("utf-8")


@FUZZ
@given(documents(archive_entries))
def test_docker_archive_manifest(raw: bytes) -> None:
    entries = outcome(lambda: archive_manifest(raw))
    for entry in entries or ():
        assert isinstance(entry.config, str) and entry.config
        assert all(isinstance(name, str) for name in (*entry.layers, *entry.repo_tags))


@FUZZ
@given(documents(json_values))
def test_parse_json(raw: bytes) -> None:
    outcome(lambda: parse_json(raw, "document"))


references = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="abcAB09._-/:@[]", max_size=60),
    st.builds(lambda r, n, t, d: f"{r}/{n}{t}{d}", st.sampled_from(["localhost:5000", "ghcr.io", "[::1]:99999",
                                                                    "a:0", "x.y:1234567"]),
              st.text(alphabet="ab/_.-", min_size=1, max_size=20),
              st.sampled_from(["", ":v1", ":", ":" + "t" * 129]), st.one_of(st.just(""), digests.map("@".__add__))),
    st.sampled_from(["a:" + "9" * 5000 + "/b", "a" * 5000, "localhost:" + "1" * 10 + "/x"]),
)


@FUZZ
@given(references)
def test_reference_parse(text: str) -> None:
    ref = outcome(lambda: Reference.parse(text))
    if ref is not None:
        assert Reference.parse(str(ref)) == ref

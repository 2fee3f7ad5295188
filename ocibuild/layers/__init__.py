"""Deterministic layer builders: tar writer, compression, file trees -> layers."""

from .builder import BuiltLayer, build_layer, input_key, keyed_layer
from .compress import Compression, open_decompressed
from .ignore import DEFAULT_EXCLUDES, IgnoreRules, load_rules
from .tarwriter import TarEntry, TarOptions, write_tar
from .tree import collect

__all__ = [
    "DEFAULT_EXCLUDES",
    "BuiltLayer",
    "Compression",
    "IgnoreRules",
    "TarEntry",
    "TarOptions",
    "build_layer",
    "collect",
    "input_key",
    "keyed_layer",
    "load_rules",
    "open_decompressed",
    "write_tar",
]

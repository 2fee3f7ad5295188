"""The package version (one place; the registry client sends it in User-Agent)."""

__version__ = "0.1.0"

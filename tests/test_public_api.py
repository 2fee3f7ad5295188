"""The public surface is exactly ``ocibuild.__all__`` (httpx-style discipline)."""

from __future__ import annotations

import ocibuild


def test_all_names_exist_and_are_documented() -> None:
    for name in ocibuild.__all__:
        obj = getattr(ocibuild, name)
        if name != "__version__":
            assert obj.__doc__, f"ocibuild.{name} has no docstring"


def test_no_unlisted_public_names() -> None:
    public = {n for n in vars(ocibuild) if not n.startswith("_")}
    modules = {"build", "cli", "config", "debian", "errors", "events", "image", "layers", "plan", "python", "registry",
               "sinks", "sources",
               "spec", "store", "transports"}
    assert public - set(ocibuild.__all__) - modules == set()

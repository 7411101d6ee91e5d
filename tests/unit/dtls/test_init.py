"""The package's public names: everything importable is listed in `__all__`."""

from __future__ import annotations

from types import ModuleType

from nubes import dtls


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(dtls).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(dtls.__all__)

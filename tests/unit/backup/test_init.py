"""The public interface of `nubes.backup`: what the CLI and compose's job use."""

from __future__ import annotations

import types

import nubes.backup


def test_all_lists_every_public_name_and_nothing_else() -> None:
    public = {
        name
        for name, value in vars(nubes.backup).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(nubes.backup.__all__) == public
    assert len(nubes.backup.__all__) == len(public)

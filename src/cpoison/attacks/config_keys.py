"""Config dumps that keep their keys when fields are added (SPEC 11).

A poison set's key hashes its attack's config dump. A field added later, while it holds
the value that reproduces the behaviour from before it, is left out of the dump, so
configs written before it keep their keys and their stored poisons stay valid.
"""

from __future__ import annotations

from typing import Any


def drop_legacy(data: Any, legacy: dict[str, Any]) -> Any:
    """``data`` (a config's dump) without the fields of ``legacy`` that hold their legacy
    value; anything but a dict is returned as it is."""
    if isinstance(data, dict):
        for name, value in legacy.items():
            if name in data and data[name] == value:
                data.pop(name)
    return data

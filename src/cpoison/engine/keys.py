"""Alias of :mod:`cpoison.store.keys` (moved there, below the packages that use it); kept so
existing imports of ``cpoison.engine.keys`` keep working and name the same module."""

import sys

from cpoison.store import keys as _keys

sys.modules[__name__] = _keys

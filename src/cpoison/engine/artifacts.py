"""Alias of :mod:`cpoison.store.artifacts` (moved there, below the packages that use it); kept so
existing imports of ``cpoison.engine.artifacts`` keep working and name the same module."""

import sys

from cpoison.store import artifacts as _artifacts

sys.modules[__name__] = _artifacts

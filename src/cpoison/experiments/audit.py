"""Alias of :mod:`cpoison.api.audit` (moved there: a client of the engine sits above it);
kept so existing imports of ``cpoison.experiments.audit`` keep working and name the same
module. New code imports :mod:`cpoison.api.audit`."""

import sys

from cpoison.api import audit as _audit

sys.modules[__name__] = _audit

"""Alias of :mod:`cpoison.api.runner` (moved there: a client of the engine sits above it);
kept so existing imports of ``cpoison.experiments.runner`` keep working and name the same
module. New code imports :mod:`cpoison.api.runner`."""

import sys

from cpoison.api import runner as _runner

sys.modules[__name__] = _runner

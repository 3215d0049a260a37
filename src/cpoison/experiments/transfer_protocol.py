"""Alias of :mod:`cpoison.experiments.settings.transfer` (the transfer setting is now a
:class:`~cpoison.experiments.settings.base.Setting`); kept so existing imports of
``cpoison.experiments.transfer_protocol`` keep working and name the same module."""

import sys

from cpoison.experiments.settings import transfer as _transfer

sys.modules[__name__] = _transfer

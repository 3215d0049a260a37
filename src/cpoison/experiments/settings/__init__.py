"""Training settings as a seam (:mod:`cpoison.experiments.settings.base`): from scratch
(:mod:`~cpoison.experiments.settings.scratch`) and transfer learning on a frozen extractor
(:mod:`~cpoison.experiments.settings.transfer`); :func:`setting_for` picks one for a
config."""

from cpoison.experiments.settings.base import Setting, Victim, defense_key
from cpoison.experiments.settings.registry import SETTINGS, setting_for

__all__ = ["SETTINGS", "Setting", "Victim", "defense_key", "setting_for"]

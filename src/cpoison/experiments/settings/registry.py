"""Training settings by name; :func:`setting_for` is the one place that looks at which
setting a config asks for. Adding a setting: its module, plus one line in ``SETTINGS``
(and, when a config must be able to ask for it, the config section that selects it here)."""

from __future__ import annotations

from cpoison.experiments.config import ExperimentConfig
from cpoison.experiments.settings.base import Setting
from cpoison.experiments.settings.scratch import Scratch
from cpoison.experiments.settings.transfer import Transfer

SETTINGS: dict[str, type[Setting]] = {
    "scratch": Scratch,
    "transfer": Transfer,
}
"""Name -> setting class."""


def setting_for(config: ExperimentConfig) -> Setting:
    """The training setting of ``config``: transfer learning when it has a ``transfer:``
    section (given to the setting as its options), else training from scratch."""
    options = config.transfer
    return SETTINGS["scratch" if options is None else "transfer"](options)

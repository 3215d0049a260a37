"""User-facing errors.

Every mistake a user can make (a wrong path, a corrupt file, a bad config value, alpha
outside (0, 1), NaN logits, ...) raises :class:`CpoisonError` with one sentence naming
what is wrong. The CLI turns it into a message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations


class CpoisonError(Exception):
    """An error caused by user input; its message names what is wrong and how to fix it."""


class DataError(CpoisonError):
    """A dataset is missing, truncated, corrupt or fails its checksum."""


class ConfigError(CpoisonError):
    """A configuration value is invalid."""


class NotCalibratedError(CpoisonError):
    """A conformal predictor was used before ``calibrate`` was called."""


class ProbabilitiesAsLogitsWarning(UserWarning):
    """Probabilities (rows non-negative, summing to 1) were passed where logits belong."""

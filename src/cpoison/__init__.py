"""cpoison: data poisoning attacks against conformal prediction, and defenses.

Implements Li et al., "Data Poisoning Attacks against Conformal Prediction", ICML 2024.
"""

from cpoison.errors import ConfigError, CpoisonError, DataError, NotCalibratedError

__version__ = "0.1.0"
__all__ = ["ConfigError", "CpoisonError", "DataError", "NotCalibratedError", "__version__"]

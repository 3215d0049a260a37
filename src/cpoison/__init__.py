"""cpoison: data poisoning attacks against conformal prediction, and defenses.

Implements Li et al., "Data Poisoning Attacks against Conformal Prediction", ICML 2024.
"""

from cpoison.errors import ConfigError, CpoisonError, DataError, NotCalibratedError
from cpoison.version import __version__

__all__ = [
    "ConfigError", "CpoisonError", "DataError", "NotCalibratedError", "__version__", "audit",
    "craft_poisons", "evaluate_sets",
]


def __getattr__(name: str) -> object:
    """``cpoison.audit`` (SPEC 12), ``cpoison.craft_poisons`` and ``cpoison.evaluate_sets``,
    imported on first use so ``import cpoison`` stays light."""
    if name == "audit":
        from cpoison.api.audit import audit

        return audit
    if name in ("craft_poisons", "evaluate_sets"):
        from cpoison.api import functional

        return getattr(functional, name)
    raise AttributeError(f"module 'cpoison' has no attribute {name!r}")

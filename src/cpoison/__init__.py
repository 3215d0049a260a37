"""cpoison: data poisoning attacks against conformal prediction, and defenses.

Implements Li et al., "Data Poisoning Attacks against Conformal Prediction", ICML 2024.
"""

from importlib import metadata as _metadata

from cpoison.errors import ConfigError, CpoisonError, DataError, NotCalibratedError

try:  # the installed distribution's version (pyproject's ``version``)
    __version__: str = _metadata.version("cpoison")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "ConfigError", "CpoisonError", "DataError", "NotCalibratedError", "__version__", "audit",
]


def __getattr__(name: str) -> object:
    """``cpoison.audit`` (SPEC 12), imported on first use so ``import cpoison`` stays light."""
    if name == "audit":
        from cpoison.experiments.audit import audit

        return audit
    raise AttributeError(f"module 'cpoison' has no attribute {name!r}")

"""The installed distribution's version (pyproject's ``version``), in a module of its own so
that modules anywhere can name it without importing the package's top level."""

from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("cpoison")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]

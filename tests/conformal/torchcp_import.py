"""Import TorchCP in the test environment.

TorchCP's package ``__init__`` imports all of its parts, and its graph, LLM and one loss
module import torch_geometric, transformers, networkx and torchsort at import time (TorchCP
declares them as hard dependencies; torchsort compiles against torch). Split conformal
classification, which cpoison's adapter uses, needs none of them. So the tests install
``torchcp`` without its dependencies (the Makefile does) and stand in an empty module for
each of those that is missing, only for the import; TorchCP's score and predictor code
under test is the real one.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest

OPTIONAL = (
    "torchsort",
    "torch_geometric",
    "torch_geometric.nn",
    "torch_geometric.loader",
    "torch_geometric.utils",
    "torch_geometric.utils.convert",
    "torch_geometric.data",
    "transformers",
    "networkx",
)


class _Stub(types.ModuleType):
    """A missing optional dependency: any attribute is a placeholder class."""

    def __getattr__(self, attr: str) -> type:
        if attr.startswith("__"):
            raise AttributeError(attr)
        return type(attr, (), {"__init__": lambda self, *a, **k: None})


def import_torchcp() -> types.ModuleType:
    """``torchcp.classification``, or skip the test when TorchCP is not installed."""
    if importlib.util.find_spec("torchcp") is None:
        pytest.skip("torchcp is not installed (pip install 'cpoison[torchcp]')")
    for name in OPTIONAL:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = _Stub(name)
    return importlib.import_module("torchcp.classification")

"""Primitives under everything that stores or finds work (SPEC 11): content keys
(:mod:`cpoison.store.keys`) and the artifact store (:mod:`cpoison.store.artifacts`).

This package sits below the packages that use it (data, experiments, the engine) and
imports nothing above the attacks' poison sets; import its modules directly."""

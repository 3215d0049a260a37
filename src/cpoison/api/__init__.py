"""The Python entry points that run work through the experiment engine (its clients):
:func:`cpoison.api.runner.run_experiment` (``cpoison attack`` / ``demo``) and
:func:`cpoison.api.audit.audit` (``cpoison audit``, also ``cpoison.audit``); and
:mod:`cpoison.api.functional` (``cpoison.craft_poisons``, ``cpoison.evaluate_sets``), the
few-line form for one-off use. Import the modules directly."""

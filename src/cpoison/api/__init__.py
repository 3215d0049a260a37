"""The Python entry points that run work through the experiment engine (its clients):
:func:`cpoison.api.runner.run_experiment` (``cpoison attack`` / ``demo``) and
:func:`cpoison.api.audit.audit` (``cpoison audit``, also ``cpoison.audit``). Import the
modules directly."""

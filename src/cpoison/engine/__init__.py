"""The experiment engine (SPEC 11): content keys, grids of cells, the artifact store, and the
executors (local, Ray) that run the SPEC 6 units of work with their dependencies.

``experiments/`` holds what a run measures and reports; this package holds how the units of
work are identified, planned, stored and executed.
"""

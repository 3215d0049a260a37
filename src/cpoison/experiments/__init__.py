"""Experiments: presets, workspace, protocol (SPEC 6), results store, summary and report."""

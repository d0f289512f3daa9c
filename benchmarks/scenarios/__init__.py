"""The benchmark scenarios, one module each; ``run.py`` runs them and reports.

Each ``scenario_*`` function takes the run's ``harness.Options`` (and, where it needs them,
the generated small files) and returns its results: one scenario's entry of results.json, or
(large, csv) one entry per table variant.
"""

"""Analysis of authbench runs: a tidy table from the raw files, charts, the report, comparisons.

Everything is derived from a run folder's raw files (manifest, cells, HDR histograms, samples),
so a report can always be rebuilt: ``python -m analysis report results/<run-id>``.
"""

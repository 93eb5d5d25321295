"""The run: a matrix read and validated into cells, run cell by cell into a run folder.

``matrix`` (what to measure, each cell's identity), ``runner`` (the order, resume, the run's
phases), ``cell_run`` (one cell: start, verify, warm up, measure, stop), ``schedule`` (the
interleaved order and its seed), ``run_folder`` (the folder, its manifest, never overwritten),
``thresholds`` (the exit code's rules) and ``console`` (what a run prints).
"""

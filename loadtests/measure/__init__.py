"""What a run measures beside the load: CPU, Redis, the machine, capacity, and the metrics rows.

``sampling`` (server, Redis and generator CPU over the window), ``calibration`` and
``calibration_figures`` (the machine's speed at the start and the end), ``micro`` (in-process
primitives), ``capacity`` and ``capacity_search`` (the SLO capacity searches), and
``cell_metrics``, ``split_metrics`` and ``fault_metrics`` (a cell folder into metrics rows).
"""

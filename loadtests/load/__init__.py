"""Load generation and recording: Locust, its scenarios, and what it saw.

``locust_process`` (one Locust run per cell, its workers), ``scenarios`` (the user classes),
``recorder`` (every request into HDR histograms, timed from its intended start),
``histograms`` and ``generator_parts`` (the recorded data and its merge across workers),
``http_probe`` (a plain HTTP call outside Locust) and ``verify`` (the gate a target passes
before it is timed).
"""

"""Facts every floor shares (targets, loadtests, analysis and the command line), stated once.

This package imports nothing from the project, so any floor may import it without reaching
another: ``analysis`` learns the algorithm names here, never from the servers.
"""

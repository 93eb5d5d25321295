"""Locust scenarios: one small user class per workload, named as the matrix names them."""

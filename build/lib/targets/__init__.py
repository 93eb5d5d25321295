"""Reference servers for authbench: one minimal FastAPI app per authentication scheme.

Every scheme serves the same endpoints with the same JSON work, so that the only difference a
load test can see is the cost of authenticating. Start one with ``python -m targets --scheme …``.
"""

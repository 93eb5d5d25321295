"""authbench: server-side sessions or JWTs, and which signing algorithm, settled with
measurements. The command line is :mod:`authbench.cli`; the parts are ``targets`` (reference
servers), ``loadtests`` (the runner and Locust scenarios) and ``analysis`` (figures, reports)."""

"""The services a run starts, watches and stops: servers, Redis, proxies, balancers.

``target_process`` (a reference server node), ``split_services`` (issuer and resource nodes),
``target`` (a server the suite did not start, --target-url), ``private_redis``,
``delay_proxy`` (a store one zone away), ``nginx_balancer``, ``trivial_server`` (a target of
known cost), ``processes`` (pinning, stopping, signals) and ``ports``.
"""

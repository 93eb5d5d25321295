"""nginx as a real load balancer in front of the nodes: round-robin with upstream keepalive.

The same renderer writes the local runner's configuration (upstreams on loopback ports) and the
checked-in ``deploy/nginx.conf`` of docker-compose (upstream ``app:8000``), so the configuration
that ``nginx -t`` validates here is the one the containers run.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from loadtests.services.ports import free_port, wait_for_port
from loadtests.services.processes import Service, spawn, stop

UPSTREAM_KEEPALIVE = 64


class NginxUnavailable(Exception):
    """nginx is not installed or would not start; the message says which."""


def render_config(upstreams: Sequence[str], listen: str, prefix: str | None = None) -> str:
    """An nginx.conf that round-robins every request over ``upstreams`` with keepalive.

    ``prefix`` puts the pid file and logs in a private folder (local runs); without it the
    container defaults apply.
    """
    servers = "\n".join(f"        server {upstream} max_fails=0;" for upstream in upstreams)
    pid = f"pid {prefix}/nginx.pid;\n" if prefix else ""
    error_log = f"{prefix}/error.log" if prefix else "/dev/stderr"
    temp = (
        f"    client_body_temp_path {prefix}/body;\n    proxy_temp_path {prefix}/proxy;\n"
        f"    fastcgi_temp_path {prefix}/fastcgi;\n    uwsgi_temp_path {prefix}/uwsgi;\n"
        f"    scgi_temp_path {prefix}/scgi;\n"
        if prefix
        else ""
    )
    return f"""# Rendered by loadtests/services/nginx_balancer.py: round-robin, upstream keepalive.
worker_processes 1;
{pid}error_log {error_log} warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
{temp}    upstream authbench_nodes {{
{servers}
        keepalive {UPSTREAM_KEEPALIVE};
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://authbench_nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def nginx_binary() -> str:
    """Path of nginx on PATH (or /usr/sbin), NginxUnavailable otherwise."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise NginxUnavailable("nginx is not installed (apt-get install nginx)")
    return found


def check_config(config_path: Path) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on a configuration file."""
    return subprocess.run(
        [nginx_binary(), "-t", "-c", str(config_path)], capture_output=True, text=True, timeout=30
    )


class NginxBalancer(Service):
    """A private nginx on a free loopback port in front of the given node URLs."""

    def __init__(self, node_urls: Sequence[str], cpus: set[int] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._upstreams = [url.removeprefix("http://") for url in node_urls]
        self._cpus = cpus
        self._prefix = Path(tempfile.mkdtemp(prefix="authbench-nginx-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Render, test and start nginx in the foreground of its own process group."""
        config = self._prefix / "nginx.conf"
        config.write_text(
            render_config(self._upstreams, f"127.0.0.1:{self.port}", str(self._prefix))
        )
        checked = check_config(config)
        if checked.returncode != 0:
            raise NginxUnavailable(f"nginx -t failed: {checked.stderr.strip().splitlines()[-1]}")
        self._process = spawn([nginx_binary(), "-c", str(config), "-g", "daemon off;"], self._cpus)
        try:
            started = wait_for_port("127.0.0.1", self.port, 10)
        except BaseException:
            self.close()
            raise
        if not started:
            self.close()
            raise NginxUnavailable(f"nginx did not listen on port {self.port}")

    def close(self) -> None:
        """Stop nginx (master and workers: its process group) and remove its folder."""
        stop(self._process, group=True)
        self._process = None
        shutil.rmtree(self._prefix, ignore_errors=True)


if __name__ == "__main__":
    # Regenerate deploy/nginx.conf: python -m loadtests.services.nginx_balancer > deploy/nginx.conf
    print(render_config(["app:8000"], "80"), end="")

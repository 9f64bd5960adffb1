"""nginx as the demo web server's peer: one configuration for the load
benchmark (``bench.web``) and for the tests that compare with nginx.

It is tuned as users tune nginx to serve static files under load, so that the
benchmark compares with nginx at its best: one worker, 4096 connections,
``open_file_cache`` (descriptors, sizes and modification times kept for a
minute instead of open/fstat/close per request), sendfile, TCP_NODELAY, no
access log, keep-alive without a request limit.  Not ``tcp_nopush``, which
guides also suggest: it corks pipelined responses until a delayed ACK (40 ms
stalls on loopback, a quarter of the pipelined rate) and gains nothing here.  Without
``open_file_cache=True`` it is the same nginx without the file cache (what a
user gets who does not tune it; the tests compare behaviour with this one, as
a file cache would hide a file the test makes after a 404).  Standard library only: the
tests import it without the ``bench`` extra.
"""

from __future__ import annotations

import os
from pathlib import Path


def nginx_command(nginx: str, work: Path, port: int, root: Path, *,
                  open_file_cache: bool = False) -> list[str]:
    """The command that runs nginx in the foreground, serving ``root`` on
    127.0.0.1:``port``; writes its configuration into ``work``, where it also
    keeps its pid file, error log and temporary files."""
    file_cache = ("""
    open_file_cache max=10000 inactive=60s;
    open_file_cache_valid 60s;
    open_file_cache_min_uses 1;
    open_file_cache_errors on;""" if open_file_cache else "")
    # run as root, nginx drops its worker to nobody, who cannot read a private temp dir
    user = "user root;" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {work / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (work / "nginx.conf").write_text(f"""{user}
worker_processes 1;
daemon off;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    include /etc/nginx/mime.types;
    sendfile on;
    tcp_nodelay on;{file_cache}
    keepalive_requests 10000000;
{temp}
    server {{ listen 127.0.0.1:{port} backlog=1024; root {root}; }}
}}
""")
    return [nginx, "-c", str(work / "nginx.conf"), "-e", str(work / "error.log")]

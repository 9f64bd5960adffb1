"""The fastsock demo web server, run as a file: a static-file HTTP/1.1 server.

A thin wrapper around ``fastsock.webserver.main`` (the same program as
``python -m fastsock.webserver``): the arguments are passed through.  It
serves the current directory on 127.0.0.1 port 28333 unless told otherwise::

    python examples/webserver.py [--port 28333] [--directory DIR] [--bind ADDRESS]
    python examples/webclient.py 127.0.0.1 28333 /

``--help`` lists the rest (worker processes, limits, ``--quiet``).  Ctrl-C
stops it gracefully.  It needs httptools (``pip install 'fastsock[web]'``).
"""

from __future__ import annotations

import sys

from fastsock.webserver import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

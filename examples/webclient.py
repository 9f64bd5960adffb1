"""The fastsock demo HTTP/1.1 client, run as a file: fetch a path, print the body.

A thin wrapper around ``fastsock.webclient.main`` (the same program as
``python -m fastsock.webclient``): the arguments are passed through.  With a
server running (``python examples/webserver.py``)::

    python examples/webclient.py HOST PORT [PATH ...]
    python examples/webclient.py 127.0.0.1 28333 /README.md

The body goes to stdout; ``-i`` adds the status line and headers, ``-o FILE``
writes to a file, ``--help`` lists the rest.  It needs httptools
(``pip install 'fastsock[web]'``).
"""

from __future__ import annotations

import sys

from fastsock.webclient import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

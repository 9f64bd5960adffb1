"""What the demo programs (ping, webserver, webclient) share beyond the
public API: how each names itself."""

from __future__ import annotations

import os
import sys


def program_name(module: str, module_file: str) -> str:
    """How the running demo program was started, for its usage line:
    ``python -m fastsock.ping``, or the console script's or a wrapper's name."""
    started = sys.argv[0] if sys.argv else ""
    if not started or os.path.abspath(started) == os.path.abspath(module_file):
        return f"python -m {module}"
    return os.path.basename(started)

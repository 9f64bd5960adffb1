"""httptools, the HTTP parser of the web demo, or a clear message without it.

The core of fastsock needs only the standard library; the web demo needs
httptools, from the ``web`` extra.
"""

from __future__ import annotations

from typing import Any

try:
    import httptools
except ImportError:  # pragma: no cover - exercised by a test in a subprocess
    httptools = None  # type: ignore[assignment]

MISSING = "fastsock's web demo needs httptools: pip install 'fastsock[web]'"


def require_httptools() -> Any:
    """The httptools module, or SystemExit with the install command."""
    if httptools is None:
        raise SystemExit(MISSING)
    return httptools

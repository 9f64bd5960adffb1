"""Argument stand-ins shared by the differential tests and the fuzz targets
(fuzz/harness.py imports this file too, so it needs nothing but the stdlib)."""

from __future__ import annotations


class Index:
    """An int stand-in through ``__index__`` only (what the stdlib accepts)."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"Index({self.value})"

"""fastsock benchmarks: stdlib ``socket`` vs fastsock's pure and compiled
implementations on the same workloads, with a C reference.  Each fastsock
implementation runs in a process whose environment picks it
(``FASTSOCK_NO_EXTENSIONS``, as ``fastsock._names.IMPLEMENTATIONS`` says).

``python -m bench`` runs the suite in several passes and summarises it;
``python -m pytest bench`` runs it once under pytest-benchmark.
"""

"""fastsock benchmarks: stdlib ``socket`` vs ``fastsock._socket_py`` vs
``fastsock._socket_c`` on the same workloads, with a C reference.

``python -m bench`` runs the suite in several passes and summarises it;
``python -m pytest bench`` runs it once under pytest-benchmark.
"""

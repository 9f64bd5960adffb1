"""Start-up of every interpreter in the sanitizer venv (`make asan-test`),
imported by fastsock_asan.pth there; never part of fastsock itself.

1. The ASan runtime is loaded by now: drop LD_PRELOAD, so that the other
   programs the tests run (curl, chromium, nginx) start without it.  Child
   interpreters get it again from the python-asan launcher.

2. NumPy (a test dependency: its arrays serve as buffers) keeps objects made
   while it initialises for the life of the process without a pointer
   LeakSanitizer can follow.  Its import runs with leak tracking off
   (__lsan_disable): only what is allocated during ``import numpy`` is
   exempt, and no fastsock code runs then.  The test runner imports numpy
   first of all (FASTSOCK_ASAN_IMPORT_FIRST=numpy), so that nothing made
   before it can be caught up in it.
"""

import ctypes
import importlib.abc
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Optional, Sequence

if "libasan" in os.environ.get("LD_PRELOAD", "").split(":")[0]:
    rest = os.environ["LD_PRELOAD"].split(":", 1)[1:]
    if rest:
        os.environ["LD_PRELOAD"] = rest[0]
    else:
        del os.environ["LD_PRELOAD"]

_runtime = ctypes.CDLL(None)
# (getattr: inside a class body the dunder names would be mangled)
_lsan_disable = getattr(_runtime, "__lsan_disable", None)
_lsan_enable = getattr(_runtime, "__lsan_enable", None)
_QUIET = {"numpy"}


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: Any) -> Optional[ModuleType]:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        assert _lsan_disable is not None and _lsan_enable is not None
        _lsan_disable()
        try:
            self.loader.exec_module(module)
        finally:
            _lsan_enable()


class _QuietImports(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Optional[Sequence[str]],
                  target: Optional[ModuleType] = None) -> Any:
        if name not in _QUIET:
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


if _lsan_disable is not None and _lsan_enable is not None:
    sys.meta_path.insert(0, _QuietImports())
    # the test runner imports numpy before anything else: imported later (by
    # a test module), numpy's initialisation also keeps references to
    # objects made before it, such as constants of the modules compiled so
    # far, and those show up as leaks.  Only this process does it; child
    # interpreters do not inherit the request.
    if os.environ.pop("FASTSOCK_ASAN_IMPORT_FIRST", "") == "numpy":
        import numpy  # noqa: F401

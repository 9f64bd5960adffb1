"""Build the Cython extension.  Metadata lives in pyproject.toml.

The extension is optional: with ``FASTSOCK_NO_EXTENSIONS=1`` at build time,
or when it cannot be compiled (no C compiler, no Python headers, no Cython),
the install still succeeds with the pure-Python implementation, and the
build says so (``pip install -v`` shows the message);
``fastsock.IMPLEMENTATION`` tells which one is live.

FASTSOCK_DEBUG=1 builds with -O0 -g and line tracing (for coverage,
profilers and debuggers); FASTSOCK_SANITIZE=1 builds with AddressSanitizer
and UndefinedBehaviorSanitizer (``make asan-test``); FASTSOCK_FUZZ=1 builds for
the fuzz targets (``make fuzz``, with CC=clang): AddressSanitizer plus
libFuzzer's coverage instrumentation, with the generated C kept under
build/fuzz.  The test suite runs under every build.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError

# what a machine that cannot compile the extension raises (OSError: a compiler
# that is named but absent); a Cython error in the sources is not among them
CANNOT_COMPILE = (CCompilerError, ExecError, PlatformError, OSError)

DEBUG = os.environ.get("FASTSOCK_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("FASTSOCK_SANITIZE", "") not in ("", "0")
FUZZ = os.environ.get("FASTSOCK_FUZZ", "") not in ("", "0")
# ThreadSanitizer, for a free-threaded interpreter built with it (make tsan-test)
TSAN = os.environ.get("FASTSOCK_TSAN", "") not in ("", "0")
NO_EXTENSIONS = os.environ.get("FASTSOCK_NO_EXTENSIONS", "") not in ("", "0")

# Every Cython directive, in one place.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "embedsignature.format": "clinic",
    "auto_pickle": False,
    "binding": False,
    "linetrace": DEBUG,
    # importing the module leaves a free-threaded interpreter's GIL off: every
    # piece of shared state is protected (docs/architecture.md, thread safety)
    "freethreading_compatible": True,
}

# -fno-sanitize-recover: the first undefined behaviour aborts, so no report
# can scroll by unnoticed; -O1 with frame pointers is fast enough for the
# whole suite and still gives exact stack traces
SANITIZER_FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
                   "-fno-omit-frame-pointer"]
FUZZER_FLAGS = ["-fsanitize=address,fuzzer-no-link", "-fno-omit-frame-pointer"]

LDFLAGS: list[str] = []
if DEBUG:
    CFLAGS = ["-O0", "-g3", "-Wall", "-Wno-unused-function"]
    MACROS = [("CYTHON_TRACE_NOGIL", "1"), ("FASTSOCK_DEBUG", "1")]
elif SANITIZE:
    CFLAGS = ["-O1", "-g", "-Wall", "-Wno-unused-function", *SANITIZER_FLAGS]
    LDFLAGS = list(SANITIZER_FLAGS)
    MACROS = []
elif FUZZ:
    CFLAGS = ["-O1", "-g", "-Wall", "-Wno-unused-function", *FUZZER_FLAGS]
    LDFLAGS = list(FUZZER_FLAGS)
    MACROS = [("FASTSOCK_FUZZ", "1")]
elif TSAN:
    CFLAGS = ["-O1", "-g", "-Wall", "-Wno-unused-function", "-fsanitize=thread"]
    LDFLAGS = ["-fsanitize=thread"]
    MACROS = []
else:
    CFLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
    MACROS = []



def say_pure(reason: str) -> None:
    """One clear message in the build log: the install goes on, pure."""
    rule = "*" * 76
    print(f"\n{rule}\nfastsock: {reason}\n"
          "fastsock: installing the pure-Python implementation only (same API and\n"
          "fastsock: behaviour, slower); fastsock.IMPLEMENTATION will say 'python'.\n"
          f"{rule}\n", file=sys.stderr, flush=True)


class OptionalBuildExt(build_ext):
    """Compile the extension if this machine can; otherwise build without it."""

    def run(self) -> None:
        try:
            super().run()
        except CANNOT_COMPILE as exc:  # a missing compiler fails before any file
            self.skip_extensions(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except CANNOT_COMPILE as exc:  # no compiler, no Python.h, a linker error
            self.skip_extensions(exc)

    def skip_extensions(self, exc: BaseException) -> None:
        # a debug, sanitizer or fuzz build exists only for its extension
        if DEBUG or SANITIZE or FUZZ or TSAN:
            raise exc
        say_pure(f"the C extension could not be built ({type(exc).__name__}: {exc})")
        self.extensions = []


def extensions() -> list[Extension]:
    if NO_EXTENSIONS:
        say_pure("FASTSOCK_NO_EXTENSIONS is set")
        return []
    try:
        from Cython.Build import cythonize
    except ImportError as exc:
        say_pure(f"Cython is not available ({exc})")
        return []
    extension = Extension(
        "fastsock._socket_c",
        ["src/fastsock/_socket_c.pyx"],
        include_dirs=["src/fastsock/includes"],  # compat.h
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
        define_macros=MACROS,
    )
    return cythonize(
        [extension],
        compiler_directives=DIRECTIVES,
        include_path=["src"],
        annotate=DEBUG,
        build_dir="build/fuzz/c" if FUZZ else None,
        # the debug build must not reuse C generated without line tracing
        force=DEBUG,
    )


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    # the instrumented build keeps its objects apart, so neither it nor the
    # normal build ever picks up the other's up-to-date-looking output
    options=({"build": {"build_base": "build/sanitize"}} if SANITIZE
             else {"build": {"build_base": "build/tsan"}} if TSAN else {}),
)

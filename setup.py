"""Build the Cython extension.  Metadata lives in pyproject.toml.

FASTSOCK_DEBUG=1 builds with -O0 -g and line tracing (for coverage,
profilers and debuggers); FASTSOCK_SANITIZE=1 builds with AddressSanitizer
and UndefinedBehaviorSanitizer (``make asan-test``); FASTSOCK_FUZZ=1 builds for
the fuzz targets (``make fuzz``, with CC=clang): AddressSanitizer plus
libFuzzer's coverage instrumentation, with the generated C kept under
build/fuzz.  The test suite runs under every build.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSOCK_DEBUG", "") not in ("", "0")
SANITIZE = os.environ.get("FASTSOCK_SANITIZE", "") not in ("", "0")
FUZZ = os.environ.get("FASTSOCK_FUZZ", "") not in ("", "0")

# Every Cython directive, in one place.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "auto_pickle": False,
    "binding": False,
    "linetrace": DEBUG,
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
else:
    CFLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
    MACROS = []

extensions = [
    Extension(
        "fastsock._socket_c",
        ["src/fastsock/_socket_c.pyx"],
        include_dirs=["src/fastsock/includes"],  # compat.h
        extra_compile_args=CFLAGS,
        extra_link_args=LDFLAGS,
        define_macros=MACROS,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        include_path=["src"],
        annotate=DEBUG,
        build_dir="build/fuzz/c" if FUZZ else None,
        # the debug build must not reuse C generated without line tracing
        force=DEBUG,
    ),
    # the instrumented build keeps its objects apart, so neither it nor the
    # normal build ever picks up the other's up-to-date-looking output
    options={"build": {"build_base": "build/sanitize"}} if SANITIZE else {},
)

"""Build the Cython extension.  Metadata lives in pyproject.toml.

FASTSOCK_DEBUG=1 builds with -O0 -g and line tracing (for coverage,
profilers and debuggers); the test suite runs under either build.
FASTSOCK_FUZZ=1 builds for the fuzz targets (`make fuzz`, with CC=clang):
AddressSanitizer plus libFuzzer's coverage instrumentation, with the
generated C kept under build/fuzz.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSOCK_DEBUG", "") not in ("", "0")
FUZZ = os.environ.get("FASTSOCK_FUZZ", "") not in ("", "0")

# Every Cython directive, in one place.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "auto_pickle": False,
    "binding": False,
    "linetrace": DEBUG,
}

SANITIZE = ["-fsanitize=address,fuzzer-no-link"]
LDFLAGS: list[str] = []

if DEBUG:
    CFLAGS = ["-O0", "-g3", "-Wall", "-Wno-unused-function"]
    MACROS = [("CYTHON_TRACE_NOGIL", "1"), ("FASTSOCK_DEBUG", "1")]
elif FUZZ:
    CFLAGS = ["-O1", "-g", "-fno-omit-frame-pointer", *SANITIZE, "-Wall", "-Wno-unused-function"]
    LDFLAGS = SANITIZE
    MACROS = [("FASTSOCK_FUZZ", "1")]
else:
    CFLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
    MACROS = []

extensions = [
    Extension(
        "fastsock._socket_c",
        ["src/fastsock/_socket_c.pyx"],
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
)

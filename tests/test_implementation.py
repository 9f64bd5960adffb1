"""Which implementation is live, and whether the two expose the same API."""

from __future__ import annotations

import ast
import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import pytest
from conftest import compiled_module as _compiled

import fastsock
from fastsock import _common, _names, _socket_py

NO_EXTENSIONS = os.environ.get("FASTSOCK_NO_EXTENSIONS", "") not in ("", "0")

# the fallback warning is for an extension that is there but cannot load
needs_extension_file = pytest.mark.skipif(
    not _common.extension_was_built(os.path.dirname(fastsock.__file__)),
    reason="installed without the compiled extension")

CONSTANTS = ["AF_INET", "AF_INET6", "AF_UNIX", "SOCK_STREAM", "SOCK_DGRAM",
             "SHUT_RD", "SHUT_WR", "SHUT_RDWR"]

# The same dispatcher-observing script is used by every subprocess below: it
# imports fastsock with every warning recorded and reports what it saw.
_REPORT = textwrap.dedent("""
    import json, sys, warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import fastsock
    print(json.dumps({
        "implementation": fastsock.IMPLEMENTATION,
        "stream_module": fastsock.StreamSocket.__module__,
        "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    }))
""")


def _run(prelude: str, env_overrides: dict[str, str | None]) -> dict[str, object]:
    env = dict(os.environ)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(prelude) + _REPORT],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def test_compiled_extension_is_live() -> None:
    if NO_EXTENSIONS:
        assert fastsock.IMPLEMENTATION == "python"
    else:
        assert fastsock.IMPLEMENTATION == "cython", (
            "the compiled extension did not load; set FASTSOCK_NO_EXTENSIONS=1 "
            "to test the pure implementation on purpose"
        )
        assert fastsock.StreamSocket is _compiled().StreamSocket
        assert fastsock.DatagramSocket is _compiled().DatagramSocket


def test_compiled_module_imports_directly() -> None:
    # the extension is built in this tree whatever the dispatcher selected
    module = _compiled()
    assert module.IMPLEMENTATION == "cython"
    assert module.__file__ is not None and module.__file__.endswith(".so")


def test_fresh_interpreter_loads_compiled_without_warnings() -> None:
    _compiled()
    report = _run("", {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "cython"
    assert report["stream_module"] == "fastsock._socket_c"
    assert report["warnings"] == []


@pytest.mark.parametrize("value", ["1", "yes"])
def test_no_extensions_env_selects_python(value: str) -> None:
    report = _run("", {"FASTSOCK_NO_EXTENSIONS": value})
    assert report["implementation"] == "python"
    assert report["stream_module"] == "fastsock._stream_py"
    assert report["warnings"] == []


@pytest.mark.parametrize("value", ["", "0"])
def test_falsy_no_extensions_env_keeps_compiled(value: str) -> None:
    _compiled()
    report = _run("", {"FASTSOCK_NO_EXTENSIONS": value})
    assert report["implementation"] == "cython"


@needs_extension_file
def test_fallback_when_extension_cannot_be_imported_meta_path() -> None:
    prelude = """
        import importlib.abc, sys

        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "fastsock._socket_c":
                    raise ImportError("simulated: extension built for another ABI")
                return None

        sys.meta_path.insert(0, Refuse())
    """
    report = _run(prelude, {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "python"
    assert report["stream_module"] == "fastsock._stream_py"
    warnings = report["warnings"]
    assert isinstance(warnings, list)
    runtime = [message for category, message in warnings if category == "RuntimeWarning"]
    assert len(runtime) == 1, warnings
    assert "simulated: extension built for another ABI" in runtime[0]
    assert "pure-Python" in runtime[0]


@needs_extension_file
def test_fallback_when_extension_is_blocked_in_sys_modules() -> None:
    prelude = """
        import sys
        sys.modules["fastsock._socket_c"] = None
    """
    report = _run(prelude, {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "python"
    warnings = report["warnings"]
    assert isinstance(warnings, list)
    runtime = [message for category, message in warnings if category == "RuntimeWarning"]
    assert len(runtime) == 1, warnings
    assert "fastsock._socket_c" in runtime[0]


@needs_extension_file
def test_fallback_when_shadowed_by_a_module_raising_importerror(tmp_path: pathlib.Path) -> None:
    # a _socket_c.py that refuses to import, found before the built extension,
    # stands in for an extension whose shared library cannot be loaded
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "_socket_c.py").write_text(
        'raise ImportError("shadowed: libfoo.so.1 not found")\n')
    prelude = f"""
        import importlib.machinery, sys

        class Shadow:
            @staticmethod
            def find_spec(name, path, target=None):
                if name == "fastsock._socket_c":
                    return importlib.machinery.PathFinder.find_spec(
                        name, [{str(shadow)!r}])
                return None

        sys.meta_path.insert(0, Shadow)
    """
    report = _run(prelude, {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "python"
    assert report["stream_module"] == "fastsock._stream_py"
    warnings = report["warnings"]
    assert isinstance(warnings, list)
    runtime = [message for category, message in warnings if category == "RuntimeWarning"]
    assert len(runtime) == 1, warnings
    assert "shadowed: libfoo.so.1 not found" in runtime[0]


def test_package_installed_without_the_extension_is_quietly_pure(tmp_path: pathlib.Path) -> None:
    # what a build without a compiler installs: the package minus _socket_c
    import shutil
    package = pathlib.Path(fastsock.__file__).parent
    copy = tmp_path / "fastsock"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns(
        "_socket_c.*", "__pycache__", "*.c", "*.html"))
    assert not _common.extension_was_built(str(copy))
    prelude = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
    """
    report = _run(prelude, {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "python"
    assert report["warnings"] == []


def test_extension_for_another_interpreter_is_reported(tmp_path: pathlib.Path) -> None:
    # an extension file is there, but not one this interpreter can load
    import shutil
    package = pathlib.Path(fastsock.__file__).parent
    copy = tmp_path / "fastsock"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns(
        "_socket_c.*", "__pycache__", "*.c", "*.html"))
    (copy / "_socket_c.cpython-39-x86_64-linux-gnu.so").write_bytes(b"")
    assert _common.extension_was_built(str(copy))
    report = _run(f"import sys; sys.path.insert(0, {str(tmp_path)!r})",
                  {"FASTSOCK_NO_EXTENSIONS": None})
    assert report["implementation"] == "python"
    warnings = report["warnings"]
    assert isinstance(warnings, list)
    assert [category for category, _ in warnings] == ["RuntimeWarning"], warnings


def test_public_names_match() -> None:
    # one list (_names) for both twins and the dispatcher
    compiled = _compiled()
    assert compiled.__all__ == _socket_py.__all__ == list(_names.TWIN_NAMES)
    assert len(set(_names.PUBLIC_NAMES)) == len(_names.PUBLIC_NAMES)
    for name in compiled.__all__:
        assert hasattr(compiled, name), name
        assert hasattr(_socket_py, name), name
    for name in _names.COMMON_NAMES:  # written once: the same objects
        assert getattr(compiled, name) is getattr(_socket_py, name) is getattr(_common, name)
    assert fastsock.__all__ == list(_names.PUBLIC_NAMES)
    for name in fastsock.__all__:
        assert hasattr(fastsock, name), name


def test_stub_names_match_the_list() -> None:
    stub = pathlib.Path(fastsock.__file__).with_name("_socket_c.pyi").read_text()
    tree = ast.parse(stub)
    listed = next(node.value for node in tree.body if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets))
    assert ast.literal_eval(listed) == list(_names.TWIN_NAMES)


def test_import_opens_no_socket() -> None:
    # GSO/GRO are probed on first use, not when fastsock is imported
    script = textwrap.dedent("""
        import socket
        opened = []
        real = socket.socket.__init__
        def spy(self, *args, **kwargs):
            opened.append(args)
            real(self, *args, **kwargs)
        socket.socket.__init__ = spy
        import fastsock, fastsock._socket_py
        assert opened == [], opened
        fastsock.UDP_GSO  # the first read probes
        assert len(opened) == 1, opened
        fastsock.UDP_GSO, fastsock.UDP_GRO
        assert len(opened) == 2, opened
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_match_stdlib(name: str) -> None:
    expected = getattr(socket, name)
    for module in (_compiled(), _socket_py, fastsock):
        value = getattr(module, name)
        assert type(value) is int or isinstance(value, int)
        assert value == expected, (module.__name__, name, value, expected)


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize("cls_name", ["StreamSocket", "DatagramSocket"])
def test_public_methods_match(cls_name: str) -> None:
    compiled_cls = getattr(_compiled(), cls_name)
    python_cls = getattr(_socket_py, cls_name)
    assert _public(compiled_cls) == _public(python_cls)
    for dunder in ("__enter__", "__exit__", "__repr__", "__del__"):
        assert hasattr(compiled_cls, dunder), dunder
        assert hasattr(python_cls, dunder), dunder


def test_stream_and_datagram_specific_methods() -> None:
    for module in (_compiled(), _socket_py):
        stream = _public(module.StreamSocket)
        datagram = _public(module.DatagramSocket)
        assert {"listen", "accept", "recv_until", "sendfile"} <= stream - datagram
        assert {"recv_many", "send_many", "recv_batch"} <= datagram - stream


@pytest.mark.parametrize("name", ["socketpair", "create_connection", "create_server"])
def test_functions_are_callable_on_both(name: str) -> None:
    assert callable(getattr(_compiled(), name))
    assert callable(getattr(_socket_py, name))

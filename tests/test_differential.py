"""Differential property tests: for the same call with generated arguments,
the compiled and the pure implementation give the same result or raise the
same exception type (with the same errno), and so does the stdlib ``socket``
module where it has the call, with the same message.

Covered here: addresses of every family (bind, on open and closed sockets),
receive buffer sizes / nbytes / flags, timeouts (settimeout / gettimeout
round trips), socket options.  Framing results are compared in
test_stream_properties.py (test_implementations_agree).

Only numeric hosts are generated (the resolver never asks the network),
and nothing is sent anywhere: addresses go through bind() only.
"""

from __future__ import annotations

import math
import socket
from typing import Any, Callable, Optional

import pytest
from conftest import HAS_IPV6, IMPLEMENTATIONS, implementation_module
from hypothesis import HealthCheck, given, settings, strategies as st
from stand_ins import Index

import fastsock

pytestmark = pytest.mark.skipif(fastsock.IMPLEMENTATION != "cython",
                                reason="compiled extension not loaded")

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def implementations() -> dict[str, Any]:
    return {name: implementation_module(name) for name in IMPLEMENTATIONS}


def outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    """("ok", value) or (exception type name, errno or message)."""
    try:
        return ("ok", call())
    except OSError as exc:
        return (type(exc).__name__, exc.errno, None if exc.errno else str(exc))
    except (ValueError, TypeError, OverflowError, BufferError, UnicodeError) as exc:
        return (type(exc).__name__, str(exc))


def assert_agree(results: dict[str, tuple[Any, ...]], what: str) -> None:
    reference = results["python"]
    for name, result in results.items():
        assert result == reference, f"{what}: {name} {result!r} != python {reference!r}"


# -- generated arguments -------------------------------------------------------------

ints = st.one_of(
    st.integers(-3, 70000),
    st.integers(-2**70, 2**70),
    st.sampled_from([2**16, 2**20, 2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**63, -2**63 - 1, 2**64]),
)
int_like = st.one_of(ints, ints.map(Index), st.sampled_from([True, False, 1.0, None, "1"]))

HOSTS4 = ["127.0.0.1", "0.0.0.0", "", "<broadcast>", "255.255.255.255", "127.0.0.1\0",
          "::1", "\udcff", b"127.0.0.1", bytearray(b"127.0.0.1"), b"::1", None, 1, 1.5]
HOSTS6 = ["::1", "::", "", "::ffff:127.0.0.1", "<broadcast>", "127.0.0.1", "::1\0", "\udcff",
          b"::1", bytearray(b"::"), None, 7]
hosts4 = st.one_of(st.sampled_from(HOSTS4), st.ip_addresses(v=4).map(str))
hosts6 = st.one_of(st.sampled_from(HOSTS6), st.ip_addresses(v=6).map(str))

inet_addresses = st.one_of(
    st.tuples(hosts4, int_like),
    st.lists(st.one_of(hosts4, int_like), max_size=4).map(tuple),
    st.sampled_from(["127.0.0.1", None, b"x", ["127.0.0.1", 0]]),
)
inet6_addresses = st.one_of(
    st.tuples(hosts6, int_like),
    st.tuples(hosts6, int_like, int_like),
    st.tuples(hosts6, int_like, int_like, int_like),
    st.lists(st.one_of(hosts6, int_like), max_size=5).map(tuple),
)
unix_names = st.one_of(
    st.binary(max_size=120).map(lambda raw: raw.replace(b"\0", b"_").replace(b"/", b"_")),
    st.binary(min_size=1, max_size=120).map(lambda raw: b"\0" + raw),
    st.sampled_from([b"", b"\0", b"a\0b", b"x" * 107, b"x" * 108, b"\0" + b"y" * 107,
                     b"\0" + b"y" * 108]),
)
unix_addresses = st.one_of(
    unix_names,
    unix_names.map(bytearray),
    unix_names.map(lambda raw: raw.decode("latin-1")),
    st.sampled_from([None, 5, ("a", 1), 1.5]),
)


def bind_outcomes(family: int, address: Any, closed: bool, tmp: Any) -> dict[str, Any]:
    results = {}
    for name, impl in implementations().items():
        with impl.DatagramSocket(family) as sock:
            if closed:
                sock.close()
            results[name] = outcome(lambda: sock.bind(address))
            if results[name][0] == "ok":
                named = sock.getsockname()
                # the kernel picks ports and autobind names: compare the rest
                results[name] = ("ok", named[:1] + named[2:] if isinstance(named, tuple)
                                 else type(named))
        if family == socket.AF_UNIX:
            remove_path(address)
    return results


def remove_path(address: Any) -> None:
    if isinstance(address, (bytearray, memoryview)):
        address = bytes(address)
    if isinstance(address, (str, bytes)) and address[:1] not in ("", b"", "\0", b"\0"):
        try:
            import os
            os.unlink(address)
        except (OSError, ValueError):
            pass


def stdlib_bind(family: int, address: Any, closed: bool) -> tuple[Any, ...]:
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        if closed:
            sock.close()
        result = outcome(lambda: sock.bind(address))
        if result[0] == "ok":
            named = sock.getsockname()
            result = ("ok", named[:1] + named[2:] if isinstance(named, tuple) else type(named))
    if family == socket.AF_UNIX:
        remove_path(address)
    return result


@SETTINGS
@given(address=inet_addresses, closed=st.booleans())
def test_inet_addresses(address: Any, closed: bool) -> None:
    results = bind_outcomes(socket.AF_INET, address, closed, None)
    results["stdlib"] = stdlib_bind(socket.AF_INET, address, closed)
    assert_agree(results, f"bind({address!r}), closed={closed}")


@pytest.mark.skipif(not HAS_IPV6, reason="no IPv6 loopback")
@SETTINGS
@given(address=inet6_addresses, closed=st.booleans())
def test_inet6_addresses(address: Any, closed: bool) -> None:
    results = bind_outcomes(socket.AF_INET6, address, closed, None)
    results["stdlib"] = stdlib_bind(socket.AF_INET6, address, closed)
    assert_agree(results, f"bind({address!r}), closed={closed}")


def has_inner_nul(address: Any) -> bool:
    raw = address.encode("latin-1") if isinstance(address, str) else address
    return isinstance(raw, (bytes, bytearray)) and b"\0" in bytes(raw)[1:]


@SETTINGS
@given(address=unix_addresses, closed=st.booleans())
def test_unix_addresses(address: Any, closed: bool, unix_dir: str,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(unix_dir)  # relative paths land in a private directory
    results = bind_outcomes(socket.AF_UNIX, address, closed, unix_dir)
    if not has_inner_nul(address):  # the one deliberate difference from the stdlib
        results["stdlib"] = stdlib_bind(socket.AF_UNIX, address, closed)
    assert_agree(results, f"bind({address!r}), closed={closed}")


# -- receiving into buffers ------------------------------------------------------------

FLAGS = st.one_of(st.sampled_from([0, socket.MSG_PEEK, socket.MSG_DONTWAIT]), int_like)
KNOWN_FLAGS = int(socket.MSG_PEEK) | int(socket.MSG_DONTWAIT)


def plain_flags(flags: Any) -> Any:
    """Flags a call may get: a C int with bits other than MSG_PEEK and
    MSG_DONTWAIT (which mean other things to other sockets) becomes 0;
    anything else stays, to be refused."""
    if type(flags) is int and -2**31 <= flags < 2**31 and flags & ~KNOWN_FLAGS:
        return 0
    return flags


@SETTINGS
@given(size=st.integers(0, 64), nbytes=st.one_of(st.integers(-2, 70), int_like), flags=FLAGS,
       data=st.binary(min_size=1, max_size=40), method=st.sampled_from(["recv_into", "recv"]))
def test_receive_sizes_and_flags(size: int, nbytes: Any, flags: Any, data: bytes,
                                 method: str) -> None:
    def run(pair: tuple[Any, Any]) -> tuple[Any, ...]:
        a, b = pair
        with a, b:
            a.sendall(data)
            b.settimeout(5.0)
            if method == "recv":
                return outcome(lambda: b.recv(nbytes, flags))
            target = bytearray(size)
            result = outcome(lambda: b.recv_into(target, nbytes, flags))
            return result + (bytes(target),)

    if method == "recv" and isinstance(nbytes, (int, Index)) and \
            1 << 20 < nbytes.__index__() < 2**63:
        nbytes = 1 << 20  # recv allocates that much
    flags = plain_flags(flags)
    results = {name: run(impl.socketpair()) for name, impl in implementations().items()}
    results["stdlib"] = run(socket.socketpair())
    assert_agree(results, f"{method}(bytearray({size}), {nbytes!r}, {flags!r})")


@SETTINGS
@given(size=st.integers(0, 64), nbytes=st.one_of(st.integers(-2, 70), int_like), flags=FLAGS)
def test_recvfrom_into_sizes_and_flags(size: int, nbytes: Any, flags: Any) -> None:
    flags = plain_flags(flags)

    def run(pair: tuple[Any, Any]) -> tuple[Any, ...]:
        a, b = pair
        with a, b:
            a.send(b"0123456789")
            b.settimeout(5.0)
            target = bytearray(size)
            result = outcome(lambda: b.recvfrom_into(target, nbytes, flags))
            return result + (bytes(target),)

    pairs = {name: impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
             for name, impl in implementations().items()}
    results = {name: run(pair) for name, pair in pairs.items()}
    results["stdlib"] = run(socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
    assert_agree(results, f"recvfrom_into(bytearray({size}), {nbytes!r}, {flags!r})")


# -- timeouts ------------------------------------------------------------------------

timeouts = st.one_of(
    st.none(),
    st.floats(min_value=0.0, max_value=1e4),
    st.floats(min_value=0.0, max_value=1e-6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 10**6).map(lambda n: n),
    st.sampled_from([9.2e9, 9.3e9, 1e-300, 5e-324, 2**70, Index(3), True, "1", -0.0]),
)


@SETTINGS
@given(value=timeouts)
def test_timeout_round_trip(value: Optional[Any]) -> None:
    def run(sock: Any) -> tuple[Any, ...]:
        with sock:
            result = outcome(lambda: sock.settimeout(value))
            return result + (sock.gettimeout(), sock.getblocking())

    results = {name: run(impl.StreamSocket()) for name, impl in implementations().items()}
    results["stdlib"] = run(socket.socket())
    if isinstance(value, float) and math.isnan(value):
        # the stdlib's message for NaN differs by Python version; fastsock's is fixed
        results = {name: (result[0],) + result[2:] for name, result in results.items()}
    assert_agree(results, f"settimeout({value!r})")


# -- socket options ------------------------------------------------------------------

INT_OPTIONS = [(socket.SOL_SOCKET, socket.SO_REUSEADDR), (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
               (socket.SOL_SOCKET, socket.SO_RCVBUF), (socket.SOL_SOCKET, socket.SO_SNDBUF),
               (socket.SOL_SOCKET, socket.SO_TYPE), (socket.SOL_SOCKET, socket.SO_LINGER),
               (socket.SOL_SOCKET, socket.SO_RCVLOWAT), (socket.IPPROTO_TCP, socket.TCP_NODELAY),
               (socket.IPPROTO_TCP, socket.TCP_MAXSEG), (socket.IPPROTO_IP, socket.IP_TTL),
               (socket.SOL_SOCKET, 12345), (9999, 1)]
values = st.one_of(int_like, st.binary(max_size=24), st.binary(max_size=24).map(bytearray))
buflens = st.one_of(st.just(0), st.integers(-2, 40), st.sampled_from([1024, 1025, 2**40]),
                    int_like)


@SETTINGS
@given(option=st.sampled_from(INT_OPTIONS), value=st.one_of(st.none(), values),
       buflen=buflens, closed=st.booleans())
def test_socket_options(option: tuple[int, int], value: Any, buflen: Any, closed: bool) -> None:
    level, name = option

    def run(sock: Any) -> tuple[Any, ...]:
        with sock:
            if closed:
                sock.close()
            first = ("skipped",) if value is None else outcome(
                lambda: sock.setsockopt(level, name, value))
            return first + outcome(lambda: sock.getsockopt(level, name, buflen))

    results = {impl_name: run(impl.StreamSocket())
               for impl_name, impl in implementations().items()}
    results["stdlib"] = run(socket.socket())
    assert_agree(results, f"setsockopt({level}, {name}, {value!r}); "
                          f"getsockopt(..., {buflen!r}), closed={closed}")

"""Fuzz target: address parsing and formatting, every family.

Builds an address of arbitrary shape (right or wrong tuple lengths, str /
bytes / bytearray / wrong-typed hosts, out-of-range ports, IPv6 flowinfo and
scope_id, AF_UNIX paths of any length, abstract names, embedded NULs, vsock
``(cid, port)`` pairs with any integers or wrong types) and
passes it to bind, connect, connect_ex and sendto on fresh sockets of both
implementations, open or already closed.  They must agree: the same result,
or the same exception type (and errno, or message).  A successful bind must
format back (getsockname) to the same address in both.

Only loopback addresses are ever connected or sent to; other hosts are
parsed through bind(), which sends nothing.  Host strings that are not
numeric are replaced by a loopback one, so the resolver never leaves the
machine.  A vsock stream socket is only bound (any CID: a bind sends
nothing) or given a malformed address: a connect could reach the host.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

import atheris

import harness
from harness import LOOPBACK_HOSTS, Weird, integer, pick

FAMILIES = (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX, socket.AF_VSOCK)
HOST_ALPHABET = "0123456789abcdef.:%lo<>broadcastABCDEF[]"
SUN_PATH_MAX = 108


def numeric(host: str, family: int) -> bool:
    try:
        socket.getaddrinfo(host, None, family, 0, 0, socket.AI_NUMERICHOST)
        return True
    except (socket.gaierror, UnicodeError, ValueError):
        return False


def host(fdp: atheris.FuzzedDataProvider, family: int, safe: bool) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 3 or safe:
        return pick(fdp, list(LOOPBACK_HOSTS) + ["0.0.0.0", "::"])
    if choice == 4:
        text = "".join(pick(fdp, HOST_ALPHABET) for _ in range(fdp.ConsumeIntInRange(0, 40)))
        # never a name the resolver would look up elsewhere
        if text and text != "<broadcast>" and not numeric(text, family):
            text = "127.0.0.1" if family == socket.AF_INET else "::1"
        return text
    if choice == 5:
        return pick(fdp, ["<broadcast>", "127.0.0.1\0", "::1\0x", "fe80::1%lo", "\udcff"])
    if choice == 6:
        raw = pick(fdp, [b"127.0.0.1", b"::1", b"", b"\0", b"127.0.0.1\0"])
        return bytearray(raw) if fdp.ConsumeBool() else raw
    return pick(fdp, [None, 1, 1.5, Weird(), ("127.0.0.1",), memoryview(b"::1")])


def inet_address(fdp: atheris.FuzzedDataProvider, family: int, safe: bool) -> Any:
    length = fdp.ConsumeIntInRange(0, 5) if fdp.ConsumeIntInRange(0, 7) == 0 else (
        2 if family == socket.AF_INET or fdp.ConsumeBool() else fdp.ConsumeIntInRange(3, 4))
    items: list[Any] = [host(fdp, family, safe)]
    items.append(integer(fdp, 65540))
    while len(items) < length:
        items.append(integer(fdp, 1 << 21) if fdp.ConsumeBool() else fdp.ConsumeInt(5))
    items = items[:length]
    if fdp.ConsumeIntInRange(0, 15) == 0:
        return list(items)  # a list is not a tuple
    return tuple(items)


def unix_address(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    size = pick(fdp, [0, 1, 5, SUN_PATH_MAX - 2, SUN_PATH_MAX - 1, SUN_PATH_MAX,
                                SUN_PATH_MAX + 1, 300, fdp.ConsumeIntInRange(0, 200)])
    raw = fdp.ConsumeBytes(size)
    raw = raw.replace(b"/", b"_")  # stay inside the private directory
    if choice <= 2:
        return b"\0" + raw[:size]  # abstract
    if choice <= 5:
        return os.fsdecode(raw.replace(b"\0", b"_")) if fdp.ConsumeBool() else raw.replace(b"\0", b"_")
    if choice == 6:
        return raw  # may hold NULs anywhere
    if choice == 7:
        return bytearray(raw)
    if choice == 8:
        return memoryview(raw)
    return pick(fdp, [None, 5, ("x", 1), Weird(), raw.decode("latin-1")])


def vsock_address(fdp: atheris.FuzzedDataProvider) -> Any:
    """``(cid, port)``: any int-likes (the stdlib wraps them to 32 bits), or a
    wrong shape or element type."""
    def number() -> Any:
        return pick(fdp, [socket.VMADDR_CID_ANY, 1, 2, -1, 1 << 32, integer(fdp, 1 << 33)])
    address: Any = (number(), number())
    if fdp.ConsumeIntInRange(0, 3) == 0:
        return pick(fdp, [address[:1], address + (1,), (address[0], Weird()), (1.5, 1),
                          (address[0], "1"), list(address), None, (), b"\0", "vsock"])
    return address


def cleanup(address: Any) -> None:
    """Remove the file a bind to a path made (so the other implementation can bind it)."""
    if isinstance(address, (bytearray, memoryview)):
        address = bytes(address)
    if isinstance(address, (str, bytes)) and address and address[:1] not in ("\0", b"\0"):
        try:
            os.unlink(address)
        except (OSError, ValueError, TypeError):
            pass


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    family = pick(fdp, FAMILIES)
    kind = pick(fdp, [socket.SOCK_DGRAM, socket.SOCK_STREAM])
    op = pick(fdp, ["bind", "bind", "connect", "connect_ex", "sendto"])
    closed = fdp.ConsumeIntInRange(0, 7) == 0
    if op == "sendto":
        kind = socket.SOCK_DGRAM
    safe = op != "bind" and not closed
    if family == socket.AF_VSOCK:
        # no datagram transport to test against; a connect could reach the host
        kind = socket.SOCK_STREAM
        op = "bind" if op == "sendto" else op
        address = vsock_address(fdp)
        if op != "bind" and not closed and isinstance(address, tuple) and len(address) == 2:
            address = address + (0,)  # malformed: parsed, refused, never connected
    elif family == socket.AF_UNIX:
        address = unix_address(fdp)
    else:
        address = inet_address(fdp, family, safe)
    results: dict[str, tuple[str, Any]] = {}
    names: dict[str, Any] = {}
    for impl in harness.IMPLS:
        cls = impl.StreamSocket if kind == socket.SOCK_STREAM else impl.DatagramSocket
        sock = cls(family)
        try:
            sock.settimeout(harness.CALL_TIMEOUT)
            if closed:
                sock.close()
            if op == "sendto":
                call = lambda: sock.sendto(b"x", address)  # noqa: E731
            else:
                call = lambda: getattr(sock, op)(address)  # noqa: E731
            results[impl.IMPLEMENTATION] = harness.outcome(call)
            if op == "bind" and results[impl.IMPLEMENTATION][0] == "ok":
                names[impl.IMPLEMENTATION] = harness.outcome(sock.getsockname)
        finally:
            sock.close()
            if op == "bind":
                cleanup(address)
    harness.same(f"{op}({address!r}) family={family} kind={kind} closed={closed}", results)
    if len(names) == 2:
        if family != socket.AF_UNIX:
            # the port is the kernel's choice when 0: compare the rest
            names = {k: (kind_, v[:1] + v[2:] if isinstance(v, tuple) else v)
                     for k, (kind_, v) in names.items()}
        elif len(address) == 0:
            # autobind: the kernel picks an abstract name; compare its form
            names = {k: (kind_, (type(v), len(v), v[:1])) for k, (kind_, v) in names.items()}
        harness.same(f"getsockname after bind({address!r})", names)


if __name__ == "__main__":
    harness.unix_dir()
    harness.main(one_input)

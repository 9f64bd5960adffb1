"""Fuzz target: setsockopt and getsockopt, and the constructor's arguments.

Arbitrary levels, option names, values (ints of any size, bytes of any
length, objects of wrong types; the 4-argument form with None and a length)
and getsockopt buflen values, on fresh sockets of both implementations
(every family, stream and datagram, open or closed).  They must agree with
each other exactly: the same int, the same raw bytes for a buflen
(uninitialised memory would differ), or the same exception.  Sometimes the
socket is first made with fuzzed constructor arguments (family, type with
flags, protocol), where both must agree too.

Option names come from a list of harmless ones per level, plus numbers no
level uses: an arbitrary option could join a multicast group on a real
interface, which sends packets off the machine.
"""

from __future__ import annotations

import socket
from typing import Any

import atheris

import harness
from harness import Index, Weird, pick

IPPROTO_UDP = 17
SOL_UDP = 17
OPTIONS: dict[int, list[int]] = {
    socket.SOL_SOCKET: [socket.SO_REUSEADDR, socket.SO_REUSEPORT, socket.SO_KEEPALIVE,
                        socket.SO_RCVBUF, socket.SO_SNDBUF, socket.SO_RCVLOWAT,
                        socket.SO_SNDLOWAT, socket.SO_LINGER, socket.SO_RCVTIMEO,
                        socket.SO_SNDTIMEO, socket.SO_TYPE, socket.SO_ERROR,
                        socket.SO_BROADCAST, socket.SO_OOBINLINE, socket.SO_PRIORITY,
                        socket.SO_DOMAIN, socket.SO_PROTOCOL, socket.SO_ACCEPTCONN,
                        socket.SO_PASSCRED, socket.SO_PEERCRED, socket.SO_DONTROUTE,
                        socket.SO_MARK, 12345],
    socket.IPPROTO_TCP: [socket.TCP_NODELAY, socket.TCP_MAXSEG, socket.TCP_KEEPIDLE,
                         socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT, socket.TCP_CORK,
                         socket.TCP_QUICKACK, socket.TCP_USER_TIMEOUT, 999],
    socket.IPPROTO_IP: [socket.IP_TOS, socket.IP_TTL, socket.IP_RECVTOS,
                        socket.IP_MULTICAST_TTL, socket.IP_MULTICAST_LOOP, 999],
    socket.IPPROTO_IPV6: [socket.IPV6_V6ONLY, socket.IPV6_UNICAST_HOPS,
                          socket.IPV6_MULTICAST_HOPS, socket.IPV6_RECVTCLASS, 999],
    SOL_UDP: [103, 104, 1, 999],  # UDP_SEGMENT, UDP_GRO, UDP_CORK
}
# values that are the same on every fresh socket of a kind; anything else
# (a cookie, counters) may differ between two sockets and is not compared
STABLE = {level: set(names) for level, names in OPTIONS.items()}


def value_arg(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 3:
        return fdp.ConsumeIntInRange(-2, 1 << 17)
    if choice == 4:
        return fdp.ConsumeInt(9)
    if choice <= 6:
        raw = fdp.ConsumeBytes(pick(fdp, [0, 1, 4, 8, 16, fdp.ConsumeIntInRange(0, 300)]))
        return pick(fdp, [bytes, bytearray, memoryview])(raw)
    if choice == 7:
        return Index(fdp.ConsumeIntInRange(0, 1 << 20))
    return pick(fdp, [None, 1.0, "1", Weird(), True, memoryview(bytearray(8))[::2],
                      memoryview(bytearray(8)).cast("i")])


def optlen_arg(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 7)
    if choice <= 4:
        return fdp.ConsumeIntInRange(0, 300)
    return pick(fdp, [-1, 2**32 + 4, 2**64, 1.0, "4", Index(4), None])


def constructor_args(fdp: atheris.FuzzedDataProvider, family: int, kind: int) -> tuple[Any, ...]:
    flags = pick(fdp, [0, socket.SOCK_NONBLOCK, socket.SOCK_CLOEXEC,
                       socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC])
    type_arg = pick(fdp, [kind | flags, -1, kind | flags, socket.SOCK_RAW,
                          socket.SOCK_SEQPACKET, 2**40, "1", Index(kind), 99])
    proto = pick(fdp, [0, -1, 0, socket.IPPROTO_TCP, socket.IPPROTO_UDP, 255, 2**40,
                       1.0, Index(0)])
    family_arg = pick(fdp, [family, family, -1, 99, Index(family), None])
    return family_arg, type_arg, proto


def level_and_name(fdp: atheris.FuzzedDataProvider) -> tuple[Any, Any]:
    if fdp.ConsumeIntInRange(0, 15) == 0:
        return pick(fdp, [(2**40, 1), (1.0, 1), (socket.SOL_SOCKET, None), (Index(1), Index(2)),
                          (9999, 1), (-1, 1), (socket.SOL_SOCKET, -2**31 - 1)])
    level = pick(fdp, list(OPTIONS))
    return level, pick(fdp, OPTIONS[level])


def buflen_arg(fdp: atheris.FuzzedDataProvider) -> Any:
    choice = fdp.ConsumeIntInRange(0, 9)
    if choice <= 2:
        return 0
    if choice <= 6:
        return fdp.ConsumeIntInRange(1, 64)
    if choice == 7:
        return fdp.ConsumeIntInRange(-5, 2000)
    return pick(fdp, [None, 1.0, Index(4), 2**64, False, 1024, 1025])


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    family = pick(fdp, [socket.AF_INET, socket.AF_INET6, socket.AF_UNIX])
    kind = pick(fdp, [socket.SOCK_STREAM, socket.SOCK_DGRAM])
    closed = fdp.ConsumeIntInRange(0, 15) == 0
    steps = []
    for _ in range(fdp.ConsumeIntInRange(1, 4)):
        level, name = level_and_name(fdp)
        if fdp.ConsumeIntInRange(0, 7) == 0:
            steps.append(("set4", level, name, optlen_arg(fdp)))
        elif fdp.ConsumeBool():
            steps.append(("set", level, name, value_arg(fdp)))
        steps.append(("get", level, name, buflen_arg(fdp)))
    made_with = constructor_args(fdp, family, kind) if fdp.ConsumeIntInRange(0, 7) == 0 \
        else (family,)
    results: dict[str, list[Any]] = {}
    for impl in harness.IMPLS:
        cls = impl.StreamSocket if kind == socket.SOCK_STREAM else impl.DatagramSocket
        log = results.setdefault(impl.IMPLEMENTATION, [])
        made = harness.outcome(lambda: cls(*made_with))
        if made[0] != "ok":
            log.append(made)
            continue
        sock = made[1]
        log.append(("ok", (sock.family, sock.type, sock.proto, sock.gettimeout())))
        try:
            if closed:
                sock.close()
            for op, level, name, arg in steps:
                if op == "set":
                    log.append(harness.outcome(lambda: sock.setsockopt(level, name, arg)))
                elif op == "set4":
                    log.append(harness.outcome(
                        lambda: sock.setsockopt(level, name, None, arg)))
                else:
                    log.append(harness.outcome(lambda: sock.getsockopt(level, name, arg)))
        finally:
            sock.close()
    for step, ((kind_c, c_value), (kind_p, p_value)) in enumerate(
            zip(results["cython"], results["python"])):
        harness.same(f"step {step} {steps_label(steps)}",
                     {"cython": (kind_c, c_value), "python": (kind_p, p_value)})


def steps_label(steps: list[Any]) -> str:
    return "; ".join(f"{op}({level!r}, {name!r}, {arg!r:.40})" for op, level, name, arg in steps)


if __name__ == "__main__":
    harness.main(one_input)

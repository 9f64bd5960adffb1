"""ICMP echo on fastsock: ``python -m fastsock.ping HOST``.

Mirrors the classic tool: ``-c COUNT`` echo requests (default: until Ctrl-C)
``-i INTERVAL`` seconds apart (default 1), waiting ``-W TIMEOUT`` seconds for
the last replies (default 10), ``-s SIZE`` data bytes (default 56), ``-4``/``-6``
to choose the family of HOST.  One line per reply::

    64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.045 ms

then, at the end or on Ctrl-C, the summary: packets transmitted and received,
loss, and rtt min/avg/max/mdev.

It sends from a RawSocket (IPPROTO_ICMP or IPPROTO_ICMPV6), which needs
CAP_NET_RAW; without it, from an ICMP "ping socket" (a DatagramSocket with
proto IPPROTO_ICMP/IPPROTO_ICMPV6), which Linux allows to the groups in
net.ipv4.ping_group_range, and on which the kernel sets the identifier.
Replies are checked: the ICMP checksum (IPv4; the kernel checks ICMPv6), the
identifier (replies to other processes are ignored) and the sequence number.

Exit status: 0 when replies came, 1 when none did, 2 on errors (usage, a
host that does not resolve, no socket allowed, every send failing).  Errors
are one line on stderr, never a traceback.  Uses only fastsock's public API.
"""

from __future__ import annotations

import argparse
import math
import os
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import fastsock
from fastsock._demo import program_name

_ECHO_REQUEST: Dict[int, int] = {fastsock.AF_INET: 8, fastsock.AF_INET6: 128}
_ECHO_REPLY: Dict[int, int] = {fastsock.AF_INET: 0, fastsock.AF_INET6: 129}
_PROTOCOL: Dict[int, int] = {fastsock.AF_INET: fastsock.IPPROTO_ICMP, fastsock.AF_INET6: fastsock.IPPROTO_ICMPV6}
_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_STAMP = struct.Struct("!d")       # the send time, first in the data: needs -s 8 or more
_INT = struct.Struct("=i")
# the received packet's TTL / hop limit arrives as ancillary data; Linux's
# number where the stdlib lacks the name (IP_RECVTTL before 3.12)
_IP_RECVTTL = int(getattr(fastsock, "IP_RECVTTL", 12))
_TTL_OPTIONS: Dict[int, Tuple[int, int, int]] = {
    fastsock.AF_INET: (fastsock.IPPROTO_IP, _IP_RECVTTL, fastsock.IP_TTL),
    fastsock.AF_INET6: (fastsock.IPPROTO_IPV6, fastsock.IPV6_RECVHOPLIMIT,
                        fastsock.IPV6_HOPLIMIT),
}
_CONTROL_SIZE = fastsock.CMSG_SPACE(_INT.size)


class PingError(Exception):
    """An error that ends ping with status 2 (the message is printed)."""


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: the ones' complement of the
    ones' complement sum of its 16-bit big-endian words."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def echo_request(family: int, identifier: int, sequence: int, data: bytes) -> bytes:
    """An ICMP (or ICMPv6) echo request; the ICMPv6 checksum is left to the
    kernel, which alone knows the source address it covers."""
    packet = _HEADER.pack(_ECHO_REQUEST[family], 0, 0, identifier, sequence) + data
    if family == fastsock.AF_INET:
        packet = packet[:2] + struct.pack("!H", checksum(packet)) + packet[4:]
    return packet


@dataclass
class Reply:
    """An echo reply for us: its sequence number, ICMP length and TTL (None
    when the kernel did not say)."""

    sequence: int
    size: int
    ttl: Optional[int]
    data: bytes


def parse_reply(family: int, packet: bytes, raw: bool, identifier: Optional[int],
                ttl: Optional[int]) -> Optional[Reply]:
    """The echo reply in ``packet``, or None for anything else (our own request
    seen on loopback, other ICMP, another process's reply, a bad checksum).
    A raw IPv4 packet starts with its IP header, whose TTL is used."""
    if raw and family == fastsock.AF_INET:
        if len(packet) < 20:
            return None
        ttl = packet[8]
        packet = packet[(packet[0] & 0x0F) * 4:]
    if len(packet) < _HEADER.size:
        return None
    kind, code, _, ident, sequence = _HEADER.unpack_from(packet)
    if kind != _ECHO_REPLY[family] or code != 0:
        return None
    if identifier is not None and ident != identifier:
        return None
    if family == fastsock.AF_INET and checksum(packet) != 0:
        return None
    return Reply(sequence, len(packet), ttl, packet[_HEADER.size:])


@dataclass
class Statistics:
    transmitted: int = 0
    received: int = 0
    duplicates: int = 0
    send_errors: int = 0
    rtts: List[float] = field(default_factory=list)  # milliseconds

    def summary(self, host: str, elapsed: float) -> str:
        loss = 0 if not self.transmitted else \
            100 * (self.transmitted - self.received) / self.transmitted
        lines = [f"--- {host} ping statistics ---",
                 f"{self.transmitted} packets transmitted, {self.received} received, "
                 + (f"+{self.duplicates} duplicates, " if self.duplicates else "")
                 + (f"+{self.send_errors} errors, " if self.send_errors else "")
                 + f"{loss:g}% packet loss, time {elapsed * 1000:.0f}ms"]
        if self.rtts:
            mean = sum(self.rtts) / len(self.rtts)
            variance = sum(rtt * rtt for rtt in self.rtts) / len(self.rtts) - mean * mean
            mdev = math.sqrt(max(variance, 0.0))
            lines.append(f"rtt min/avg/max/mdev = {min(self.rtts):.3f}/{mean:.3f}/"
                         f"{max(self.rtts):.3f}/{mdev:.3f} ms")
        return "\n".join(lines)


def resolve(host: str, family: int) -> Tuple[int, Any]:
    """The first address of ``host`` (of ``family``, or any when AF_UNSPEC)."""
    try:
        infos = fastsock.getaddrinfo(host, None, family, fastsock.SOCK_DGRAM)
    except fastsock.gaierror as exc:
        raise PingError(f"{host}: {exc.strerror}") from None
    for info in infos:
        if info[0] in _ECHO_REQUEST:
            return info[0], info[4]
    raise PingError(f"{host}: no IPv4 or IPv6 address")


def open_socket(family: int) -> Tuple[Any, bool]:
    """A RawSocket, or without the privilege for one a ping socket; and
    whether it is raw."""
    try:
        return fastsock.RawSocket(family), True
    except PermissionError as raw_error:
        try:
            return fastsock.DatagramSocket(family, fastsock.SOCK_DGRAM, _PROTOCOL[family]), False
        except PermissionError:
            raise PingError(f"{raw_error.strerror}; and ping sockets are not allowed for "
                            f"this group (net.ipv4.ping_group_range)") from None
    except OSError as exc:
        raise PingError(f"socket: {exc.strerror}") from None


class Pinger:
    """Sends the echo requests and prints each reply as it comes."""

    def __init__(self, sock: Any, raw: bool, family: int, address: Any, size: int,
                 out: Any) -> None:
        self.sock, self.raw, self.family, self.address = sock, raw, family, address
        self.size, self.out = size, out
        # a ping socket's identifier is its port, set by the kernel on the first send
        self.identifier: Optional[int] = os.getpid() & 0xFFFF if raw else None
        self.sent_at: Dict[int, float] = {}
        self.answered: set[int] = set()
        self.stats = Statistics()
        level, option, _ = _TTL_OPTIONS[family]
        sock.setsockopt(level, option, 1)

    def send(self, sequence: int) -> None:
        stamp = time.monotonic()
        filler = bytes(i & 0xFF for i in range(max(self.size - _STAMP.size, 0)))
        data = (_STAMP.pack(stamp) + filler)[:self.size]
        packet = echo_request(self.family, self.identifier or 0, sequence & 0xFFFF, data)
        self.stats.transmitted += 1
        try:
            self.sock.sendto(packet, self.address)
        except OSError as exc:
            self.stats.send_errors += 1
            print(f"ping: sendto: {exc.strerror}", file=sys.stderr)
            return
        self.sent_at[sequence & 0xFFFF] = stamp
        if self.identifier is None:
            self.identifier = self.sock.getsockname()[1]

    def receive_until(self, deadline: float, stop_when_answered: bool = False) -> None:
        """Print the replies that come before ``deadline`` (monotonic)."""
        level, _, ttl_type = _TTL_OPTIONS[self.family]
        while True:
            if stop_when_answered and self.answered >= self.sent_at.keys():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.sock.settimeout(remaining)
            try:
                packet, ancillary, _, sender = self.sock.recvmsg(65535, _CONTROL_SIZE)
            except TimeoutError:
                return
            arrived = time.monotonic()
            ttl = None
            for cmsg_level, cmsg_type, cmsg_data in ancillary:
                if cmsg_level == level and cmsg_type == ttl_type and len(cmsg_data) >= _INT.size:
                    ttl = _INT.unpack_from(cmsg_data)[0]
            reply = parse_reply(self.family, packet, self.raw, self.identifier, ttl)
            if reply is None or reply.sequence not in self.sent_at:
                continue  # not ours: another process's, or ICMP of another kind
            self.report(reply, sender[0], arrived)

    def report(self, reply: Reply, source: str, arrived: float) -> None:
        sent = self.sent_at[reply.sequence]
        if len(reply.data) >= _STAMP.size and _STAMP.unpack_from(reply.data)[0] != sent:
            return  # an old reply whose sequence number came round again
        duplicate = reply.sequence in self.answered
        rtt = (arrived - sent) * 1000
        if duplicate:
            self.stats.duplicates += 1
        else:
            self.answered.add(reply.sequence)
            self.stats.received += 1
            self.stats.rtts.append(rtt)
        ttl = f" ttl={reply.ttl}" if reply.ttl is not None else ""
        print(f"{reply.size} bytes from {source}: icmp_seq={reply.sequence}{ttl} "
              f"time={rtt:.3f} ms" + (" (DUP!)" if duplicate else ""), file=self.out,
              flush=True)


def _positive_count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid count: {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"invalid time: {text}")
    return value


def _size(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65507:
        raise argparse.ArgumentTypeError(f"invalid size: {text}")
    return value


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog=program_name("fastsock.ping", __file__),
        description="Send ICMP echo requests to HOST with fastsock.",
        epilog="Exit status: 0 replies came, 1 none did, 2 error.",
    )
    parser.add_argument("host", metavar="HOST")
    parser.add_argument("-c", dest="count", type=_positive_count, default=None,
                        help="stop after COUNT requests (default: until Ctrl-C)")
    parser.add_argument("-i", dest="interval", type=_seconds, default=1.0,
                        help="seconds between requests (default 1)")
    parser.add_argument("-W", dest="timeout", type=_seconds, default=10.0,
                        help="seconds to wait for the last replies (default 10)")
    parser.add_argument("-s", dest="size", type=_size, default=56,
                        help="data bytes per request (default 56)")
    families = parser.add_mutually_exclusive_group()
    families.add_argument("-4", dest="family", action="store_const", const=fastsock.AF_INET,
                          default=fastsock.AF_UNSPEC, help="IPv4 only")
    families.add_argument("-6", dest="family", action="store_const", const=fastsock.AF_INET6,
                          help="IPv6 only")
    args = parser.parse_args(argv)

    try:
        family, address = resolve(args.host, args.family)
        sock, raw = open_socket(family)
    except PingError as exc:
        print(f"ping: {exc}", file=sys.stderr)
        return 2
    numeric = address[0]
    with sock:
        pinger = Pinger(sock, raw, family, address, args.size, sys.stdout)
        # with the IP and ICMP headers: 20 + 8 bytes (IPv4), 40 + 8 (IPv6)
        whole = args.size + (28 if family == fastsock.AF_INET else 48)
        print(f"PING {args.host} ({numeric}) {args.size}({whole}) bytes of data.", flush=True)
        started = time.monotonic()
        try:
            sequence = 1
            while args.count is None or sequence <= args.count:
                pinger.send(sequence)
                if args.count is not None and sequence == args.count:
                    break
                pinger.receive_until(time.monotonic() + args.interval)
                sequence += 1
            pinger.receive_until(time.monotonic() + args.timeout, stop_when_answered=True)
        except KeyboardInterrupt:
            print(file=sys.stdout)  # the classic tool's line break after ^C
        print(pinger.stats.summary(args.host, time.monotonic() - started), flush=True)
    stats = pinger.stats
    if stats.received:
        return 0
    return 2 if stats.send_errors == stats.transmitted and stats.transmitted else 1


if __name__ == "__main__":
    sys.exit(main())

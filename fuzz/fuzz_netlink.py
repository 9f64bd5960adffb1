"""Fuzz target: the netlink splitter and the sorting of a reply.

Builds a buffer of netlink messages whose headers may lie (a length too
small, too large, past the end, 0, 2**32-1), with or without the padding,
with stray bytes at the end, or plain arbitrary bytes, sometimes at an odd
offset of a larger buffer (unaligned), and splits it with the compiled
splitter and the pure one: the same messages or the same error.  Split
messages must tile the buffer: each payload is the bytes after its header.
The sorting of a reply (``_take_replies``: this request's messages, the
others kept, NLMSG_DONE, ACK, NLMSG_ERROR) must agree on the same messages,
and the same buffer received as a datagram by a NetlinkSocket of each
implementation (from a NETLINK_USERSOCK peer) must give what the splitter
gave.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

import atheris

import harness
from harness import Defect, pick

from fastsock import _netlink_py

HEADER = struct.Struct("=IHHII")
TYPES = (1, 2, 3, 16, 20, 24, 0, 0xFFFF)  # NOOP, ERROR, DONE, a few others
FLAGS = (0, 2, 0x100, 0x302, 0xFFFF)

_sockets: dict[str, Any] = {}


def build(fdp: atheris.FuzzedDataProvider) -> bytes:
    if fdp.ConsumeIntInRange(0, 5) == 0:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 300))
    data = b""
    for _ in range(fdp.ConsumeIntInRange(0, 6)):
        payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 40))
        if fdp.ConsumeIntInRange(0, 3) == 0:  # an error code the sorting reads
            payload = struct.pack("=i", pick(fdp, [0, -1, -17, -4, 5, -(2**31)])) + payload
        length = 16 + len(payload)
        lie = fdp.ConsumeIntInRange(0, 9)
        if lie == 0:
            length = pick(fdp, [0, 1, 15, 16, length + 1, length + 4, 0xFFFFFFFF,
                                fdp.ConsumeIntInRange(0, 200)])
        seq = pick(fdp, [0, 1, 7, 0xFFFFFFFF])
        pid = pick(fdp, [0, 1, 4242])
        data += HEADER.pack(length, pick(fdp, TYPES), pick(fdp, FLAGS), seq, pid) + payload
        if fdp.ConsumeIntInRange(0, 4):
            data += bytes(-len(data) % 4)
    if fdp.ConsumeIntInRange(0, 7) == 0:
        data += fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 20))
    return data


def check_tiling(data: bytes, messages: list[Any]) -> None:
    offset = 0
    for message in messages:
        length = HEADER.unpack_from(data, offset)[0]
        if message.payload != data[offset + 16:offset + length]:
            raise Defect(f"payload of the message at offset {offset} is not its bytes")
        offset += (length + 3) & ~3
    if messages and offset < len(data):
        raise Defect(f"messages end at {offset}, the buffer at {len(data)}")


def received(impl: Any, data: bytes) -> tuple[str, Any]:
    """The buffer sent as one datagram to a NetlinkSocket of ``impl``."""
    name = impl.IMPLEMENTATION
    if name not in _sockets:
        peer = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_USERSOCK)
        peer.bind((0, 0))
        ours = impl.NetlinkSocket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_USERSOCK)
        ours.bind((0, 0))
        ours.settimeout(harness.CALL_TIMEOUT)
        _sockets[name] = (peer, ours)
    peer, ours = _sockets[name]
    peer.sendto(data, ours.getsockname())
    return harness.outcome(ours.recv_messages)


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    buffer = build(fdp)
    shift = pick(fdp, [0, 0, 1, 3])
    seq = pick(fdp, [0, 1, 7, 0xFFFFFFFF])
    pid = pick(fdp, [0, 1, 4242])
    wait_ack = fdp.ConsumeBool()
    through_socket = fdp.ConsumeIntInRange(0, 7) == 0
    view = memoryview(bytes(shift) + buffer)[shift:]
    splitters = {"cython": harness.cy._split_netlink, "python": _netlink_py._split_netlink}
    results = {name: harness.outcome(lambda split=split: split(view))
               for name, split in splitters.items()}
    harness.same("split", results)
    status, messages = results["python"]
    if status != "ok":
        return
    check_tiling(buffer, messages)
    sorted_out = {}
    for name, take in (("cython", harness.cy._take_replies),
                       ("python", _netlink_py._take_replies)):
        replies: list[Any] = []
        unclaimed: list[Any] = []
        status, value = harness.outcome(
            lambda take=take: take(list(messages), seq, pid, wait_ack, replies, unclaimed))
        sorted_out[name] = (status, value if status == "ok" else harness.error_key(value),
                            replies, unclaimed)
    if sorted_out["cython"] != sorted_out["python"]:
        raise Defect(f"take_replies: {sorted_out}")
    if through_socket and len(buffer) > 0:
        got = {impl.IMPLEMENTATION: received(impl, buffer) for impl in harness.IMPLS}
        harness.same("recv_messages", got)
        if got["python"] != ("ok", messages):
            raise Defect(f"recv_messages gave {got['python']}, the splitter {messages}")


if __name__ == "__main__":
    harness.main(one_input)

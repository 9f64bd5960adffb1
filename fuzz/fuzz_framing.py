"""Fuzz target: the message-framing parsers of StreamSocket.

An arbitrary byte stream (often shaped like length-prefixed frames with
hostile lengths, or like delimited records) is written over a loopback
socketpair in arbitrary chunks; after each chunk the reader makes
arbitrary calls among recv_msg, recv_msgs, recv_until and recv_exactly,
with arbitrary prefix_size / max_size / max_count / limit / delimiter
arguments, on a non-blocking socket (so a call that needs more data fails
with BlockingIOError and must put back what it took, or keep gathering a
frame over 64 KiB in its buffer).  At the end the writer
closes and the reader drains.

Both implementations must give the same results and exceptions at every
step, and reading the whole stream with recv_msg alone must give exactly
the frames a simple model parser finds.
"""

from __future__ import annotations

import socket
from typing import Any

import atheris

import harness
from harness import pick

PREFIXES = [1, 2, 4, 8]


# A frame over 64 KiB that arrives in pieces is gathered in the receive
# buffer between calls (StreamSocket._gathers); the whole stream stays within
# what the socketpair holds unread (SENDER_BUFFER), or the writer would block.
LARGE_FRAME = (65537, 200_000)
SENDER_BUFFER = 1 << 20


def shaped_stream(fdp: atheris.FuzzedDataProvider, prefix: int) -> bytes:
    out = bytearray()
    large = prefix >= 4 and fdp.ConsumeIntInRange(0, 3) == 0
    for _ in range(fdp.ConsumeIntInRange(0, 12)):
        choice = fdp.ConsumeIntInRange(0, 5)
        if large:  # one frame to gather, somewhere in the stream
            large = False
            pattern = fdp.ConsumeBytes(16) or b"L"
            size = fdp.ConsumeIntInRange(*LARGE_FRAME)
            payload = (pattern * (size // len(pattern) + 1))[:size]
            out += len(payload).to_bytes(8, "big")[-prefix:] + payload
        elif choice <= 2:  # a well-formed frame
            payload = fdp.ConsumeBytes(pick(fdp, [0, 1, 10, 300, fdp.ConsumeIntInRange(0, 5000)]))
            out += len(payload).to_bytes(8, "big")[-prefix:] + payload
        elif choice == 3:  # a hostile or truncated length
            out += fdp.ConsumeBytes(prefix)
        elif choice == 4:  # a record with a delimiter
            out += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 100)) + b"\r\n"
        else:
            out += fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 50))
    return bytes(out)


def call(fdp: atheris.FuzzedDataProvider) -> tuple[str, tuple[Any, ...]]:
    choice = fdp.ConsumeIntInRange(0, 9)
    prefix = pick(fdp, PREFIXES + [0, 3]) if fdp.ConsumeIntInRange(0, 9) == 0 else pick(fdp, PREFIXES)
    max_size = pick(fdp, [16 * 1024 * 1024, 1, 100, 5000, fdp.ConsumeIntInRange(-2, 70000), 0])
    if choice <= 2:
        return "recv_msg", (prefix, max_size)
    if choice <= 4:
        max_bytes = pick(fdp, [None, None, 1, 100, fdp.ConsumeIntInRange(-1, 70000), 0])
        return "recv_msgs", (fdp.ConsumeIntInRange(-1, 20), prefix, max_size, max_bytes)
    if choice <= 6:
        delim = pick(fdp, [b"\r\n", b"\n", b"\0", b"ab", b"\r\n\r\n", b""])
        return "recv_until", (delim, pick(fdp, [65536, 1, 2, 10, fdp.ConsumeIntInRange(-1, 6000)]))
    return "recv_exactly", (fdp.ConsumeIntInRange(-1, 3000),)


def run(sock: Any, name: str, args: tuple[Any, ...]) -> tuple[str, Any]:
    if name == "recv_msg":
        return harness.outcome(lambda: sock.recv_msg(prefix_size=args[0], max_size=args[1]))
    if name == "recv_msgs":
        return harness.outcome(lambda: sock.recv_msgs(args[0], prefix_size=args[1],
                                                      max_size=args[2], max_bytes=args[3]))
    return harness.outcome(lambda: getattr(sock, name)(*args))


def key(result: tuple[str, Any]) -> Any:
    """What must agree.  Not how much an implementation read ahead of what
    it returned (``buffered``, ``LimitOverrunError.consumed``): that is its
    own business, and plain recv() is left out for the same reason (it
    returns what is buffered, however much that is)."""
    kind, value = result
    if kind == "error":
        extras = tuple(getattr(value, attr, None)
                       for attr in ("partial", "expected", "size", "max_size"))
        return ("error",) + harness.error_key(value) + extras
    return ("ok", value)


def model_frames(stream: bytes, prefix: int) -> tuple[list[bytes], bytes]:
    """The complete frames of ``stream`` and the incomplete rest."""
    frames, pos = [], 0
    while len(stream) - pos >= prefix:
        length = int.from_bytes(stream[pos:pos + prefix], "big")
        if len(stream) - pos - prefix < length:
            break
        frames.append(stream[pos + prefix:pos + prefix + length])
        pos += prefix + length
    return frames, stream[pos:]


def one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    prefix = pick(fdp, PREFIXES)
    stream = shaped_stream(fdp, prefix)
    cuts = sorted(fdp.ConsumeIntInRange(0, len(stream)) for _ in range(fdp.ConsumeIntInRange(0, 6)))
    chunks = [stream[a:b] for a, b in zip([0] + cuts, cuts + [len(stream)])]
    only_msgs = fdp.ConsumeIntInRange(0, 3) == 0
    plan = [[("recv_msg", (prefix, 16 * 1024 * 1024)) if only_msgs else call(fdp)
             for _ in range(fdp.ConsumeIntInRange(0, 3))] for _ in chunks]
    drain = [("recv_msg", (prefix, 16 * 1024 * 1024)) if only_msgs else call(fdp)
             for _ in range(fdp.ConsumeIntInRange(1, 8))]
    logs: dict[str, list[Any]] = {}
    for impl in harness.IMPLS:
        a, b = impl.socketpair()
        log = logs.setdefault(impl.IMPLEMENTATION, [])
        try:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SENDER_BUFFER)
            b.settimeout(0.0)
            for chunk, calls in zip(chunks, plan):
                a.sendall(chunk)
                for name, args in calls:
                    log.append((name, key(run(b, name, args))))
            a.close()
            for name, args in drain:
                log.append((name, key(run(b, name, args))))
        finally:
            a.close()
            b.close()
    harness.same_logs(logs, width=500)
    if only_msgs:
        check_model(stream, prefix, logs["cython"])


def check_model(stream: bytes, prefix: int, log: list[Any]) -> None:
    frames, rest = model_frames(stream, prefix)
    got = [entry[1][1] for entry in log if entry[1][0] == "ok"]
    if got != frames[:len(got)]:
        raise harness.Defect(f"recv_msg frames differ from the model: {got!r:.300} != "
                             f"{frames!r:.300}")


if __name__ == "__main__":
    harness.main(one_input)

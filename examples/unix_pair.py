"""Length-prefixed messages between a parent and a forked child over a Unix socket pair.

``fastsock.socketpair()`` makes two connected Unix stream sockets; after
``os.fork()`` the parent keeps one end and the child the other.  Messages go
with ``send_msg`` (a 4-byte big-endian length, then the payload, in one
vectored send) and come back whole from ``recv_msg``/``recv_msgs``, which do
the framing in C: ``recv_msgs`` returns every complete message already
received in one call, however the stream cut them.

The parent sends a handful of messages (an empty one and a 100 KiB one
among them) and shuts its side down; the child answers each with its length
and CRC-32, then tells how many ``recv_msgs`` calls it took; the parent
checks every answer.  Run::

    python examples/unix_pair.py
"""

from __future__ import annotations

import os
import sys
import traceback
import zlib

import fastsock

MESSAGES = [
    b"hello, child",
    b"",
    "caf\u00e9 \u2615".encode(),
    bytes(range(256)) * 400,
    b"goodbye",
]


def summary(payload: bytes) -> bytes:
    """What the child answers for ``payload``."""
    return b"%d bytes, crc32 %08x" % (len(payload), zlib.crc32(payload))


def child(sock: fastsock.StreamSocket) -> None:
    """Answer every message until the parent closes its side, then report."""
    calls = count = 0
    while True:
        try:
            batch = sock.recv_msgs()          # every complete message already here
        except fastsock.IncompleteReadError as exc:
            if exc.partial:                   # the stream ended inside a message
                raise
            break                             # the end, between messages
        calls += 1
        for payload in batch:
            count += 1
            sock.send_msg(summary(payload))
    sock.send_msg(b"child: %d messages in %d recv_msgs call%s"
                  % (count, calls, b"" if calls == 1 else b"s"))


def parent(sock: fastsock.StreamSocket) -> bool:
    """Send MESSAGES, then read and check the child's answers; True when all match."""
    for payload in MESSAGES:
        sock.send_msg(payload)
    sock.shutdown(fastsock.SHUT_WR)           # no more messages: the child sees the end
    ok = True
    for payload in MESSAGES:
        answer = sock.recv_msg()
        match = answer == summary(payload)
        ok = ok and match
        print(f"sent {len(payload):6} bytes, child says: {answer.decode()}"
              f"{'' if match else '  (WRONG)'}")
    print(sock.recv_msg().decode())
    return ok


def main() -> int:
    print(f"unix_pair (fastsock {fastsock.IMPLEMENTATION})", flush=True)
    parent_end, child_end = fastsock.socketpair()
    pid = os.fork()
    if pid == 0:
        # the child: never return into the parent's code, whatever happens
        status = 1
        try:
            parent_end.close()
            with child_end:
                child(child_end)
            status = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(status)
    child_end.close()
    with parent_end:
        ok = parent(parent_end)
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    if code != 0:
        print(f"unix_pair: the child exited with {code}", file=sys.stderr)
    print("every answer matches" if ok else "some answers do not match")
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

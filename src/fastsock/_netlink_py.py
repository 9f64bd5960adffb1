"""Netlink sockets of the pure-Python twin (pair: _netlink_c.pxi): NetlinkSocket,
its receive that splits a datagram of netlink messages, and the request and
dump that collect a reply.

``_split_netlink`` and ``_take_replies`` are the reference the compiled
splitter is tested and fuzzed against (fuzz/fuzz_netlink.py).
"""

from __future__ import annotations

import socket as _stdlib
import struct
import threading
from typing import Any, Optional

from . import _common
from ._base_py import _c_int, _Steps
from ._common import (
    NETLINK_RECV_SIZE,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_HDRLEN,
    NLMSG_NOOP,
    NetlinkMessage,
)
from ._datagram_py import DatagramSocket

_HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
_ERROR_CODE = struct.Struct("=i")  # the first field of struct nlmsgerr, of NLMSG_DONE
_PEEK = _stdlib.MSG_PEEK | _stdlib.MSG_TRUNC
_new_message = tuple.__new__  # the named tuple's own __new__ is a slower Python function


def _split_netlink(data: Any) -> list[NetlinkMessage]:
    """The messages of a buffer of netlink messages, each 4-byte aligned; the length in
    a header is checked against what is left, never trusted (ValueError)."""
    view = memoryview(data).cast("B")
    size = len(view)
    messages = []
    offset = 0
    while offset < size:
        left = size - offset
        if left < NLMSG_HDRLEN:
            raise _common.malformed_netlink(offset, -1, left)
        length, kind, flags, seq, pid = _HEADER.unpack_from(view, offset)
        if length < NLMSG_HDRLEN or length > left:
            raise _common.malformed_netlink(offset, length, left)
        messages.append(_new_message(NetlinkMessage, (
            kind, flags, seq, pid, bytes(view[offset + NLMSG_HDRLEN:offset + length]))))
        offset += (length + 3) & ~3
    return messages


def _take_replies(messages: list[NetlinkMessage], seq: int, pid: int, wait_ack: bool,
                  replies: list[NetlinkMessage], unclaimed: list[NetlinkMessage]) -> bool:
    """Sort one datagram's messages: the reply to request ``seq`` from the kernel to
    port ``pid`` (or to port 0, as some kernel families address theirs) goes to
    ``replies``, anything else (notifications, stale replies) to ``unclaimed``.  True when the reply is complete: NLMSG_DONE, an ACK
    (NLMSG_ERROR with error 0), or a single (not NLM_F_MULTI) reply when no ACK was
    asked; an NLMSG_ERROR with an error, or a failed dump's NLMSG_DONE, raises it as
    OSError.  Messages after the end go to ``unclaimed``."""
    for index, message in enumerate(messages):
        if message.seq != seq or (message.pid != pid and message.pid != 0):
            unclaimed.append(message)
            continue
        kind = message.type
        if kind == NLMSG_DONE or kind == NLMSG_ERROR:
            unclaimed.extend(messages[index + 1:])
            payload = message.payload
            if len(payload) < _ERROR_CODE.size:
                if kind == NLMSG_DONE:
                    return True
                raise _common.short_netlink_error(kind, len(payload))
            error = _ERROR_CODE.unpack_from(payload)[0]
            if error:
                raise _common.netlink_error(error)
            return True
        if kind == NLMSG_NOOP:
            continue
        replies.append(message)
        if not message.flags & NLM_F_MULTI and not wait_ack:
            unclaimed.extend(messages[index + 1:])
            return True
    return False


class NetlinkSocket(DatagramSocket):
    """A netlink socket (AF_NETLINK) to talk to the kernel, like a stdlib socket of
    family AF_NETLINK.

    Made as a stdlib socket is, ``(family=AF_NETLINK, type=SOCK_RAW,
    proto=NETLINK_ROUTE, fileno=None)`` (-1 for each: that default); SOCK_DGRAM is
    taken too, and the protocol names the kernel subsystem (NETLINK_ROUTE,
    NETLINK_SOCK_DIAG, ...).  Addresses are ``(pid, groups)``, as the stdlib's.
    Besides a datagram socket's calls it splits what it receives into
    NetlinkMessage items (recv_messages) and sends a request and collects its reply
    (request, dump), checking every message length against the datagram.
    """

    __slots__ = ("_next_seq", "_port_id", "_unclaimed", "_receiving")
    _KIND = _common.SOCK_RAW
    _KINDS = (_common.SOCK_DGRAM,)
    _FAMILIES = _common.NETLINK_FAMILIES

    def _setup(self, sock: _stdlib.socket) -> None:
        super()._setup(sock)
        self._next_seq = 1
        self._port_id: Optional[int] = None
        # messages received but claimed by no request: notifications, replies
        # of a request that failed part-way; recv_messages() returns them first
        self._unclaimed: list[NetlinkMessage] = []
        self._receiving = threading.Lock()

    def recv_messages(self, flags: int = 0) -> list[NetlinkMessage]:
        """Receive one datagram and return its messages, NLMSG_DONE and NLMSG_ERROR
        ones included as they are; the messages kept from an earlier request()
        (notifications, replies of a request that failed) come first, without
        receiving.  However large the datagram, none of it is cut off.  ValueError
        when a message's length does not fit the datagram; RuntimeError while another
        thread receives messages on this socket.
        """
        cflags = _c_int(flags)
        if not self._receiving.acquire(blocking=False):
            raise _common.netlink_busy()
        try:
            if self._unclaimed:
                kept, self._unclaimed = self._unclaimed, []
                return kept
            steps = _Steps(self._sock, None, self._twins)
            try:
                data, _ = self._call(self._receive, steps, bytearray(NETLINK_RECV_SIZE),
                                     cflags)
            finally:
                steps.release()
            return _split_netlink(data)
        finally:
            self._receiving.release()

    def request(self, msg_type: int, payload: Any = b"",
                flags: int = NLM_F_REQUEST | NLM_F_ACK) -> list[NetlinkMessage]:
        """Send one message of type ``msg_type`` with ``payload`` (after its header) and
        the next sequence number, and return the messages of its reply: until
        NLMSG_DONE, the ACK (which is not returned), or a single reply when no
        NLM_F_ACK was asked.  An NLMSG_ERROR with an error raises it as OSError (its
        errno, e.g. FileExistsError); other messages received meanwhile are kept for
        recv_messages(), so are the replies received when the call fails.  The
        timeout bounds the whole call.
        """
        view = _common.readable_view(payload)
        kind, bits = _common.check_netlink_request(msg_type, flags, len(view))
        if not self._receiving.acquire(blocking=False):
            raise _common.netlink_busy()
        try:
            seq = self._next_seq
            self._next_seq = seq % 0xFFFFFFFF + 1  # 0 is left to notifications
            message = _HEADER.pack(NLMSG_HDRLEN + len(view), kind, bits, seq, 0) + view
            steps = _Steps(self._sock, None, self._twins)  # one deadline for the whole call
            try:
                replies: list[NetlinkMessage] = self._call(
                    self._exchange, steps, message, seq, bool(bits & NLM_F_ACK))
            finally:
                steps.release()
            return replies
        finally:
            self._receiving.release()

    def dump(self, msg_type: int, payload: Any = b"") -> list[NetlinkMessage]:
        """request() with NLM_F_REQUEST | NLM_F_DUMP: every object of a kind (routes,
        links, sockets, ...), collected across as many datagrams as the kernel sends
        until NLMSG_DONE.
        """
        return self.request(msg_type, payload, NLM_F_REQUEST | NLM_F_DUMP)

    def _exchange(self, steps: _Steps, message: bytes, seq: int,
                  wait_ack: bool) -> list[NetlinkMessage]:
        steps.sock(writing=True).send(message)
        if self._port_id is None:  # the kernel bound the socket at its first send
            self._port_id = self._sock.getsockname()[0]
        replies: list[NetlinkMessage] = []
        buffer = bytearray(NETLINK_RECV_SIZE)
        try:
            while True:
                # a buffer grown for a large datagram is kept for the next
                data, buffer = self._receive(steps, buffer, 0)
                if _take_replies(_split_netlink(data), seq, self._port_id, wait_ack,
                                 replies, self._unclaimed):
                    return replies
        except BaseException:
            self._unclaimed.extend(replies)
            raise

    def _receive(self, steps: _Steps, buffer: bytearray,
                 flags: int) -> tuple[memoryview, bytearray]:
        """One datagram, whole, and the buffer it is in: its size peeked first,
        ``buffer`` used when it fits."""
        size = steps.sock().recv_into(bytearray(1), 1, flags | _PEEK)
        if size > len(buffer):
            buffer = bytearray(size)
        received = steps.sock().recv_into(buffer, len(buffer), flags | _stdlib.MSG_TRUNC)
        if received > len(buffer):
            raise _common.netlink_truncated(received)
        return memoryview(buffer)[:received], buffer

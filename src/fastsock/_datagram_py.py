"""Datagram sockets of the pure-Python twin (pair: _datagram_c.pxi):
DatagramSocket with its batch paths, GSO and GRO (docs/datagram-fast-paths.md:
the same results as the compiled recvmmsg/sendmmsg paths, from loops over the
stdlib), and DatagramBatch.

It never imports the compiled module.
"""

from __future__ import annotations

import socket as _stdlib
import struct
from _thread import allocate_lock as _allocate_lock
from operator import index as _index
from typing import Any, Iterable, Iterator, Optional, Tuple

from ._base_py import _closed_error, _Socket, _Steps
from ._common import (
    AF_UNIX,
    AF_VSOCK,
    GSO_MAX_SEGMENTS,
    GSO_REFUSED,
    MAX_SLOT_SIZE,
    MAX_UDP_PAYLOAD,
    RAW_DEFAULT_PROTOS,
    RAW_FAMILIES,
    SOCK_DGRAM,
    SOCK_RAW,
    SOL_UDP,
    SUPPORTED_FAMILIES,
    UDP_GRO_OPT,
    UDP_SEGMENT_OPT,
    TruncatedDatagramError,
    check_size,
    readable_view,
    udp_gro_available,
    udp_gso_available,
)

_TRUNC: int = int(_stdlib.MSG_TRUNC)
_NOSIGNAL: int = int(getattr(_stdlib, "MSG_NOSIGNAL", 0))
_GRO_INFO = struct.Struct("=i")
_GRO_CONTROL = _stdlib.CMSG_SPACE(_GRO_INFO.size)


def _raise_busy() -> None:
    raise RuntimeError("the DatagramBatch is in use by a recv_batch in another thread")


class DatagramBatch:
    """Reusable memory for ``DatagramSocket.recv_batch``: ``count`` slots of
    ``slot_size`` bytes, with their lengths and senders.

    ``len(batch)`` is how many datagrams the last receive filled in, and iterating gives
    their ``(memoryview, address)`` pairs.  ``data(i)`` is a memoryview into the batch's
    own memory; while any such view is alive, ``recv_batch`` refuses to overwrite the
    batch (BufferError).  While a ``recv_batch`` into it runs (in another thread), a
    second one and new views or reads of it raise RuntimeError: what a view shows never
    changes under it.  ValueError for a count outside 1 to 2**20 or a slot_size
    outside 1 to 65536.
    """

    __slots__ = ("count", "slot_size", "_memory", "_lengths", "_senders", "_filled", "_busy")

    def __init__(self, count: int, slot_size: int = 2048) -> None:
        self.count = check_size(count, "count", 1 << 20)
        self.slot_size = check_size(slot_size, "slot_size", MAX_SLOT_SIZE)
        self._memory = bytearray(self.count * self.slot_size)
        self._lengths = [0] * self.count
        self._senders: list[Any] = [None] * self.count
        self._filled = 0
        self._busy = _allocate_lock()  # held while a receive into the batch runs

    def _claim(self) -> memoryview:
        """Mark the batch in use by one receive (the caller releases
        ``_busy`` when done); refused while another receive or a view has it."""
        if not self._busy.acquire(False):
            _raise_busy()
        try:  # a bytearray refuses to grow while a view of it is alive
            self._memory.append(0)
        except BufferError:
            self._busy.release()
            raise BufferError("the batch still has memoryviews alive; release them "
                              "before receiving into it again") from None
        self._memory.pop()
        self._filled = 0
        return memoryview(self._memory)

    def _receive(self, sock: Any) -> int:
        """One receive of ``sock`` (a DatagramSocket or SeqPacketSocket) into
        the batch, claimed for it meanwhile; how many messages it filled."""
        memory = self._claim()
        try:
            self._filled = sock._receive_into(memory, self.count, self.slot_size,
                                              self._lengths, self._senders)
        finally:
            memory.release()
            self._busy.release()
        return self._filled

    def _slot(self, i: Any) -> int:
        k = i if isinstance(i, int) else _index(i)  # TypeError for a non-integer
        if self._busy.locked():
            _raise_busy()
        if k < 0:
            k += self._filled
        if not 0 <= k < self._filled:
            raise IndexError("batch index out of range")
        return k

    def __len__(self) -> int:
        return self._filled

    def data(self, i: int) -> memoryview:
        """Datagram ``i`` of the last receive, as a memoryview into the batch (a
        negative ``i`` counts from the end; IndexError past ``len(batch)``).  While it
        is alive the batch cannot receive again.
        """
        k = self._slot(i)
        start = k * self.slot_size
        return memoryview(self._memory)[start:start + min(self._lengths[k], self.slot_size)]

    def length(self, i: int) -> int:
        """The real length of datagram ``i``: more than ``slot_size`` when it was
        truncated.
        """
        return self._lengths[self._slot(i)]

    def truncated(self, i: int) -> bool:
        """Whether datagram ``i`` was longer than ``slot_size`` and cut to it."""
        return self._lengths[self._slot(i)] > self.slot_size

    def address(self, i: int) -> Any:
        """The sender of datagram ``i`` (the same tuple as the previous sender's when
        they are equal).
        """
        return self._senders[self._slot(i)]

    def __iter__(self) -> Iterator[Tuple[memoryview, Any]]:
        if self._busy.locked():
            _raise_busy()
        whole = memoryview(self._memory)
        size = self.slot_size
        for k in range(self._filled):
            start = k * size
            yield whole[start:start + min(self._lengths[k], size)], self._senders[k]

    def __repr__(self) -> str:
        return (f"<fastsock.DatagramBatch {self._filled}/{self.count} slots "
                f"of {self.slot_size} bytes>")

    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle 'DatagramBatch' object")


class DatagramSocket(_Socket):
    """A UDP (AF_INET, AF_INET6), Unix datagram (AF_UNIX) or vsock datagram (AF_VSOCK,
    where the kernel's transport has datagrams) socket, like a stdlib socket of type
    SOCK_DGRAM.

    Made as a stdlib socket is, ``(family=AF_INET, type=SOCK_DGRAM, proto=0, fileno=None)``
    (another type: ValueError; a family it does not take: OSError (EAFNOSUPPORT) naming
    the family); its timeout starts as socket.getdefaulttimeout(), and its
    sends never raise SIGPIPE.  Besides the stdlib's calls it moves many datagrams per
    call (recv_batch, recv_many, send_many, sendto_many: recvmmsg/sendmmsg in the
    compiled implementation), and has UDP GSO (send_segments) and GRO (set_gro,
    recv_gro) where the kernel has them.
    """

    __slots__ = ()
    _KIND = SOCK_DGRAM
    _FAMILIES = SUPPORTED_FAMILIES

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send ``data`` as one datagram to the connected peer, as socket.sendall() on
        a datagram socket: a datagram goes out whole or not at all, so this is send()
        returning None.
        """
        self.send(data, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> Tuple[bytes, Any]:
        """Receive one datagram, at most ``bufsize`` bytes of it, and return ``(bytes,
        address)``, as socket.recvfrom(); with MSG_TRUNC the bytes are still only those
        received (the stdlib's are as long as the whole datagram).
        """
        return self._recvfrom(bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Tuple[int, Any]:
        """Receive one datagram into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return ``(nbytes_received, address)``, as
        socket.recvfrom_into().
        """
        return self._recvfrom_into(buffer, nbytes, flags)

    # -- receiving -----------------------------------------------------------

    def recv_batch(self, batch: DatagramBatch) -> int:
        """Receive into ``batch`` the first datagram (waiting for it within the timeout)
        and whatever else is already queued, up to ``batch.count``; returns how many
        (``len(batch)``).

        A datagram longer than ``batch.slot_size`` is cut (``batch.truncated(i)``).
        BufferError while memoryviews of the batch are alive; on an error the batch is
        left empty.  A batch takes one receive at a time: while one runs (in another
        thread), another recv_batch into it, and new views or reads of it, raise
        RuntimeError.
        """
        if not isinstance(batch, DatagramBatch):
            raise TypeError(f"recv_batch() needs a DatagramBatch, not {type(batch).__name__}")
        return batch._receive(self)

    def recv_many(self, max_count: int = 64, bufsize: int = 2048) -> list[Tuple[bytes, Any]]:
        """Receive as recv_batch() does, up to ``max_count`` datagrams of at most
        ``bufsize`` bytes, and return a list of ``(bytes, address)``.

        A longer datagram raises TruncatedDatagramError, whose ``messages`` holds
        everything received (the long ones cut) and ``truncated`` their indices: nothing
        is lost.
        """
        count = check_size(max_count, "max_count", 1 << 20)
        size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        memory = bytearray(count * size)
        lengths = [0] * count
        senders: list[Any] = [None] * count
        with memoryview(memory) as view:
            n = self._receive_into(view, count, size, lengths, senders)
        messages = [(bytes(memory[k * size:k * size + min(lengths[k], size)]), senders[k])
                    for k in range(n)]
        cut = [k for k in range(n) if lengths[k] > size]
        if cut:
            raise TruncatedDatagramError(messages, cut)
        return messages

    # -- sending -------------------------------------------------------------

    def send_many(self, buffers: Iterable[Any], address: Any = None) -> int:
        """Send each of ``buffers`` as one datagram, to ``address`` or (None) the
        connected peer, and return how many were sent; never raises SIGPIPE.  The
        arguments are checked before anything is sent; an error (a timeout included)
        after some were sent returns their count instead of raising.
        """
        return self._send_each(self._prepared(buffers, address))

    def sendto_many(self, pairs: Iterable[Tuple[Any, Any]]) -> int:
        """Send each ``(data, address)`` pair as one datagram to its address and return
        how many were sent, as send_many() (None is no address here: TypeError).
        """
        items = []
        for data, address in pairs:  # each pair's address first, as the compiled call
            target = self._pair_address(address)
            items.append((readable_view(data), target))
        return self._send_each(items)

    def _pair_address(self, address: Any) -> Any:
        if address is None:  # not "the connected peer": a pair names its address
            family = self._sock.family
            if family == AF_UNIX:
                return self._address(address)  # the AF_UNIX TypeError
            if family == AF_VSOCK:  # the stdlib names no caller for this one
                raise TypeError("getsockaddrarg: AF_VSOCK address must be tuple, "
                                "not NoneType")
            name = "AF_INET6" if family == _stdlib.AF_INET6 else "AF_INET"
            raise TypeError(f"sendto(): {name} address must be tuple, not NoneType")
        return self._address(address)

    def send_segments(self, buffer: Any, segment_size: int, address: Any = None) -> int:
        """Send ``buffer`` as datagrams of ``segment_size`` bytes (the last may be
        shorter), to ``address`` or (None) the connected peer, and return how many were
        sent; with UDP GSO, many per kernel call where the kernel allows.  An error
        part-way returns the count so far, as send_many(), but one that recurs when the
        rest falls back to plain sends after a failed GSO send raises, and that count is
        lost.
        """
        seg = check_size(segment_size, "segment_size", MAX_UDP_PAYLOAD)
        view = readable_view(buffer)
        if not len(view):
            return 0  # nothing to send, nothing checked
        target = None if address is None else self._address(address)
        sent = 0
        if self._sock.family != AF_UNIX and udp_gso_available():
            sent = self._send_gso(view, seg, target)
        slices = [(view[start:start + seg], target)
                  for start in range(sent * seg, len(view), seg)]
        if slices and not self._deferred:
            try:
                sent += self._send_each(slices)
            except OSError as exc:
                if not sent:
                    raise
                # what went out with GSO is the result; an error is the next call's
                if not isinstance(exc, (BlockingIOError, TimeoutError)):
                    self._defer(exc)
        return sent

    def _send_gso(self, view: memoryview, seg: int, target: Any) -> int:
        per_call = min(GSO_MAX_SEGMENTS, MAX_UDP_PAYLOAD // seg)
        if per_call < 2:
            return 0
        control = [(SOL_UDP, UDP_SEGMENT_OPT, struct.pack("=H", seg))]
        sock = self._sock
        sent = offset = 0
        while offset < len(view):
            chunk = view[offset:offset + per_call * seg]
            try:
                if target is None:
                    self._call(sock.sendmsg, [chunk], control, _NOSIGNAL)
                else:
                    self._call(sock.sendmsg, [chunk], control, _NOSIGNAL, target)
            except OSError as exc:
                if exc.errno in GSO_REFUSED:
                    return sent  # the rest goes out one datagram at a time
                if sent:
                    if not isinstance(exc, (BlockingIOError, TimeoutError)):
                        self._defer(exc)
                    return sent
                raise
            sent += (len(chunk) + seg - 1) // seg
            offset += len(chunk)
        return sent

    # -- GRO -----------------------------------------------------------------

    def set_gro(self, enabled: bool = True) -> bool:
        """Turn UDP GRO (receive coalescing, see recv_gro()) on or off and return
        whether it is on now: False for AF_UNIX, where the kernel lacks it, or when it
        refuses.  OSError (EBADF) when the socket is closed.
        """
        self._sock.getsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_TYPE)  # EBADF when closed
        if self._sock.family == AF_UNIX or not udp_gro_available():
            return False
        value = 1 if enabled else 0
        try:
            self._sock.setsockopt(SOL_UDP, UDP_GRO_OPT, value)
        except OSError:
            return False
        return bool(value)

    def recv_gro(self, bufsize: int = 65535) -> Tuple[bytes, Any, int]:
        """Receive ``(data, address, segment_size)``: with GRO on, several datagrams
        from one sender coalesced into ``data``, each ``segment_size`` bytes but the
        last (split them with iter_segments()); else one datagram, whose segment_size is
        its length.  Waits within the timeout; TruncatedDatagramError when more than
        ``bufsize`` bytes came.
        """
        size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        data, ancillary, flags, address = self._call(self._sock.recvmsg, size, _GRO_CONTROL)
        segment: Optional[int] = None
        for level, kind, info in ancillary:
            if level == SOL_UDP and kind == UDP_GRO_OPT and len(info) >= _GRO_INFO.size:
                segment = _GRO_INFO.unpack_from(info)[0]
        result = (data, address, segment if segment else len(data))
        if flags & _TRUNC:
            raise TruncatedDatagramError([result], [0])
        return result


# -- raw IP sockets -------------------------------------------------------------


class RawSocket(DatagramSocket):
    """A raw IP socket (AF_INET, AF_INET6), like a stdlib socket of type SOCK_RAW: it
    sends and receives the packets of one IP protocol, ICMP by default.

    Made as a stdlib socket is, ``(family=AF_INET, type=SOCK_RAW, proto=-1,
    fileno=None)``; without a protocol it carries IPPROTO_ICMP (AF_INET) or
    IPPROTO_ICMPV6 (AF_INET6), where the stdlib's 0 is refused by the kernel.  It is a
    DatagramSocket: recvfrom, sendto and the batch receives work as there; on AF_INET
    each packet received starts with its IP header, on AF_INET6 with the ICMPv6 header
    (the kernel fills in ICMPv6 checksums, not ICMP ones).  Making one needs CAP_NET_RAW
    (root): PermissionError otherwise, its message saying so.  Unprivileged ICMP echo
    uses "ping sockets" instead: a DatagramSocket with proto IPPROTO_ICMP, where
    net.ipv4.ping_group_range allows.
    """

    __slots__ = ()
    _KIND = SOCK_RAW
    _FAMILIES = RAW_FAMILIES
    _DEFAULT_PROTOS = RAW_DEFAULT_PROTOS

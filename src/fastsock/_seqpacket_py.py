"""SOCK_SEQPACKET sockets of the pure-Python twin (pair: _seqpacket_c.pxi):
SeqPacketSocket, connection-oriented AF_UNIX sockets that keep record
boundaries (docs/socket-kinds.md).  The record calls share the datagram
batch machinery of _base_py (the receive loop, batch sends) and DatagramBatch.

It never imports the compiled module.
"""

from __future__ import annotations

import fcntl
import select
import socket as _stdlib
import struct
import termios
from typing import Any, Iterable, Tuple

from ._base_py import _closed_error, _Socket
from ._common import (
    AF_UNIX,
    END_OF_RECORDS,
    MAX_RECORD_SIZE,
    MAX_SLOT_SIZE,
    SOCK_SEQPACKET,
    TruncatedRecordError,
    check_size,
)
from ._datagram_py import DatagramBatch

_TRUNC: int = int(_stdlib.MSG_TRUNC)
# the receiving side is shut down: the peer shut down its sending side or
# closed, or this socket shut down its receiving side
_ENDED: int = select.POLLRDHUP | select.POLLHUP


def _ended(fd: int) -> bool:
    """Whether no record can come any more on ``fd`` (a look, no wait): the
    receiving side is shut down and no byte is left queued (records after an
    empty one make it a record, not the end)."""
    poller = select.poll()
    poller.register(fd, select.POLLRDHUP)
    if not any(events & _ENDED for _, events in poller.poll(0)):
        return False
    try:
        queued = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, bytes(4)))[0]
    except OSError:
        return True
    return not queued


class SeqPacketSocket(_Socket):
    """A Unix (AF_UNIX) SOCK_SEQPACKET socket: connected, reliable, ordered, and the
    kernel keeps each record whole, like a stdlib socket of type SOCK_SEQPACKET.

    Made as a stdlib socket is, ``(family=AF_UNIX, type=SOCK_SEQPACKET, proto=0,
    fileno=None)`` (another type: ValueError); its timeout starts as
    socket.getdefaulttimeout(), and its sends never raise SIGPIPE.  recv(), recv_into()
    and recvfrom() behave as the stdlib's, which cut a longer record to the size asked
    for without a word; recv_record(), recv_records() and recv_batch() never cut one
    silently, and the last two take many records per call (recvmmsg in the compiled
    implementation), as send_records() sends many (sendmmsg).  At the end of the
    connection recv() returns b"" and the record calls raise EOFError.
    """

    __slots__ = ()
    _KIND = SOCK_SEQPACKET
    _FAMILIES = (AF_UNIX,)

    def listen(self, backlog: int = 128) -> None:
        """Listen for connections, queueing up to ``backlog`` (default 128; negative
        counts as 0), as socket.listen().
        """
        self._sock.listen(backlog)

    def accept(self) -> Tuple["SeqPacketSocket", Any]:
        """Wait for a connection and return ``(SeqPacketSocket, address)``, as
        socket.accept().

        The new socket's timeout is socket.getdefaulttimeout() (None unless set),
        whatever this one's is, and it is not inheritable.
        """
        return self._accept_as(SeqPacketSocket)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send ``data`` as one record, as socket.sendall() on a SOCK_SEQPACKET socket:
        a record goes out whole or not at all (OSError EMSGSIZE when it is larger than
        the send buffer), so this is send() returning None.
        """
        self.send(data, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> Tuple[bytes, Any]:
        """Receive one record, at most ``bufsize`` bytes of it (the rest is discarded),
        and return ``(bytes, address)``, as socket.recvfrom(): the address is the
        sender's name when it has one, else None.  With MSG_TRUNC the bytes are still
        only those received.
        """
        return self._recvfrom(bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Tuple[int, Any]:
        """Receive one record into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return ``(nbytes_received, address)``, as
        socket.recvfrom_into().
        """
        return self._recvfrom_into(buffer, nbytes, flags)

    # -- whole records -------------------------------------------------------

    def _records_end(self, lengths: list[int], received: int, count: int) -> int:
        """How many of ``received`` messages are records: at the end of the
        connection the kernel answers each further receive with length 0 (a
        batch is then full), which only the socket's state and queue tell apart from
        empty records.  EOFError when none is."""
        if received < count or lengths[received - 1] or not _ended(self._sock.fileno()):
            return received
        while received and not lengths[received - 1]:
            received -= 1
        if not received:
            raise EOFError(END_OF_RECORDS)
        return received

    def recv_record(self, max_size: int = 65536) -> bytes:
        """Receive one whole record of at most ``max_size`` bytes (1 to 2**31-1),
        waiting for it within the timeout.

        A longer record is taken all the same and raises TruncatedRecordError, whose
        ``messages`` holds its first ``max_size`` bytes and ``lengths`` its real
        length: it is never cut silently.  EOFError at the end of the connection (an
        empty record is b"" while the peer is connected).
        """
        size = check_size(max_size, "max_size", MAX_RECORD_SIZE)
        buffer = bytearray(size)
        lengths = [0]

        def receive(sock: _stdlib.socket, k: int, flags: int) -> int:
            n: int = sock.recv_into(buffer, size, flags)
            lengths[0] = n
            return n

        self._receive_queued(1, receive)
        if not lengths[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        self._records_end(lengths, 1, 1)
        record = bytes(buffer[:min(lengths[0], size)])
        if lengths[0] > size:
            raise TruncatedRecordError([record], [0], lengths)
        return record

    def recv_records(self, max_count: int = 64, max_size: int = 65536) -> list[bytes]:
        """Receive the first record (waiting for it within the timeout) and whatever
        other records are already queued, up to ``max_count`` of at most ``max_size``
        bytes (1 to 65536) each, and return them as a list of bytes: one recvmmsg in the
        compiled implementation.

        A longer record raises TruncatedRecordError, whose ``messages`` holds every
        record received (the long ones cut), ``truncated`` their indices and
        ``lengths`` the real lengths: nothing is lost.  Records that came before the
        end of the connection are returned, and the next call raises EOFError.
        """
        count = check_size(max_count, "max_count", 1 << 20)
        size = check_size(max_size, "max_size", MAX_SLOT_SIZE)
        buffer = bytearray(size)
        records: list[bytes] = []
        lengths: list[int] = []

        def receive(sock: _stdlib.socket, k: int, flags: int) -> int:
            n: int = sock.recv_into(buffer, size, flags)
            records.append(bytes(buffer[:min(n, size)]))
            lengths.append(n)
            return n

        received = self._receive_queued(count, receive)
        if not lengths[0] and self._sock.fileno() == -1:
            raise _closed_error()  # closed meanwhile: report the close, not an end
        received = self._records_end(lengths, received, count)
        del records[received:], lengths[received:]
        cut = [k for k in range(received) if lengths[k] > size]
        if cut:
            raise TruncatedRecordError(records, cut, lengths)
        return records

    def recv_batch(self, batch: DatagramBatch) -> int:
        """Receive into ``batch`` the first record (waiting for it within the timeout)
        and whatever other records are already queued, up to ``batch.count``; returns
        how many (``len(batch)``), as DatagramSocket.recv_batch().

        A record longer than ``batch.slot_size`` is cut (``batch.truncated(i)``, and
        ``batch.length(i)`` its real length); ``batch.address(i)`` is the sender's
        name or None.  EOFError at the end of the connection, when no record came
        before it.  BufferError while memoryviews of the batch are alive, RuntimeError
        while another recv_batch into it runs.
        """
        if not isinstance(batch, DatagramBatch):
            raise TypeError(f"recv_batch() needs a DatagramBatch, not {type(batch).__name__}")
        filled = batch._receive(self)
        try:
            batch._filled = self._records_end(batch._lengths, filled, batch.count)
        except EOFError:
            batch._filled = 0
            raise
        return batch._filled

    def send_records(self, buffers: Iterable[Any]) -> int:
        """Send each of ``buffers`` as one record and return how many were sent (one
        sendmmsg in the compiled implementation, more when the kernel takes fewer);
        never raises SIGPIPE.  The buffers are checked before anything is sent; an
        error (a timeout included) after some were sent returns their count instead of
        raising.
        """
        return self._send_each(self._prepared(buffers, None))

# SOCK_SEQPACKET sockets of the compiled twin (pair: _seqpacket_py.py):
# SeqPacketSocket, connection-oriented AF_UNIX sockets that keep record
# boundaries (docs/socket-kinds.md).  The record batches are the datagram
# ones: recvmmsg into a DatagramBatch and sendmmsg through _Socket's helpers.
# Included once by _socket_c.pyx, after _datagram_c.pxi.

cdef bint receive_ended(int fd) noexcept:
    """Whether no record can come any more on ``fd`` (a look, no wait): the
    peer shut down its sending side or closed, or this socket shut down its
    receiving side, and no byte is left queued (records after an empty one
    make it a record, not the end)."""
    cdef c.pollfd pfd
    cdef int queued = 0
    pfd.fd = fd
    pfd.events = c.POLLRDHUP
    pfd.revents = 0
    if c.poll(&pfd, 1, 0) <= 0 or (pfd.revents & (c.POLLRDHUP | c.POLLHUP)) == 0:
        return False
    return ioctl(fd, FIONREAD, &queued) < 0 or queued == 0


cdef class SeqPacketSocket(_Socket):
    """SeqPacketSocket(family=-1, type=-1, proto=-1, fileno=None)
--

    A Unix (AF_UNIX) SOCK_SEQPACKET socket: connected, reliable, ordered, and the
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


    _KIND = c.SOCK_SEQPACKET
    _FAMILIES = (c.AF_UNIX,)  # the first is the default

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        self._open(family, type, proto, fileno)

    def listen(self, backlog=128):
        """Listen for connections, queueing up to ``backlog`` (default 128; negative
        counts as 0), as socket.listen().
        """
        self._listen(backlog)

    def accept(self):
        """Wait for a connection and return ``(SeqPacketSocket, address)``, as
        socket.accept().

        The new socket's timeout is socket.getdefaulttimeout() (None unless set),
        whatever this one's is, and it is not inheritable.
        """
        return self._accept_as(SeqPacketSocket)

    def sendall(self, data, flags=0):
        """Send ``data`` as one record, as socket.sendall() on a SOCK_SEQPACKET socket:
        a record goes out whole or not at all (OSError EMSGSIZE when it is larger than
        the send buffer), so this is send() returning None.
        """
        self.send(data, flags)

    def recvfrom(self, Py_ssize_t bufsize, flags=0):
        """Receive one record, at most ``bufsize`` bytes of it (the rest is discarded),
        and return ``(bytes, address)``, as socket.recvfrom(): the address is the
        sender's name when it has one, else None.  With MSG_TRUNC the bytes are still
        only those received.
        """
        cdef IOArgs a
        data = self._recvfrom_bytes(bufsize, flags, &a)
        return data, make_address(&a.addr, a.addrlen)

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        """Receive one record into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return ``(nbytes_received, address)``, as
        socket.recvfrom_into().
        """
        cdef IOArgs a
        cdef ssize_t n = self._recvfrom_into_view(buffer, nbytes, flags, &a)
        return n, make_address(&a.addr, a.addrlen)

    # -- whole records ------------------------------------------------------------

    cdef Py_ssize_t _records_end(self, DatagramBatch batch, Py_ssize_t received) except -1:
        """How many of ``received`` messages are records: at the end of the
        connection the kernel answers each further receive with length 0 (a
        batch is then full), which only the socket's state and queue tell apart from
        empty records.  EOFError when none is."""
        if received < batch.count or batch.msgs[received - 1].msg_len or \
                not receive_ended(self.fd):
            return received
        while received and not batch.msgs[received - 1].msg_len:
            received -= 1
        if not received:
            raise EOFError(_common.END_OF_RECORDS)
        return received

    def recv_record(self, max_size=65536):
        """Receive one whole record of at most ``max_size`` bytes (1 to 2**31-1),
        waiting for it within the timeout.

        A longer record is taken all the same and raises TruncatedRecordError, whose
        ``messages`` holds its first ``max_size`` bytes and ``lengths`` its real
        length: it is never cut silently.  EOFError at the end of the connection (an
        empty record is b"" while the peer is connected).
        """
        cdef Py_ssize_t size = check_size(max_size, "max_size", MAX_RECORD_SIZE)
        cdef IOArgs a
        cdef char stack[STACK_RECV_MAX]
        cdef ssize_t n
        a.flags = c.MSG_TRUNC  # the result is the record's real length
        a.len = <size_t>size
        if size <= STACK_RECV_MAX:
            a.buf = stack
            n = self._call(c.POLLIN, _do_recv, &a, self._deadline())
            record = PyBytes_FromStringAndSize(stack, min(n, size))
        else:
            record = PyBytes_FromStringAndSize(NULL, size)
            a.buf = PyBytes_AS_STRING(record)
            n = self._call(c.POLLIN, _do_recv, &a, self._deadline())
            if n < size:
                record = record[:n]
        if n == 0 and receive_ended(self.fd):
            raise EOFError(_common.END_OF_RECORDS)
        if n > size:
            raise TruncatedRecordError([record], [0], [n])
        return record

    def recv_records(self, max_count=64, max_size=65536):
        """Receive the first record (waiting for it within the timeout) and whatever
        other records are already queued, up to ``max_count`` of at most ``max_size``
        bytes (1 to 65536) each, and return them as a list of bytes: one recvmmsg in the
        compiled implementation.

        A longer record raises TruncatedRecordError, whose ``messages`` holds every
        record received (the long ones cut), ``truncated`` their indices and
        ``lengths`` the real lengths: nothing is lost.  Records that came before the
        end of the connection are returned, and the next call raises EOFError.
        """
        cdef Py_ssize_t count = check_size(max_count, "max_count", 1 << 20)
        cdef Py_ssize_t size = check_size(max_size, "max_size", MAX_SLOT_SIZE)
        cdef DatagramBatch batch = self._claim_scratch(count, size)
        cdef Py_ssize_t n, k
        cdef list records = [], cut = [], lengths = []
        try:
            n = self._records_end(batch, self._recv_into_batch(batch))
            for k in range(n):
                records.append(PyBytes_FromStringAndSize(batch.memory + k * size,
                                                         batch._stored(k)))
                if batch.msgs[k].msg_hdr.msg_flags & c.MSG_TRUNC:
                    cut.append(k)
            if cut:
                lengths = [batch.msgs[k].msg_len for k in range(n)]
        finally:
            batch._release()
        if cut:
            raise TruncatedRecordError(records, cut, lengths)
        return records

    def recv_batch(self, DatagramBatch batch not None):
        """Receive into ``batch`` the first record (waiting for it within the timeout)
        and whatever other records are already queued, up to ``batch.count``; returns
        how many (``len(batch)``), as DatagramSocket.recv_batch().

        A record longer than ``batch.slot_size`` is cut (``batch.truncated(i)``, and
        ``batch.length(i)`` its real length); ``batch.address(i)`` is the sender's
        name or None.  EOFError at the end of the connection, when no record came
        before it.  BufferError while memoryviews of the batch are alive, RuntimeError
        while another recv_batch into it runs.
        """
        batch._claim()
        try:
            try:
                batch.filled = self._records_end(batch, self._recv_into_batch(batch))
            except EOFError:
                batch.filled = 0
                raise
            return batch.filled
        finally:
            batch._release()

    def send_records(self, buffers):
        """Send each of ``buffers`` as one record and return how many were sent (one
        sendmmsg in the compiled implementation, more when the kernel takes fewer);
        never raises SIGPIPE.  The buffers are checked before anything is sent; an
        error (a timeout included) after some were sent returns their count instead of
        raising.
        """
        return self._send_many(list(buffers), None, False)

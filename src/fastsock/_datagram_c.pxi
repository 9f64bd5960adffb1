# Datagram sockets of the compiled twin (pair: _datagram_py.py):
# DatagramSocket with batch I/O (recvmmsg/sendmmsg), GSO and GRO, and
# DatagramBatch.  Included once by _socket_c.pyx.

cdef class DatagramSocket(_Socket):
    """DatagramSocket(family=-1, type=-1, proto=-1, fileno=None)
--

    A UDP (AF_INET, AF_INET6), Unix datagram (AF_UNIX) or vsock datagram (AF_VSOCK,
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

    cdef bint gso_refused        # the kernel refused UDP_SEGMENT on this socket
    cdef c.sockaddr_storage last_raw  # the last sender, raw and decoded
    cdef c.socklen_t last_len
    cdef object last_address

    _KIND = c.SOCK_DGRAM
    _FAMILIES = _common.SUPPORTED_FAMILIES  # the first is the default

    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        self._open(family, type, proto, fileno)

    def sendall(self, data, flags=0):
        """Send ``data`` as one datagram to the connected peer, as socket.sendall() on
        a datagram socket: a datagram goes out whole or not at all, so this is send()
        returning None.
        """
        self.send(data, flags)

    def recvfrom(self, Py_ssize_t bufsize, flags=0):
        """Receive one datagram, at most ``bufsize`` bytes of it, and return ``(bytes,
        address)``, as socket.recvfrom(); with MSG_TRUNC the bytes are still only those
        received (the stdlib's are as long as the whole datagram).
        """
        cdef IOArgs a
        data = self._recvfrom_bytes(bufsize, flags, &a)
        return data, self._sender(&a)

    cdef object _sender(self, IOArgs *a):
        """The sender's address; the previous tuple again when it is the same
        sender (a datagram stream mostly comes from a few peers)."""
        cdef object address = None
        with cython.critical_section(self):
            if self.last_address is not None and a.addrlen == self.last_len and \
                    memcmp(&a.addr, &self.last_raw, a.addrlen) == 0:
                address = self.last_address
        if address is not None:
            return address
        address = make_address(&a.addr, a.addrlen)
        with cython.critical_section(self):
            memcpy(&self.last_raw, &a.addr, a.addrlen)
            self.last_len = a.addrlen
            self.last_address = address
        return address

    def recvfrom_into(self, buffer, nbytes=0, flags=0):
        """Receive one datagram into a writable buffer, at most ``nbytes`` bytes of it
        (0: the buffer's size), and return ``(nbytes_received, address)``, as
        socket.recvfrom_into().
        """
        cdef IOArgs a
        cdef ssize_t n = self._recvfrom_into_view(buffer, nbytes, flags, &a)
        return n, self._sender(&a)

    # -- batches, GSO and GRO ---------------------------------------------------

    def recv_batch(self, DatagramBatch batch not None):
        """Receive into ``batch`` the first datagram (waiting for it within the timeout)
        and whatever else is already queued, up to ``batch.count``; returns how many
        (``len(batch)``).

        A datagram longer than ``batch.slot_size`` is cut (``batch.truncated(i)``).
        BufferError while memoryviews of the batch are alive; on an error the batch is
        left empty.  A batch takes one receive at a time: while one runs (in another
        thread), another recv_batch into it, and new views or reads of it, raise
        RuntimeError.
        """
        batch._claim()
        try:
            return self._recv_into_batch(batch)
        finally:
            batch._release()

    def recv_many(self, max_count=64, bufsize=2048):
        """Receive as recv_batch() does, up to ``max_count`` datagrams of at most
        ``bufsize`` bytes, and return a list of ``(bytes, address)``.

        A longer datagram raises TruncatedDatagramError, whose ``messages`` holds
        everything received (the long ones cut) and ``truncated`` their indices: nothing
        is lost.
        """
        cdef Py_ssize_t count = check_size(max_count, "max_count", 1 << 20)
        cdef Py_ssize_t size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        cdef DatagramBatch batch = self._claim_scratch(count, size)
        cdef Py_ssize_t n, k
        cdef list messages, cut = []
        try:
            n = self._recv_into_batch(batch)
            messages = []
            for k in range(n):
                messages.append((PyBytes_FromStringAndSize(batch.memory + k * size,
                                                           batch._stored(k)),
                                 batch._address(k)))
                if batch.msgs[k].msg_hdr.msg_flags & c.MSG_TRUNC:
                    cut.append(k)
        finally:
            batch._release()
        if cut:
            raise TruncatedDatagramError(messages, cut)
        return messages

    def send_many(self, buffers, address=None):
        """Send each of ``buffers`` as one datagram, to ``address`` or (None) the
        connected peer, and return how many were sent; never raises SIGPIPE.  The
        arguments are checked before anything is sent; an error (a timeout included)
        after some were sent returns their count instead of raising.
        """
        return self._send_many(list(buffers), address, False)

    def sendto_many(self, pairs):
        """Send each ``(data, address)`` pair as one datagram to its address and return
        how many were sent, as send_many() (None is no address here: TypeError).
        """
        return self._send_many(list(pairs), None, True)

    def send_segments(self, buffer, segment_size, address=None):
        """Send ``buffer`` as datagrams of ``segment_size`` bytes (the last may be
        shorter), to ``address`` or (None) the connected peer, and return how many were
        sent; with UDP GSO, many per kernel call where the kernel allows.  An error
        part-way returns the count so far, as send_many(), but one that recurs when the
        rest falls back to plain sends after a failed GSO send raises, and that count is
        lost.
        """
        cdef Py_ssize_t seg = check_size(segment_size, "segment_size", MAX_UDP_PAYLOAD)
        cdef Py_buffer view
        cdef Py_ssize_t sent = 0
        PyObject_GetBuffer(buffer, &view, PyBUF_SIMPLE)
        try:
            if view.len == 0:
                return 0
            if not self.gso_refused and self.family_ != c.AF_UNIX and udp_gso_available():
                sent = self._send_gso(&view, seg, address)
            if sent * seg < view.len and not c.load_int(&self.deferred_errno):
                try:
                    sent += self._send_slices(&view, seg, sent, address)
                except OSError as exc:
                    if not sent:
                        raise
                    # what went out with GSO is the result; an error is the next call's
                    if not isinstance(exc, (BlockingIOError, TimeoutError)):
                        self._defer(exc)
            return sent
        finally:
            PyBuffer_Release(&view)

    cdef Py_ssize_t _send_gso(self, Py_buffer *view, Py_ssize_t seg, object address) except -1:
        """Segments through UDP_SEGMENT; stops early (returning the count so
        far) when the kernel refuses it, so the caller sends the rest plainly."""
        cdef MsgArgs a
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = 0
        cdef c.iovec iov
        cdef c.cmsg_buffer control
        cdef c.cmsghdr *cmsg
        cdef Py_ssize_t per_call, offset = 0, chunk, sent = 0
        cdef double deadline = self._deadline()
        per_call = min(gso_max_segments, MAX_UDP_PAYLOAD // seg)
        if per_call < 2:
            return 0  # nothing to gain
        memset(&a, 0, sizeof(a))
        if address is not None:
            parse_address(self.family_, address, &addr, &addrlen, "sendto")
            a.msg.msg_name = &addr
            a.msg.msg_namelen = addrlen
        a.msg.msg_iov = &iov
        a.msg.msg_iovlen = 1
        while offset < view.len:
            chunk = min(per_call * seg, view.len - offset)
            iov.iov_base = <char *>view.buf + offset
            iov.iov_len = <size_t>chunk
            memset(&control, 0, sizeof(control))
            a.msg.msg_control = control.buf
            a.msg.msg_controllen = c.CMSG_SPACE(sizeof(unsigned short))
            cmsg = c.CMSG_FIRSTHDR(&a.msg)
            cmsg.cmsg_level = sol_udp
            cmsg.cmsg_type = udp_segment_opt
            cmsg.cmsg_len = c.CMSG_LEN(sizeof(unsigned short))
            (<unsigned short *>c.CMSG_DATA(cmsg))[0] = <unsigned short>seg
            try:
                self._call(c.POLLOUT, _do_sendmsg, &a, deadline)
            except OSError as exc:
                if exc.errno in GSO_REFUSED:
                    self.gso_refused = True  # e.g. a segment larger than the path MTU
                    return sent
                if sent:
                    if not isinstance(exc, (BlockingIOError, TimeoutError)):
                        self._defer(exc)
                    return sent
                raise
            sent += (chunk + seg - 1) // seg
            offset += chunk
        return sent

    cdef Py_ssize_t _send_slices(self, Py_buffer *view, Py_ssize_t seg, Py_ssize_t first,
                                 object address) except -1:
        """Segments from index ``first`` on, one datagram each, with sendmmsg."""
        cdef Py_ssize_t total = (view.len + seg - 1) // seg
        cdef Py_ssize_t n = total - first, i, start
        cdef c.mmsghdr *msgs = <c.mmsghdr *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.mmsghdr))
        cdef c.iovec *iovs = <c.iovec *>PyMem_Calloc(<size_t>(n + 1), sizeof(c.iovec))
        cdef c.sockaddr_storage addr
        cdef c.socklen_t addrlen = 0
        try:
            if not (msgs and iovs):
                raise MemoryError()
            if address is not None:
                parse_address(self.family_, address, &addr, &addrlen, "sendto")
            for i in range(n):
                start = (first + i) * seg
                iovs[i].iov_base = <char *>view.buf + start
                iovs[i].iov_len = <size_t>min(seg, view.len - start)
                msgs[i].msg_hdr.msg_iov = &iovs[i]
                msgs[i].msg_hdr.msg_iovlen = 1
                if address is not None:
                    msgs[i].msg_hdr.msg_name = &addr
                    msgs[i].msg_hdr.msg_namelen = addrlen
            return self._send_mmsg(msgs, n)
        finally:
            PyMem_Free(msgs)
            PyMem_Free(iovs)

    def set_gro(self, enabled=True):
        """Turn UDP GRO (receive coalescing, see recv_gro()) on or off and return
        whether it is on now: False for AF_UNIX, where the kernel lacks it, or when it
        refuses.  OSError (EBADF) when the socket is closed.
        """
        cdef int value = 1 if enabled else 0
        self._check_open()
        if self.family_ == c.AF_UNIX or not udp_gro_available():
            return False
        if c.setsockopt(self.fd, sol_udp, udp_gro_opt, &value, sizeof(value)) < 0:
            return False
        return bool(value)

    def recv_gro(self, bufsize=65535):
        """Receive ``(data, address, segment_size)``: with GRO on, several datagrams
        from one sender coalesced into ``data``, each ``segment_size`` bytes but the
        last (split them with iter_segments()); else one datagram, whose segment_size is
        its length.  Waits within the timeout; TruncatedDatagramError when more than
        ``bufsize`` bytes came.
        """
        cdef Py_ssize_t size = check_size(bufsize, "bufsize", MAX_SLOT_SIZE)
        cdef MsgArgs a
        cdef c.iovec iov
        cdef c.sockaddr_storage addr
        cdef c.cmsg_buffer control
        cdef c.cmsghdr *cmsg
        cdef ssize_t n
        cdef int segment = 0
        data = PyBytes_FromStringAndSize(NULL, size)
        memset(&a, 0, sizeof(a))
        iov.iov_base = PyBytes_AS_STRING(data)
        iov.iov_len = <size_t>size
        a.msg.msg_iov = &iov
        a.msg.msg_iovlen = 1
        a.msg.msg_name = &addr
        a.msg.msg_namelen = sizeof(addr)
        a.msg.msg_control = control.buf
        a.msg.msg_controllen = sizeof(control.buf)
        a.flags = 0
        n = self._call(c.POLLIN, _do_recvmsg, &a, self._deadline())
        cmsg = c.CMSG_FIRSTHDR(&a.msg)
        while cmsg != NULL:
            if cmsg.cmsg_level == sol_udp and cmsg.cmsg_type == udp_gro_opt and \
                    cmsg.cmsg_len >= c.CMSG_LEN(sizeof(int)):
                memcpy(&segment, c.CMSG_DATA(cmsg), sizeof(int))
            cmsg = c.CMSG_NXTHDR(&a.msg, cmsg)
        data = data[:n]
        result = (data, make_address(&addr, a.msg.msg_namelen), segment if segment > 0 else n)
        if a.msg.msg_flags & c.MSG_TRUNC:
            raise TruncatedDatagramError([result], [0])
        return result


# -- raw IP sockets -------------------------------------------------------------

cdef class RawSocket(DatagramSocket):
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

    _KIND = c.SOCK_RAW
    _FAMILIES = _common.RAW_FAMILIES  # the first is the default
    _DEFAULT_PROTOS = _common.RAW_DEFAULT_PROTOS


# -- batches of datagrams -----------------------------------------------------

cdef int _raise_busy() except -1:
    raise RuntimeError("the DatagramBatch is in use by a recv_batch in another thread")


cdef DatagramBatch claim_batch(DatagramBatch scratch, Py_ssize_t count, Py_ssize_t size):
    """A batch claimed for one call (released by the caller): ``scratch``
    when no other call is using it and it has the shape asked for (the test
    and the claim are one step, in the batch's critical section), else a new
    one of the call's own: concurrent calls never share memory."""
    if scratch is not None and scratch.count == count and scratch.slot_size == size \
            and scratch._try_claim():
        return scratch
    batch = DatagramBatch(count, size)
    batch._try_claim()
    return batch


cdef class DatagramBatch:
    """DatagramBatch(count, slot_size=2048)
--

    Reusable memory for ``DatagramSocket.recv_batch``: ``count`` slots of
    ``slot_size`` bytes, with their lengths and senders.

    ``len(batch)`` is how many datagrams the last receive filled in, and iterating gives
    their ``(memoryview, address)`` pairs.  ``data(i)`` is a memoryview into the batch's
    own memory; while any such view is alive, ``recv_batch`` refuses to overwrite the
    batch (BufferError).  While a ``recv_batch`` into it runs (in another thread), a
    second one and new views or reads of it raise RuntimeError: what a view shows never
    changes under it.  ValueError for a count outside 1 to 2**20 or a slot_size
    outside 1 to 65536.
    """

    cdef char *memory
    cdef c.mmsghdr *msgs
    cdef c.iovec *iovs
    cdef c.sockaddr_storage *addrs
    cdef readonly Py_ssize_t count
    cdef readonly Py_ssize_t slot_size
    cdef Py_ssize_t filled
    cdef int exports
    cdef bint busy               # a receive into the batch is running
    # the last decoded sender: a datagram from the same one reuses the tuple
    cdef c.sockaddr_storage cached_raw
    cdef c.socklen_t cached_len
    cdef object cached_address

    def __cinit__(self, count, slot_size=2048):
        cdef Py_ssize_t i
        self.count = check_size(count, "count", 1 << 20)
        self.slot_size = check_size(slot_size, "slot_size", MAX_SLOT_SIZE)
        self.memory = <char *>PyMem_RawMalloc(<size_t>(self.count * self.slot_size))
        self.msgs = <c.mmsghdr *>PyMem_RawCalloc(<size_t>self.count, sizeof(c.mmsghdr))
        self.iovs = <c.iovec *>PyMem_RawCalloc(<size_t>self.count, sizeof(c.iovec))
        self.addrs = <c.sockaddr_storage *>PyMem_RawCalloc(<size_t>self.count,
                                                          sizeof(c.sockaddr_storage))
        if not (self.memory and self.msgs and self.iovs and self.addrs):
            raise MemoryError()
        for i in range(self.count):
            self.iovs[i].iov_base = self.memory + i * self.slot_size
            self.iovs[i].iov_len = <size_t>self.slot_size
            self.msgs[i].msg_hdr.msg_iov = &self.iovs[i]
            self.msgs[i].msg_hdr.msg_iovlen = 1
            self.msgs[i].msg_hdr.msg_name = &self.addrs[i]

    def __dealloc__(self):
        PyMem_RawFree(self.memory)
        PyMem_RawFree(self.msgs)
        PyMem_RawFree(self.iovs)
        PyMem_RawFree(self.addrs)

    # ``busy`` and ``exports`` change only in the batch's critical section: a
    # receive claims the batch (busy) only while no view pins it (exports),
    # and a view, or a read of the last receive's results, pins it only
    # while no receive has it; the memory and metadata are then the pinned
    # reader's or the claiming receive's alone.

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._pin()
        PyBuffer_FillInfo(view, self, self.memory, self.count * self.slot_size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        self._unpin()

    cdef int _pin(self) except -1:
        cdef bint busy
        with cython.critical_section(self):
            busy = self.busy
            if not busy:
                self.exports += 1
        if busy:
            _raise_busy()
        return 0

    cdef void _unpin(self) noexcept:
        with cython.critical_section(self):
            self.exports -= 1

    cdef bint _try_claim(self) noexcept:
        cdef bint free
        with cython.critical_section(self):
            free = not self.busy and not self.exports
            if free:
                self.busy = True
        return free

    cdef int _claim(self) except -1:
        """Mark the batch in use by one receive (released by the caller when
        it is done); refused while another receive or a view has it."""
        cdef bint busy, exported
        with cython.critical_section(self):
            busy = self.busy
            exported = self.exports != 0
            if not busy and not exported:
                self.busy = True
        if busy:
            _raise_busy()
        if exported:
            raise BufferError("the batch still has memoryviews alive; release them "
                              "before receiving into it again")
        return 0

    cdef void _release(self) noexcept:
        with cython.critical_section(self):
            self.busy = False

    cdef int _reset(self) except -1:
        cdef Py_ssize_t i
        for i in range(self.count):
            self.msgs[i].msg_hdr.msg_namelen = sizeof(c.sockaddr_storage)
            self.msgs[i].msg_hdr.msg_flags = 0
            self.msgs[i].msg_len = 0
        self.filled = 0
        return 0

    cdef inline Py_ssize_t _index(self, object i) except -1:
        """Slot ``i`` of the last receive, the batch pinned (_unpin() when done)."""
        cdef Py_ssize_t k = PyNumber_AsSsize_t(i, IndexError)
        self._pin()
        if k < 0:
            k += self.filled
        if not 0 <= k < self.filled:
            self._unpin()
            raise IndexError("batch index out of range")
        return k

    cdef inline Py_ssize_t _stored(self, Py_ssize_t k) noexcept:
        return min(<Py_ssize_t>self.msgs[k].msg_len, self.slot_size)

    def __len__(self):
        cdef Py_ssize_t filled = 0
        with cython.critical_section(self):
            if not self.busy:
                filled = self.filled
        return filled

    def data(self, i):
        """Datagram ``i`` of the last receive, as a memoryview into the batch (a
        negative ``i`` counts from the end; IndexError past ``len(batch)``).  While it
        is alive the batch cannot receive again.
        """
        cdef Py_ssize_t k = self._index(i)
        try:
            start = k * self.slot_size
            return memoryview(self)[start:start + self._stored(k)]
        finally:
            self._unpin()

    def length(self, i):
        """The real length of datagram ``i``: more than ``slot_size`` when it was
        truncated.
        """
        cdef Py_ssize_t k = self._index(i)
        cdef unsigned int length = self.msgs[k].msg_len
        self._unpin()
        return length

    def truncated(self, i):
        """Whether datagram ``i`` was longer than ``slot_size`` and cut to it."""
        cdef Py_ssize_t k = self._index(i)
        cdef bint cut = (self.msgs[k].msg_hdr.msg_flags & c.MSG_TRUNC) != 0
        self._unpin()
        return cut

    def address(self, i):
        """The sender of datagram ``i`` (the same tuple as the previous sender's when
        they are equal).
        """
        cdef Py_ssize_t k = self._index(i)
        try:
            return self._address(k)
        finally:
            self._unpin()

    cdef object _address(self, Py_ssize_t k):
        """Slot k's sender; the caller has the batch claimed or pinned."""
        cdef c.socklen_t n = self.msgs[k].msg_hdr.msg_namelen
        cdef object address = None
        with cython.critical_section(self):  # pinned readers share the cache
            if self.cached_address is not None and n == self.cached_len and \
                    memcmp(&self.addrs[k], &self.cached_raw, n) == 0:
                address = self.cached_address
        if address is not None:
            return address
        address = make_address(&self.addrs[k], n)
        with cython.critical_section(self):
            memcpy(&self.cached_raw, &self.addrs[k], n)
            self.cached_len = n
            self.cached_address = address
        return address

    def __iter__(self):
        cdef Py_ssize_t k
        whole = memoryview(self)  # RuntimeError while a receive runs
        for k in range(self.filled):
            start = k * self.slot_size
            yield whole[start:start + self._stored(k)], self._address(k)

    def __repr__(self):
        return (f"<fastsock.DatagramBatch {self.filled}/{self.count} slots "
                f"of {self.slot_size} bytes>")

    def __reduce__(self):
        raise TypeError("cannot pickle 'DatagramBatch' object")

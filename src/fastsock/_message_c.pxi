# Messages with ancillary data of the compiled twin (pair: the message block
# of _Socket in _base_py.py): sendmsg()'s control data built from Python
# items with the stdlib's checks, recvmsg()'s control data walked back into
# items or descriptors, and the descriptors closed that no caller will own.
# The methods themselves end _Socket (_base_c.pxi) and StreamSocket
# (_stream_c.pxi: its receive buffer first).  Included once by _socket_c.pyx.

cdef int fd_size = sizeof(int)
cdef enum:
    # recv_fds() computes CMSG_LEN(maxfds * sizeof(int)) itself up to this
    # many descriptors; beyond, the stdlib's arithmetic decides (and refuses)
    RECV_FDS_DIRECT_MAX = 1 << 20
cdef str malformed_ancillary = _common.MALFORMED_ANCILLARY


# -- walking received control data ---------------------------------------------
# By offsets checked against the length the kernel reported, never trusting a
# header's length to stay inside the buffer (what the fuzz target feeds).

cdef enum CmsgStatus:
    CMSG_WHOLE       # a message and all its data
    CMSG_CUT         # its length runs past the end: data_len is what is there
    CMSG_END         # no further header fits
    CMSG_MALFORMED   # a header whose length is below its own size


cdef CmsgStatus next_cmsg(const char *control, size_t controllen, size_t *offset,
                          const c.cmsghdr **header, size_t *data_len) noexcept nogil:
    """The control message at ``offset[0]``, which is advanced past it."""
    cdef size_t at = offset[0], room, length, step
    if at > controllen or controllen - at < c.CMSG_LEN(0):
        return CMSG_END
    header[0] = <const c.cmsghdr *>(control + at)
    length = header[0].cmsg_len
    if length < c.CMSG_LEN(0):
        return CMSG_MALFORMED
    room = controllen - at
    if length > room:
        data_len[0] = room - c.CMSG_LEN(0)
        offset[0] = controllen
        return CMSG_CUT
    data_len[0] = length - c.CMSG_LEN(0)
    step = c.CMSG_ALIGN(length)
    offset[0] = at + step if length <= step <= room else controllen
    return CMSG_WHOLE


cdef inline bint is_rights(const c.cmsghdr *header) noexcept nogil:
    return header.cmsg_level == c.SOL_SOCKET and header.cmsg_type == c.SCM_RIGHTS


cdef inline int fd_at(const c.cmsghdr *header, size_t i) noexcept nogil:
    cdef int fd
    memcpy(&fd, c.CMSG_DATA(<c.cmsghdr *>header) + i * sizeof(int), sizeof(int))
    return fd


cdef void close_received_fds(const char *control, size_t controllen) noexcept nogil:
    """Close every descriptor in the SCM_RIGHTS messages of received control
    data: on a path where the caller will never have them."""
    cdef size_t offset = 0, data_len = 0, i
    cdef const c.cmsghdr *header = NULL
    cdef CmsgStatus status
    if control == NULL:
        return
    while True:
        status = next_cmsg(control, controllen, &offset, &header, &data_len)
        if status == CMSG_END or status == CMSG_MALFORMED:
            return
        if is_rights(header):
            for i in range(data_len // sizeof(int)):
                c_close(fd_at(header, i))
        if status == CMSG_CUT:
            return


cdef int warn_malformed() except -1:
    """The stdlib's warning; with warnings as errors it raises, and the
    caller then closes what was received."""
    _warnings.warn(malformed_ancillary, RuntimeWarning)
    return 0


cdef list ancillary_items(const char *control, size_t controllen):
    """Received control data as the stdlib's list of (level, type, bytes).
    On an error (MemoryError, a warning turned into one) the caller closes
    the descriptors, those already in the list included."""
    cdef list items = []
    cdef size_t offset = 0, data_len = 0
    cdef const c.cmsghdr *header = NULL
    cdef CmsgStatus status
    if control == NULL:
        return items
    while True:
        status = next_cmsg(control, controllen, &offset, &header, &data_len)
        if status == CMSG_END:
            break
        if status != CMSG_WHOLE:
            warn_malformed()
            if status == CMSG_MALFORMED:
                break
        items.append((header.cmsg_level, header.cmsg_type,
                      PyBytes_FromStringAndSize(<char *>c.CMSG_DATA(<c.cmsghdr *>header),
                                                <Py_ssize_t>data_len)))
        if status == CMSG_CUT:
            break
    return items


cdef list received_fd_list(const char *control, size_t controllen):
    """The descriptors of received control data (whole ints of its SCM_RIGHTS
    messages), as the stdlib's recv_fds() finds them; the rest is ignored
    but parsed (and warned about) as recvmsg() does.  On an error the caller
    closes them all."""
    cdef list fds = []
    cdef size_t offset = 0, data_len = 0, i
    cdef const c.cmsghdr *header = NULL
    cdef CmsgStatus status
    if control == NULL:
        return fds
    while True:
        status = next_cmsg(control, controllen, &offset, &header, &data_len)
        if status == CMSG_END:
            break
        if status != CMSG_WHOLE:
            warn_malformed()
            if status == CMSG_MALFORMED:
                break
        if is_rights(header):
            for i in range(data_len // sizeof(int)):
                fds.append(fd_at(header, i))
        if status == CMSG_CUT:
            break
    return fds


# -- receiving -------------------------------------------------------------------

cdef struct RecvMsgArgs:
    c.msghdr msg
    int flags
    size_t controllen           # the control buffer's size, given again to each try
    c.sockaddr_storage addr


cdef ssize_t _do_recvmsg_cloexec(int fd, void *data) noexcept nogil:
    cdef RecvMsgArgs *a = <RecvMsgArgs *>data
    cdef ssize_t n
    a.msg.msg_name = &a.addr
    a.msg.msg_namelen = sizeof(a.addr)
    a.msg.msg_controllen = a.controllen
    a.msg.msg_flags = 0
    n = c.recvmsg(fd, &a.msg, a.flags | c.MSG_CMSG_CLOEXEC)
    if n < 0:
        a.msg.msg_controllen = 0  # nothing received: no descriptor to close
    return n


cdef inline Py_ssize_t as_ssize(object value) except? -1:
    """The stdlib's "n" argument conversion (an int's without a call)."""
    return PyLong_AsSsize_t(value if type(value) is int else _index(value))


cdef str recvmsg_into_buffers = ("recvmsg_into() argument 1 must be an iterable of "
                                 "single-segment read-write buffers")


cdef int get_writable_item(object item, Py_buffer *view) except -1:
    """One of recvmsg_into()'s buffers, refused with the stdlib's one message."""
    try:
        PyObject_GetBuffer(item, view, PyBUF_WRITABLE)
    except Exception:  # not a buffer, read-only, not contiguous, ...
        raise TypeError(recvmsg_into_buffers) from None
    if not PyBuffer_IsContiguous(view, b'C'):
        PyBuffer_Release(view)
        raise TypeError(recvmsg_into_buffers)
    return 0


cdef int check_ancbufsize(Py_ssize_t ancsize) except -1:
    if ancsize < 0 or ancsize > INT_MAX:
        raise ValueError("invalid ancillary data buffer length")
    return 0


cdef char *control_memory(Py_ssize_t ancsize, c.control_buffer *small) except NULL:
    """Aligned room for ``ancsize`` bytes of control data: ``small`` when it
    fits, else allocated (free it with free_control)."""
    cdef char *memory
    if <size_t>ancsize <= sizeof(small.buf):
        return small.buf
    memory = <char *>PyMem_Malloc(<size_t>ancsize)
    if memory == NULL:
        raise MemoryError()
    return memory


cdef inline void free_control(char *memory, c.control_buffer *small) noexcept:
    if memory != small.buf:
        PyMem_Free(memory)


cdef inline size_t received_control(RecvMsgArgs *a) noexcept nogil:
    """How many bytes of control data the kernel wrote (0 unless it succeeded)."""
    return a.msg.msg_controllen if a.msg.msg_controllen <= a.controllen else a.controllen


cdef ssize_t receive_message(_Socket sock, RecvMsgArgs *a, c.iovec *iov, size_t iovcnt,
                             char *control, Py_ssize_t ancsize, int flags) except -1:
    """One recvmsg() through the call helper, always close-on-exec.  When it
    raises after the kernel handed descriptors over (a close racing the
    receive), they are closed."""
    memset(&a.msg, 0, sizeof(a.msg))
    a.msg.msg_iov = iov
    a.msg.msg_iovlen = iovcnt
    a.msg.msg_control = control if ancsize else NULL
    a.controllen = <size_t>ancsize
    a.flags = flags
    try:
        return sock._call(c.POLLIN, _do_recvmsg_cloexec, a, sock._deadline())
    except BaseException:
        close_received_fds(control, received_control(a))
        raise


cdef object message_result(object received, RecvMsgArgs *a, int flags, bint fds_only):
    """``(received, ancdata or fds, msg_flags, address)``; on any error the
    received descriptors are closed before it propagates."""
    cdef char *control = <char *>a.msg.msg_control
    cdef size_t controllen = received_control(a)
    cdef int msg_flags = a.msg.msg_flags
    cdef c.socklen_t namelen
    if not flags & c.MSG_CMSG_CLOEXEC:
        msg_flags &= ~c.MSG_CMSG_CLOEXEC  # the kernel echoes the flag it was given
    try:
        ancillary = (received_fd_list(control, controllen) if fds_only
                     else ancillary_items(control, controllen))
        namelen = min(a.msg.msg_namelen, <c.socklen_t>sizeof(a.addr))
        return (received, ancillary, msg_flags, make_address(&a.addr, namelen))
    except BaseException:
        close_received_fds(control, controllen)
        raise


# -- sending ---------------------------------------------------------------------

cdef struct OutgoingControl:
    char *data                  # aligned: the caller's small buffer or allocated
    size_t length
    Py_buffer *views            # the items' data, held until the send is done
    Py_ssize_t acquired
    int *kinds                  # level, type of each item


cdef str type_label(object value):
    """How the stdlib's argument parser names a type (its C name, 50 bytes at most)."""
    cdef object kind = type(value)
    cdef bytes name
    if value is None:
        return "None"
    name = (<PyTypeObject *>kind).tp_name
    return name[:50].decode("utf-8", "replace")


cdef int parse_ancillary_item(object item, int *level, int *kind, Py_buffer *view) except -1:
    """One ``(level, type, data)`` item, refused with the stdlib's errors."""
    if not PySequence_Check(item) or isinstance(item, bytes):
        raise TypeError("[sendmsg() ancillary data items]() argument must be 3-item "
                        f"sequence, not {type_label(item)}")
    cdef Py_ssize_t n = PySequence_Size(item)
    if n != 3:
        raise TypeError("[sendmsg() ancillary data items]() argument must be sequence of "
                        f"length 3, not {n}")
    level[0] = as_int(item[0])
    kind[0] = as_int(item[1])
    PyObject_GetBuffer(item[2], view, PyBUF_SIMPLE)
    return 0


cdef int build_control(object ancdata, c.control_buffer *small,
                       OutgoingControl *out) except -1:
    """The control data of ``ancdata``, with the stdlib's checks and errors;
    the caller releases ``out`` with release_control, whatever happens."""
    cdef object items = PySequence_Fast(ancdata, "sendmsg() argument 2 must be an iterable")
    cdef Py_ssize_t count = PySequence_Fast_GET_SIZE(items), i
    cdef size_t total = 0, space, offset = 0, data_len
    cdef c.cmsghdr *header
    if count == 0:
        return 0
    out.views = <Py_buffer *>PyMem_Calloc(<size_t>count, sizeof(Py_buffer))
    out.kinds = <int *>PyMem_Calloc(<size_t>count * 2, sizeof(int))
    if out.views == NULL or out.kinds == NULL:
        raise MemoryError()
    for i in range(count):
        parse_ancillary_item(<object>PySequence_Fast_GET_ITEM(items, i),
                             &out.kinds[2 * i], &out.kinds[2 * i + 1], &out.views[i])
        out.acquired += 1
        data_len = <size_t>out.views[i].len
        # CMSG_SPACE(1): the padding before and after the data
        if data_len > <size_t>INT_MAX - c.CMSG_SPACE(1):
            raise OSError("ancillary data item too large")
        space = c.CMSG_SPACE(data_len)
        if space > <size_t>INT_MAX - total:
            raise OSError("too much ancillary data")
        total += space
    if total > sizeof(small.buf):
        out.data = <char *>PyMem_Malloc(total)
        if out.data == NULL:
            out.data = small.buf  # nothing to free
            raise MemoryError()
    out.length = total
    memset(out.data, 0, total)
    for i in range(count):
        header = <c.cmsghdr *>(out.data + offset)
        data_len = <size_t>out.views[i].len
        header.cmsg_len = c.CMSG_LEN(data_len)
        header.cmsg_level = out.kinds[2 * i]
        header.cmsg_type = out.kinds[2 * i + 1]
        memcpy(c.CMSG_DATA(header), out.views[i].buf, data_len)
        offset += c.CMSG_SPACE(data_len)
    return 0


cdef void release_control(OutgoingControl *out, c.control_buffer *small) noexcept:
    cdef Py_ssize_t i
    for i in range(out.acquired):
        PyBuffer_Release(&out.views[i])
    PyMem_Free(out.views)
    PyMem_Free(out.kinds)
    if out.data != small.buf:
        PyMem_Free(out.data)


cdef object send_message(_Socket sock, object buffers, object ancdata, object flags,
                         object address):
    """sendmsg(): arguments in the stdlib's order (flags, address, buffers,
    ancillary data), then one try without blocking first (_send); on a
    blocking stream the rest follows as the kernel's own blocking send would,
    without the control data, which went with the first part."""
    cdef MsgArgs a
    cdef c.sockaddr_storage addr
    cdef c.socklen_t addrlen = 0
    cdef c.control_buffer small
    cdef OutgoingControl control
    cdef Py_buffer *views = NULL
    cdef c.iovec *iov = NULL
    cdef bint partial_try = False
    cdef c.iovec *rest
    cdef Py_ssize_t count, acquired = 0, i, left
    cdef size_t total = 0
    cdef ssize_t sent, more
    cdef double deadline
    memset(&a, 0, sizeof(a))
    memset(&control, 0, sizeof(control))
    control.data = small.buf
    a.flags = as_int(flags)
    if address is not None:
        parse_address(sock.family_, address, &addr, &addrlen, "sendmsg")
        a.msg.msg_name = &addr
        a.msg.msg_namelen = addrlen
    data = PySequence_Fast(buffers, "sendmsg() argument 1 must be an iterable")
    count = PySequence_Fast_GET_SIZE(data)
    try:
        if count > INT_MAX:
            raise OSError("sendmsg() argument 1 is too long")
        views = <Py_buffer *>PyMem_Malloc(<size_t>(count + 1) * sizeof(Py_buffer))
        iov = <c.iovec *>PyMem_Malloc(<size_t>(count + 1) * sizeof(c.iovec))
        if views == NULL or iov == NULL:
            raise MemoryError()
        for i in range(count):
            PyObject_GetBuffer(<object>PySequence_Fast_GET_ITEM(data, i), &views[i],
                               PyBUF_SIMPLE)
            acquired += 1
            iov[i].iov_base = views[i].buf
            iov[i].iov_len = <size_t>views[i].len
            total += <size_t>views[i].len
        build_control(ancdata, &small, &control)
        a.msg.msg_iov = iov
        a.msg.msg_iovlen = <size_t>count
        if control.length:
            a.msg.msg_control = control.data
            a.msg.msg_controllen = control.length
        deadline = sock._deadline()
        sent = sock._send(c.POLLOUT, _do_sendmsg, &a, &a.flags, total, deadline,
                          &partial_try)
        if partial_try and sent > 0:
            # the try sent part: the rest as a blocking send, as send() does
            # (an error now is the count now and the error for the next call)
            rest = iov
            left = count
            more = sent
            while more >= <ssize_t>rest[0].iov_len:
                more -= <ssize_t>rest[0].iov_len
                rest += 1
                left -= 1
            rest[0].iov_base = <char *>rest[0].iov_base + more
            rest[0].iov_len -= <size_t>more
            a.msg.msg_iov = rest
            a.msg.msg_iovlen = <size_t>left
            a.msg.msg_control = NULL
            a.msg.msg_controllen = 0
            try:
                sent += sock._call(c.POLLOUT, _do_sendmsg, &a, deadline)
            except OSError as exc:
                sock._defer(exc)
        return sent
    finally:
        for i in range(acquired):
            PyBuffer_Release(&views[i])
        PyMem_Free(views)
        PyMem_Free(iov)
        release_control(&control, &small)

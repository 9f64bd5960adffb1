# Netlink sockets of the compiled twin (pair: _netlink_py.py): NetlinkSocket,
# the splitter of a datagram of nlmsghdr messages (in C: every length checked
# against the buffer, never trusted) and the request/dump that collect a reply
# across datagrams under one deadline.  Included once by _socket_c.pyx.

from cpython.mem cimport PyMem_Realloc
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_SET_ITEM
from libc.stdint cimport uint16_t, uint32_t

cdef object netlink_message_type = _common.NetlinkMessage


cdef inline object new_message(const nl.nlmsghdr *header, object seq, object pid,
                               const char *payload, size_t size):
    # a NetlinkMessage made the way tuple.__new__ makes a tuple subclass's
    # instance, without the intermediate tuple: one object the garbage
    # collector tracks per message instead of three (its gen-0 collections
    # were most of the time of a large dump)
    cdef object kind = header.nlmsg_type, flags = header.nlmsg_flags
    cdef object data = PyBytes_FromStringAndSize(payload, <Py_ssize_t>size)
    cdef object message = PyType_GenericAlloc(<PyTypeObject *>netlink_message_type, 5)
    Py_INCREF(kind)
    PyTuple_SET_ITEM(message, 0, kind)  # each steals the reference just taken
    Py_INCREF(flags)
    PyTuple_SET_ITEM(message, 1, flags)
    Py_INCREF(seq)
    PyTuple_SET_ITEM(message, 2, seq)
    Py_INCREF(pid)
    PyTuple_SET_ITEM(message, 3, pid)
    Py_INCREF(data)
    PyTuple_SET_ITEM(message, 4, data)
    return message


cdef int split_netlink(const char *buf, size_t size, list out) except -1:
    """Append the messages of ``buf`` to ``out`` (see _split_netlink)."""
    cdef size_t offset = 0, left
    cdef nl.nlmsghdr header
    # the messages of a reply share their sequence number and port: one int each
    cdef uint32_t last_seq = 0, last_pid = 0
    cdef object seq = 0, pid = 0
    while offset < size:
        left = size - offset
        if left < sizeof(nl.nlmsghdr):
            raise _common.malformed_netlink(offset, -1, left)
        memcpy(&header, buf + offset, sizeof(header))  # the buffer may be unaligned
        if header.nlmsg_len < sizeof(nl.nlmsghdr) or header.nlmsg_len > left:
            raise _common.malformed_netlink(offset, header.nlmsg_len, left)
        if header.nlmsg_seq != last_seq:
            last_seq = header.nlmsg_seq
            seq = last_seq
        if header.nlmsg_pid != last_pid:
            last_pid = header.nlmsg_pid
            pid = last_pid
        out.append(new_message(&header, seq, pid, buf + offset + sizeof(nl.nlmsghdr),
                               header.nlmsg_len - sizeof(nl.nlmsghdr)))
        # the last message may lack its padding: offset then passes size
        offset += (<size_t>header.nlmsg_len + 3) & ~(<size_t>3)
    return 0


def _split_netlink(data):
    """The messages of a buffer of netlink messages, each 4-byte aligned; the length in
    a header is checked against what is left, never trusted (ValueError)."""
    cdef Py_buffer view
    cdef list messages = []
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        split_netlink(<const char *>view.buf, <size_t>view.len, messages)
    finally:
        PyBuffer_Release(&view)
    return messages


cdef int take_replies(list messages, unsigned int seq, unsigned int pid, bint wait_ack,
                      list replies, list unclaimed) except -1:
    """Sort one datagram's messages into the reply and the rest; 1 when the reply is
    complete (see _take_replies)."""
    cdef Py_ssize_t index, count = len(messages)
    cdef int kind, error
    cdef bytes payload
    cdef tuple message  # a NetlinkMessage: a tuple subclass, read as a tuple
    for index in range(count):
        message = <tuple>messages[index]
        # port 0: some kernel families (NETLINK_AUDIT) address their replies so
        if <unsigned int>message[2] != seq or (<unsigned int>message[3] != pid and
                                               <unsigned int>message[3] != 0):
            unclaimed.append(message)
            continue
        kind = message[0]
        if kind == nl.NLMSG_DONE or kind == nl.NLMSG_ERROR:
            unclaimed.extend(messages[index + 1:])
            payload = message[4]
            if len(payload) < <Py_ssize_t>sizeof(int):
                if kind == nl.NLMSG_DONE:
                    return 1
                raise _common.short_netlink_error(kind, len(payload))
            memcpy(&error, PyBytes_AS_STRING(payload), sizeof(int))
            if error:
                raise _common.netlink_error(error)
            return 1
        if kind == nl.NLMSG_NOOP:
            continue
        replies.append(message)
        if not (<int>message[1] & nl.NLM_F_MULTI) and not wait_ack:
            unclaimed.extend(messages[index + 1:])
            return 1
    return 0


def _take_replies(messages, seq, pid, wait_ack, replies, unclaimed):
    """Sort one datagram's messages (see _netlink_py._take_replies)."""
    return take_replies(messages, seq, pid, wait_ack, replies, unclaimed) == 1


cdef class NetlinkSocket(DatagramSocket):
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

    cdef unsigned int next_seq
    cdef unsigned int port_id
    cdef bint port_known
    # a recv_messages/request in progress: it alone touches next_seq, the
    # port and unclaimed; set and cleared in the socket's critical section
    cdef bint receiving
    # messages received but claimed by no request: notifications, replies of a
    # request that failed part-way; recv_messages() returns them first
    cdef list unclaimed

    _KIND = nl.SOCK_RAW
    _KINDS = (c.SOCK_DGRAM,)
    _FAMILIES = _common.NETLINK_FAMILIES

    def __cinit__(self):
        self.next_seq = 1
        self.unclaimed = []

    def recv_messages(self, flags=0):
        """Receive one datagram and return its messages, NLMSG_DONE and NLMSG_ERROR
        ones included as they are; the messages kept from an earlier request()
        (notifications, replies of a request that failed) come first, without
        receiving.  However large the datagram, none of it is cut off.  ValueError
        when a message's length does not fit the datagram; RuntimeError while another
        thread receives messages on this socket.
        """
        cdef int cflags = as_int(flags)
        cdef size_t capacity = _common.NETLINK_RECV_SIZE
        cdef char *buffer = NULL
        cdef ssize_t n
        cdef list messages = []
        self._begin_receive()
        try:
            if self.unclaimed:
                messages, self.unclaimed = self.unclaimed, []
                return messages
            buffer = <char *>PyMem_Malloc(capacity)
            if buffer == NULL:
                raise MemoryError()
            n = self._receive(&buffer, &capacity, cflags, self._deadline())
            split_netlink(buffer, <size_t>n, messages)
            return messages
        finally:
            PyMem_Free(buffer)
            self._end_receive()

    # 5 is NLM_F_REQUEST | NLM_F_ACK, a literal so that inspect.signature() can
    # read it (it looks no name up for a method of a compiled class)
    def request(self, msg_type, payload=b"", flags=5):
        """Send one message of type ``msg_type`` with ``payload`` (after its header) and
        the next sequence number, and return the messages of its reply: until
        NLMSG_DONE, the ACK (which is not returned), or a single reply when no
        NLM_F_ACK was asked.  An NLMSG_ERROR with an error raises it as OSError (its
        errno, e.g. FileExistsError); other messages received meanwhile are kept for
        recv_messages(), so are the replies received when the call fails.  The
        timeout bounds the whole call.
        """
        cdef Py_buffer view
        cdef nl.nlmsghdr header
        cdef bytes message
        cdef unsigned int seq
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            kind, bits = _common.check_netlink_request(msg_type, flags, view.len)
            self._begin_receive()
            header.nlmsg_len = <uint32_t>(sizeof(header) + <size_t>view.len)
            header.nlmsg_type = <uint16_t>kind
            header.nlmsg_flags = <uint16_t>bits
            header.nlmsg_seq = seq = self.next_seq
            header.nlmsg_pid = 0
            try:
                message = PyBytes_FromStringAndSize(NULL, header.nlmsg_len)
            except BaseException:
                self._end_receive()
                raise
            memcpy(PyBytes_AS_STRING(message), &header, sizeof(header))
            memcpy(PyBytes_AS_STRING(message) + sizeof(header), view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        try:
            self.next_seq = seq % 0xFFFFFFFFu + 1  # 0 is left to notifications
            return self._exchange(message, seq, (bits & nl.NLM_F_ACK) != 0)
        finally:
            self._end_receive()

    cdef int _begin_receive(self) except -1:
        cdef bint busy
        with cython.critical_section(self):
            busy = self.receiving
            self.receiving = True
        if busy:
            raise _common.netlink_busy()
        return 0

    cdef void _end_receive(self) noexcept:
        with cython.critical_section(self):
            self.receiving = False

    def dump(self, msg_type, payload=b""):
        """request() with NLM_F_REQUEST | NLM_F_DUMP: every object of a kind (routes,
        links, sockets, ...), collected across as many datagrams as the kernel sends
        until NLMSG_DONE.
        """
        return self.request(msg_type, payload, nl.NLM_F_REQUEST | nl.NLM_F_DUMP)

    cdef list _exchange(self, bytes message, unsigned int seq, bint wait_ack):
        cdef IOArgs a
        cdef double deadline = self._deadline()  # one deadline for the whole call
        cdef size_t capacity = _common.NETLINK_RECV_SIZE
        cdef char *buffer = NULL
        cdef ssize_t n
        cdef list replies = [], messages
        a.buf = PyBytes_AS_STRING(message)
        a.len = <size_t>len(message)
        a.flags = 0
        self._send(c.POLLOUT, _do_send, &a, &a.flags, a.len, deadline)
        if not self.port_known:  # the kernel bound the socket at its first send
            self.port_id = self.getsockname()[0]
            self.port_known = True
        buffer = <char *>PyMem_Malloc(capacity)
        if buffer == NULL:
            raise MemoryError()
        try:
            while True:
                n = self._receive(&buffer, &capacity, 0, deadline)
                messages = []
                split_netlink(buffer, <size_t>n, messages)
                if take_replies(messages, seq, self.port_id, wait_ack, replies,
                                self.unclaimed):
                    return replies
        except BaseException:
            self.unclaimed.extend(replies)
            raise
        finally:
            PyMem_Free(buffer)

    cdef ssize_t _receive(self, char **buffer, size_t *capacity, int flags,
                          double deadline) except -1:
        """One datagram, whole, into ``buffer[0]`` (grown to its peeked size when
        larger than ``capacity[0]``); its size."""
        cdef IOArgs a
        cdef ssize_t size
        cdef char *grown
        a.buf = NULL
        a.len = 0
        a.flags = flags | c.MSG_PEEK | c.MSG_TRUNC
        size = self._call(c.POLLIN, _do_recv, &a, deadline)
        if <size_t>size > capacity[0]:
            grown = <char *>PyMem_Realloc(buffer[0], <size_t>size)
            if grown == NULL:
                raise MemoryError()
            buffer[0] = grown
            capacity[0] = <size_t>size
        a.buf = buffer[0]
        a.len = capacity[0]
        a.flags = flags | c.MSG_TRUNC
        size = self._call(c.POLLIN, _do_recv, &a, deadline)
        if <size_t>size > capacity[0]:
            raise _common.netlink_truncated(size)
        return size

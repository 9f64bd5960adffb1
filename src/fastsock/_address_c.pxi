# Addresses of the compiled twin: Python address <-> struct sockaddr, with
# the stdlib's checks and messages (the pure twin leaves this to the stdlib).
# Included once by _socket_c.pyx.

cdef bytes host_bytes(object host):
    """The stdlib's idna_converter: str (IDNA-encoded when not ASCII), bytes, bytearray."""
    cdef bytes raw
    if isinstance(host, str):
        try:
            raw = (<str>host).encode("ascii")
        except UnicodeEncodeError:
            try:
                raw = (<str>host).encode("idna")
            except UnicodeError:
                raise TypeError("encoding of hostname failed") from None
    elif isinstance(host, (bytes, bytearray)):
        raw = bytes(host)
    else:
        raise TypeError(f"str, bytes or bytearray expected, not {type(host).__name__}")
    if b"\0" in raw:
        raise TypeError("host name must not contain null character")
    return raw


cdef int resolve_host(bytes host, int family, void *dst) except -1:
    """Fill an in_addr/in6_addr from a numeric address or a name, like setipaddr()."""
    cdef const char *name = host
    cdef c.addrinfo hints
    cdef c.addrinfo *res = NULL
    cdef int code, err
    if name[0] == 0:
        if family == c.AF_INET:
            (<c.in_addr *>dst).s_addr = c.htonl(c.INADDR_ANY)
        else:
            memcpy(dst, &c.in6addr_any, sizeof(c.in6_addr))
        return 0
    if host == b"<broadcast>" or host == b"255.255.255.255":
        if family != c.AF_INET:
            raise OSError("address family mismatched")  # as the stdlib's setipaddr()
        (<c.in_addr *>dst).s_addr = c.htonl(c.INADDR_BROADCAST)
        return 0
    if c.inet_pton(family, name, dst) == 1:
        return 0
    memset(&hints, 0, sizeof(hints))
    hints.ai_family = family
    with nogil:
        code = c.getaddrinfo(name, NULL, &hints, &res)
        err = errno
    if code != 0:
        return raise_gaierror(code, err)
    try:
        if family == c.AF_INET:
            memcpy(dst, &(<c.sockaddr_in *>res.ai_addr).sin_addr, sizeof(c.in_addr))
        else:
            memcpy(dst, &(<c.sockaddr_in6 *>res.ai_addr).sin6_addr, sizeof(c.in6_addr))
    finally:
        c.freeaddrinfo(res)
    return 0


cdef object parse_port(object port, const char *caller):
    """The port as the stdlib's argument parsing takes it: beyond a C int it
    is refused at once, before the host is resolved."""
    value = _index(port)
    if value < INT_MIN or value > INT_MAX:
        raise OverflowError(f"{caller.decode()}(): port must be 0-65535.")
    return value


cdef int check_port(object port, const char *caller) except -1:
    value = _index(port)
    if value < 0 or value > 0xFFFF:
        raise OverflowError(f"{caller.decode()}(): port must be 0-65535.")
    return value


cdef int parse_vsock_address(object address, c.sockaddr_vm *svm) except -1:
    """``(cid, port)`` as the stdlib takes it ("II": any integers, wrapped to
    32 bits, -1 being VMADDR_CID_ANY/VMADDR_PORT_ANY), with its messages, which
    name no caller for this family."""
    if not isinstance(address, tuple):
        raise TypeError(f"getsockaddrarg: AF_VSOCK address must be tuple, "
                        f"not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError(f"getsockaddrarg() takes exactly 2 arguments "
                        f"({len(address)} given)")
    cid = _index(address[0])
    port = _index(address[1])
    svm.svm_family = c.AF_VSOCK
    svm.svm_cid = <unsigned int>(cid & 0xFFFFFFFF)
    svm.svm_port = <unsigned int>(port & 0xFFFFFFFF)
    return 0


cdef int parse_address(int family, object address, c.sockaddr_storage *out,
                       c.socklen_t *outlen, const char *caller) except -1:
    """Turn a stdlib-style address into a sockaddr, with the stdlib's errors."""
    cdef c.sockaddr_in *sin
    cdef c.sockaddr_in6 *sin6
    cdef c.sockaddr_un *sun
    cdef bytes raw
    cdef Py_ssize_t n
    cdef unsigned int scope_id = 0
    flowinfo = 0
    memset(out, 0, sizeof(c.sockaddr_storage))
    if family == c.AF_INET:
        if not isinstance(address, tuple):
            raise TypeError(f"{caller.decode()}(): AF_INET address must be tuple, "
                            f"not {type(address).__name__}")
        if len(address) != 2:
            raise TypeError("AF_INET address must be a pair (host, port)")
        raw = host_bytes(address[0])
        port = parse_port(address[1], caller)
        sin = <c.sockaddr_in *>out
        resolve_host(raw, c.AF_INET, &sin.sin_addr)
        sin.sin_family = c.AF_INET
        sin.sin_port = c.htons(<unsigned short>check_port(port, caller))
        outlen[0] = sizeof(c.sockaddr_in)
        return 0
    if family == c.AF_INET6:
        if not isinstance(address, tuple):
            raise TypeError(f"{caller.decode()}(): AF_INET6 address must be tuple, "
                            f"not {type(address).__name__}")
        if not 2 <= len(address) <= 4:
            raise TypeError(
                "AF_INET6 address must be a tuple (host, port[, flowinfo[, scopeid]])")
        raw = host_bytes(address[0])
        port = parse_port(address[1], caller)
        if len(address) > 2:
            flowinfo = _index(address[2]) & 0xFFFFFFFF  # wraps, as the stdlib's
        if len(address) > 3:
            scope_id = <unsigned int>(_index(address[3]) & 0xFFFFFFFF)  # wraps, as the stdlib's
        sin6 = <c.sockaddr_in6 *>out
        resolve_host(raw, c.AF_INET6, &sin6.sin6_addr)
        sin6.sin6_family = c.AF_INET6
        sin6.sin6_port = c.htons(<unsigned short>check_port(port, caller))
        if not 0 <= flowinfo <= 0xFFFFF:
            raise OverflowError(f"{caller.decode()}(): flowinfo must be 0-1048575.")
        sin6.sin6_flowinfo = c.htonl(<unsigned int>flowinfo)
        sin6.sin6_scope_id = scope_id
        outlen[0] = sizeof(c.sockaddr_in6)
        return 0
    if family == c.AF_VSOCK:
        parse_vsock_address(address, <c.sockaddr_vm *>out)
        outlen[0] = sizeof(c.sockaddr_vm)
        return 0
    if family == nl.AF_NETLINK:
        return parse_netlink_address(address, out, outlen, caller)
    # AF_UNIX: the encoding and the embedded-NUL check are shared with the
    # pure implementation so both refuse the same paths the same way
    raw = _common.unix_path_bytes(address)
    n = len(raw)
    sun = <c.sockaddr_un *>out
    if (n > 0 and (<const char *>raw)[0] == 0 and <size_t>n > sizeof(sun.sun_path)) or \
            (n > 0 and (<const char *>raw)[0] != 0 and <size_t>n >= sizeof(sun.sun_path)):
        raise OSError("AF_UNIX path too long")
    sun.sun_family = c.AF_UNIX
    memcpy(sun.sun_path, <const char *>raw, n)
    outlen[0] = <c.socklen_t>(c.FASTSOCK_SUN_PATH_OFFSET + n)
    return 0


cdef object make_address(const c.sockaddr_storage *addr, c.socklen_t addrlen):
    """The stdlib's makesockaddr(): a sockaddr back into a Python address."""
    cdef char text[c.INET6_ADDRSTRLEN + 1]
    cdef const c.sockaddr_in *sin
    cdef const c.sockaddr_in6 *sin6
    cdef const c.sockaddr_un *sun
    cdef size_t pathlen, n
    if addrlen == 0:
        return None  # e.g. a datagram from an unbound AF_UNIX socket
    if addr.ss_family == c.AF_INET:
        sin = <const c.sockaddr_in *>addr
        c.inet_ntop(c.AF_INET, &sin.sin_addr, text, sizeof(text))
        return (text.decode("ascii"), c.ntohs(sin.sin_port))
    if addr.ss_family == c.AF_INET6:
        sin6 = <const c.sockaddr_in6 *>addr
        c.inet_ntop(c.AF_INET6, &sin6.sin6_addr, text, sizeof(text))
        return (text.decode("ascii"), c.ntohs(sin6.sin6_port),
                c.ntohl(sin6.sin6_flowinfo), sin6.sin6_scope_id)
    if addr.ss_family == c.AF_VSOCK:
        return ((<const c.sockaddr_vm *>addr).svm_cid, (<const c.sockaddr_vm *>addr).svm_port)
    if addr.ss_family == c.AF_UNIX:
        sun = <const c.sockaddr_un *>addr
        pathlen = addrlen - c.FASTSOCK_SUN_PATH_OFFSET if addrlen > c.FASTSOCK_SUN_PATH_OFFSET else 0
        if pathlen > sizeof(sun.sun_path):
            pathlen = sizeof(sun.sun_path)
        if pathlen > 0 and sun.sun_path[0] == 0:
            return sun.sun_path[:pathlen]  # Linux abstract name: bytes, NUL first
        n = 0
        while n < pathlen and sun.sun_path[n] != 0:
            n += 1
        return PyUnicode_DecodeFSDefaultAndSize(sun.sun_path, n)
    if addr.ss_family == nl.AF_NETLINK:
        return ((<const nl.sockaddr_nl *>addr).nl_pid, (<const nl.sockaddr_nl *>addr).nl_groups)
    return (addr.ss_family, (<const char *>addr)[:addrlen])


# -- netlink ----------------------------------------------------------------------

cdef int parse_netlink_address(object address, c.sockaddr_storage *out, c.socklen_t *outlen,
                               const char *caller) except -1:
    """``(pid, groups)``, as the stdlib's (its "II" format: wrapped to 32 bits)."""
    cdef nl.sockaddr_nl *snl = <nl.sockaddr_nl *>out
    if not isinstance(address, tuple):
        raise TypeError(f"{caller.decode()}(): AF_NETLINK address must be tuple, "
                        f"not {type(address).__name__}")
    if len(address) != 2:
        raise TypeError("AF_NETLINK address must be a pair (pid, groups)")
    snl.nl_family = nl.AF_NETLINK
    snl.nl_pid = <unsigned int>PyLong_AsUnsignedLongMask(_index(address[0]))
    snl.nl_groups = <unsigned int>PyLong_AsUnsignedLongMask(_index(address[1]))
    outlen[0] = sizeof(nl.sockaddr_nl)
    return 0



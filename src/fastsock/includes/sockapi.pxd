# C declarations of the POSIX sockets API, as far as fastsock uses it.
# Cython's bundled libc.* and posix.* cover the rest (errno, close, fcntl,
# clock_gettime); fastsock's own small C helpers are in compat.h.

cdef extern from "<errno.h>" nogil:
    enum: EWOULDBLOCK  # not in Cython's libc.errno

cdef extern from "compat.h" nogil:
    bint would_block "fastsock_would_block" (int err)
    const size_t FASTSOCK_SUN_PATH_OFFSET
    enum: UIO_MAXIOV
    ctypedef union cmsg_buffer "fastsock_cmsg_buffer":
        char buf[64]
    ctypedef union control_buffer "fastsock_control_buffer":
        char buf[256]

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    pthread_t pthread_self()
    int pthread_kill(pthread_t thread, int sig)

cdef extern from "compat.h" nogil:
    # relaxed atomics for socket state read outside its critical section
    int load_int "fastsock_load_int" (const int *p)
    void store_int "fastsock_store_int" (int *p, int value)
    int exchange_int "fastsock_exchange_int" (int *p, int value)
    double load_double "fastsock_load_double" (const double *p)
    void store_double "fastsock_store_double" (double *p, double value)
    const bint FREE_THREADED "FASTSOCK_FREE_THREADED"
    bint gil_shared "fastsock_gil_shared" ()

cdef extern from "compat.h" nogil:
    enum: FASTSOCK_WAKE_SIGNAL
    int install_wake_handler "fastsock_install_wake_handler" ()

cdef extern from "<sys/ioctl.h>" nogil:
    int ioctl(int fd, unsigned long request, ...)
    enum: FIONBIO
    enum: FIONREAD

from posix.types cimport off_t

cdef extern from "<sys/uio.h>" nogil:
    struct iovec:
        void *iov_base
        size_t iov_len

cdef extern from "<limits.h>" nogil:
    enum: IOV_MAX

cdef extern from "compat.h" nogil:
    ssize_t sendfile "fastsock_sendfile_nosignal" (int out_fd, int in_fd, off_t *offset,
                                                   size_t count)

cdef extern from "<string.h>" nogil:
    void *memmem(const void *haystack, size_t haystacklen,
                 const void *needle, size_t needlelen)

cdef extern from "<sys/types.h>":
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    ctypedef unsigned short in_port_t

cdef extern from "<sys/socket.h>" nogil:
    struct sockaddr:
        sa_family_t sa_family

    struct sockaddr_storage:
        sa_family_t ss_family

    enum:
        AF_UNSPEC
        AF_INET
        AF_INET6
        AF_UNIX
        SOCK_STREAM
        SOCK_DGRAM
        SOCK_SEQPACKET
        SOCK_CLOEXEC
        SOCK_NONBLOCK
        SOL_SOCKET
        SO_ERROR
        SO_TYPE
        SO_DOMAIN
        SO_PROTOCOL
        MSG_NOSIGNAL
        MSG_DONTWAIT
        MSG_PEEK
        MSG_TRUNC
        MSG_CTRUNC
        MSG_CMSG_CLOEXEC
        MSG_WAITFORONE
        SCM_RIGHTS
        SHUT_RD
        SHUT_WR
        SHUT_RDWR

    int socket(int domain, int type, int protocol)
    int socketpair(int domain, int type, int protocol, int sv[2])
    int bind(int fd, const sockaddr *addr, socklen_t addrlen)
    int listen(int fd, int backlog)
    int accept4(int fd, sockaddr *addr, socklen_t *addrlen, int flags)
    int connect(int fd, const sockaddr *addr, socklen_t addrlen)
    ssize_t recv(int fd, void *buf, size_t len, int flags)
    ssize_t send(int fd, const void *buf, size_t len, int flags)
    ssize_t recvfrom(int fd, void *buf, size_t len, int flags,
                     sockaddr *src_addr, socklen_t *addrlen)
    ssize_t sendto(int fd, const void *buf, size_t len, int flags,
                   const sockaddr *dest_addr, socklen_t addrlen)
    int shutdown(int fd, int how)

    struct msghdr:
        void *msg_name
        socklen_t msg_namelen
        iovec *msg_iov
        size_t msg_iovlen
        void *msg_control
        size_t msg_controllen
        int msg_flags

    ssize_t sendmsg(int fd, const msghdr *msg, int flags)
    ssize_t recvmsg(int fd, msghdr *msg, int flags)

    struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len

    int recvmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags, void *timeout)
    int sendmmsg(int fd, mmsghdr *msgvec, unsigned int vlen, int flags)

    struct cmsghdr:
        size_t cmsg_len
        int cmsg_level
        int cmsg_type

    cmsghdr *CMSG_FIRSTHDR(msghdr *msg)
    cmsghdr *CMSG_NXTHDR(msghdr *msg, cmsghdr *cmsg)
    unsigned char *CMSG_DATA(cmsghdr *cmsg)
    size_t CMSG_SPACE(size_t length)
    size_t CMSG_LEN(size_t length)
    size_t CMSG_ALIGN(size_t length)
    int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen)
    int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen)
    int getsockname(int fd, sockaddr *addr, socklen_t *addrlen)
    int getpeername(int fd, sockaddr *addr, socklen_t *addrlen)

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        unsigned int s_addr

    struct in6_addr:
        pass

    struct sockaddr_in:
        sa_family_t sin_family
        in_port_t sin_port
        in_addr sin_addr

    struct sockaddr_in6:
        sa_family_t sin6_family
        in_port_t sin6_port
        unsigned int sin6_flowinfo
        in6_addr sin6_addr
        unsigned int sin6_scope_id

    enum:
        INADDR_ANY
        INADDR_BROADCAST
        INET_ADDRSTRLEN
        INET6_ADDRSTRLEN

    in6_addr in6addr_any
    unsigned short htons(unsigned short)
    unsigned short ntohs(unsigned short)
    unsigned int htonl(unsigned int)
    unsigned int ntohl(unsigned int)

cdef extern from "<arpa/inet.h>" nogil:
    int inet_pton(int af, const char *src, void *dst)
    const char *inet_ntop(int af, const void *src, char *dst, socklen_t size)

cdef extern from "<sys/un.h>" nogil:
    struct sockaddr_un:
        sa_family_t sun_family
        char sun_path[108]

# vsock (virtual machine <-> host); <sys/socket.h> first: the Linux header
# needs its sa_family_t
cdef extern from "<linux/vm_sockets.h>" nogil:
    struct sockaddr_vm:
        sa_family_t svm_family
        unsigned int svm_port
        unsigned int svm_cid

    enum: AF_VSOCK

# raw IP sockets
cdef extern from "<sys/socket.h>" nogil:
    enum: SOCK_RAW

cdef extern from "<netdb.h>" nogil:
    struct addrinfo:
        int ai_flags
        int ai_family
        int ai_socktype
        int ai_protocol
        socklen_t ai_addrlen
        sockaddr *ai_addr
        char *ai_canonname
        addrinfo *ai_next

    enum:
        AI_PASSIVE
        EAI_SYSTEM

    int getaddrinfo(const char *node, const char *service,
                    const addrinfo *hints, addrinfo **res)
    void freeaddrinfo(addrinfo *res)
    const char *gai_strerror(int errcode)

cdef extern from "<poll.h>" nogil:
    struct pollfd:
        int fd
        short events
        short revents

    ctypedef unsigned long nfds_t

    enum:
        POLLIN
        POLLOUT
        POLLERR
        POLLHUP
        POLLRDHUP

    int poll(pollfd *fds, nfds_t nfds, int timeout)

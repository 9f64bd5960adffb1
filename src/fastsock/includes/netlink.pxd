# C declarations of Linux netlink (<linux/netlink.h>), as far as NetlinkSocket
# and its address use them.

from libc.stdint cimport uint16_t, uint32_t

cdef extern from "<sys/socket.h>" nogil:
    enum:
        AF_NETLINK
        SOCK_RAW

cdef extern from "<linux/netlink.h>" nogil:
    struct sockaddr_nl:
        unsigned short nl_family
        unsigned int nl_pid
        unsigned int nl_groups

    struct nlmsghdr:
        uint32_t nlmsg_len
        uint16_t nlmsg_type
        uint16_t nlmsg_flags
        uint32_t nlmsg_seq
        uint32_t nlmsg_pid

    enum:
        NETLINK_ROUTE
        NLMSG_NOOP
        NLMSG_ERROR
        NLMSG_DONE
        NLMSG_HDRLEN
        NLM_F_REQUEST
        NLM_F_MULTI
        NLM_F_ACK
        NLM_F_DUMP

"""What the netlink tests share with the child processes they run in a network
namespace of their own: the few rtnetlink and sock_diag structures they
decode, what `ip -json` says, and the namespace itself.
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import socket
import struct
import subprocess
from typing import Any, Optional

# <linux/rtnetlink.h>, <linux/if_link.h>, <linux/sock_diag.h>, <linux/inet_diag.h>
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
SOCK_DIAG_BY_FAMILY = 20
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN, RT_TABLE_LOCAL = 254, 255
RTN_UNICAST, RTN_BLACKHOLE = 1, 6
RTPROT_STATIC = 4
TCP_LISTEN = 10
CLONE_NEWNET = 0x40000000

IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol,
#                                       scope, type, flags
INET_DIAG_REQ_V2 = struct.Struct("=BBBxI")  # family, protocol, ext, states; then the id
INET_DIAG_SOCKID = struct.Struct("!HH16s16s")  # sport, dport, src, dst (network order)
ROUTE_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 4: "anycast", 5: "multicast",
               6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw"}
TABLE_NAMES = {RT_TABLE_MAIN: "main", RT_TABLE_LOCAL: "local", 253: "default"}


def attribute(kind: int, value: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    data = struct.pack("=HH", 4 + len(value), kind) + value
    return data + bytes(-len(data) % 4)


def link_request() -> bytes:
    return IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)


def route_request(family: int = socket.AF_UNSPEC) -> bytes:
    return RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0)


def blackhole_route(network: str, table: int = RT_TABLE_MAIN) -> bytes:
    """The payload of RTM_NEWROUTE/RTM_DELROUTE for ``blackhole <network>``."""
    net = ipaddress.ip_network(network)
    family = socket.AF_INET if net.version == 4 else socket.AF_INET6
    return RTMSG.pack(family, net.prefixlen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, 0,
                      RTN_BLACKHOLE, 0) + attribute(RTA_DST, net.network_address.packed) \
        + attribute(RTA_TABLE, struct.pack("=I", table))


def decode_link(attributes_of: Any, payload: bytes) -> tuple[int, str, int, Optional[str]]:
    """(ifindex, name, mtu, link-layer address) of an RTM_NEWLINK payload."""
    _family, _type, index, _flags, _change = IFINFOMSG.unpack_from(payload)
    attrs = attributes_of(payload, IFINFOMSG.size)
    address = attrs.get(IFLA_ADDRESS)
    return (index, attrs[IFLA_IFNAME].rstrip(b"\0").decode(),
            struct.unpack("=I", attrs[IFLA_MTU])[0],
            ":".join(f"{b:02x}" for b in address) if address is not None else None)


def decode_route(attributes_of: Any, payload: bytes,
                 names: dict[int, str]) -> tuple[str, str, str, Optional[str], Optional[str]]:
    """(table, type, dst, gateway, device) of an RTM_NEWROUTE payload, written as
    `ip -json route` writes them."""
    family, dst_len, _src_len, _tos, table, _proto, _scope, kind, _flags = \
        RTMSG.unpack_from(payload)
    attrs = attributes_of(payload, RTMSG.size)
    if RTA_TABLE in attrs:
        table = struct.unpack("=I", attrs[RTA_TABLE])[0]
    if RTA_DST in attrs:
        address = ipaddress.ip_address(attrs[RTA_DST])
        full = 32 if family == socket.AF_INET else 128
        dst = str(address) if dst_len == full else f"{address}/{dst_len}"
    else:
        dst = "default"
    gateway = str(ipaddress.ip_address(attrs[RTA_GATEWAY])) if RTA_GATEWAY in attrs else None
    oif = names[struct.unpack("=i", attrs[RTA_OIF])[0]] if RTA_OIF in attrs else None
    return (TABLE_NAMES.get(table, str(table)), ROUTE_TYPES.get(kind, str(kind)), dst,
            gateway, oif)


def ip_json(*args: str) -> Any:
    """What `ip -json <args>` prints, decoded."""
    out = subprocess.run(["ip", "-json", *args], check=True, capture_output=True, text=True,
                         timeout=30).stdout
    return json.loads(out) if out.strip() else []


def ip_links() -> set[tuple[int, str, int, Optional[str]]]:
    return {(link["ifindex"], link["ifname"], link["mtu"], link.get("address"))
            for link in ip_json("link")}


def ip_routes() -> set[tuple[str, str, str, Optional[str], Optional[str]]]:
    """`ip -json route show table all`: every table, both families."""
    return {(route.get("table", "main"), route.get("type", "unicast"), route["dst"],
             route.get("gateway"), route.get("dev"))
            for route in ip_json("route", "show", "table", "all")}


def enter_new_netns() -> None:
    """Move this process into a new network namespace (gone when the process
    ends) with its loopback up; os.unshare is 3.12+, hence ctypes."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)

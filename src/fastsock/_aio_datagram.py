"""asyncio datagrams on fastsock sockets: ``fastsock.aio``'s datagram half.

Two ways in, on the same non-blocking ``DatagramSocket``:

- ``open_datagram_endpoint()`` gives a ``DatagramEndpoint`` whose coroutines
  wrap the socket's batch calls: ``recv_many()``/``recv_batch()`` return every
  datagram queued when they run (one ``recvmmsg`` in the compiled
  implementation), waiting for the first; ``send_many()``, ``sendto_many()``
  and ``send_segments()`` (UDP GSO) send all, waiting for room.
- ``create_datagram_endpoint()`` is asyncio's ``loop.create_datagram_endpoint``
  for an ``asyncio.DatagramProtocol``, whose transport receives a batch per
  readiness and sends what the kernel refused, later, in batches.

As for the streams, every call tries the socket first and waits (``add_reader``
/ ``add_writer``) only on ``BlockingIOError``; a try is one synchronous call, so
a cancelled coroutine loses no datagram.
"""

from __future__ import annotations

import asyncio
import collections
import os
import socket as _stdlib
import sys
from typing import Any, Callable, Iterable, Optional, TypeVar

import fastsock

_HIGH_WATER = 64 * 1024  # asyncio's transport defaults
# asyncio's datagram transports read at most this much per datagram; a Unix
# datagram can be that long, a UDP one at most 65,535 bytes (one batch slot)
_UNIX_MAX_DATAGRAM = 256 * 1024
_UDP_SLOT = 65536
_TRANSPORT_BATCH = 32  # datagrams taken per readiness by a transport
# the bookkeeping asyncio adds per queued datagram when it sums the buffer
_QUEUED_HEADER = 28

Address = Any


def _wake_all(waiters: list["asyncio.Future[None]"]) -> None:
    for fut in waiters:
        if not fut.done():
            fut.set_result(None)
    waiters.clear()


def _datagram_socket(local_addr: Any, remote_addr: Any, family: int, proto: int,
                     flags: int, reuse_port: Optional[bool],
                     allow_broadcast: Optional[bool],
                     infos: list[tuple[int, int, Address, Address]]) -> Any:
    """A bound/connected non-blocking DatagramSocket from the first of
    ``infos`` (family, proto, local, remote) that works."""
    errors: list[OSError] = []
    for af, pr, local, remote in infos:
        sock = fastsock.DatagramSocket(af, _stdlib.SOCK_DGRAM, pr)
        try:
            sock.setblocking(False)
            if reuse_port:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_REUSEPORT, 1)
            if allow_broadcast:
                sock.setsockopt(_stdlib.SOL_SOCKET, _stdlib.SO_BROADCAST, 1)
            if local is not None:
                sock.bind(local)
            if remote is not None:
                sock.connect(remote)  # a datagram connect never waits
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if len(errors) == 1:
        raise errors[0]
    raise OSError("Multiple exceptions: {}".format(", ".join(str(exc) for exc in errors)))


async def _open_socket(loop: asyncio.AbstractEventLoop, local_addr: Any, remote_addr: Any,
                       family: int, proto: int, flags: int, reuse_port: Optional[bool],
                       allow_broadcast: Optional[bool], sock: Any) -> Any:
    """The socket of asyncio's create_datagram_endpoint() arguments, as it
    checks and resolves them."""
    if sock is not None:
        if local_addr or remote_addr or family or proto or flags or reuse_port \
                or allow_broadcast:
            raise ValueError("socket modifier keyword arguments can not be used "
                             "when sock is specified")
        if isinstance(sock, _stdlib.socket):
            if sock.type != _stdlib.SOCK_DGRAM:
                raise ValueError(f"A datagram socket was expected, got {sock!r}")
            sock = fastsock.DatagramSocket.from_socket(sock)
        elif not hasattr(sock, "recv_batch"):  # a DatagramSocket of either implementation
            raise ValueError(f"A datagram socket was expected, got {sock!r}")
        sock.setblocking(False)  # a closed socket raises OSError (EBADF) here
        return sock
    if family == _stdlib.AF_UNIX:
        for addr in (local_addr, remote_addr):
            if addr is not None and not isinstance(addr, (str, bytes, os.PathLike)):
                raise TypeError(f"string is expected, got {addr!r}")
        local = None if local_addr is None else os.fspath(local_addr)
        remote = None if remote_addr is None else os.fspath(remote_addr)
        return _datagram_socket(local, remote, family, proto, flags, reuse_port,
                                allow_broadcast, [(family, proto, local, remote)])
    if local_addr is None and remote_addr is None:
        if family == 0:
            raise ValueError("unexpected address family")
        return _datagram_socket(None, None, family, proto, flags, reuse_port,
                                allow_broadcast, [(family, proto, None, None)])
    resolved: dict[str, list[tuple[int, int, Address]]] = {}
    for name, addr in (("local", local_addr), ("remote", remote_addr)):
        if addr is None:
            continue
        if not (isinstance(addr, tuple) and len(addr) == 2):
            raise TypeError("2-tuple is expected")
        found = await loop.getaddrinfo(addr[0], addr[1], family=family,
                                       type=_stdlib.SOCK_DGRAM, proto=proto, flags=flags)
        if not found:
            raise OSError("getaddrinfo() returned empty list")
        resolved[name] = [(af, pr, address) for af, _, pr, _, address in found]
    infos: list[tuple[int, int, Address, Address]] = []
    locals_ = resolved.get("local")
    remotes = resolved.get("remote")
    if locals_ is not None and remotes is not None:
        for af, pr, local in locals_:  # a pair of one family, as asyncio pairs them
            for raf, _, remote in remotes:
                if raf == af:
                    infos.append((af, pr, local, remote))
        if not infos:
            raise ValueError("can not get address information")
    elif locals_ is not None:
        infos = [(af, pr, local, None) for af, pr, local in locals_]
    else:
        assert remotes is not None
        infos = [(af, pr, None, remote) for af, pr, remote in remotes]
    return _datagram_socket(local_addr, remote_addr, family, proto, flags, reuse_port,
                            allow_broadcast, infos)


class DatagramEndpoint:
    """A non-blocking fastsock DatagramSocket driven by the event loop.

    Receives wait for the first datagram and then take, in the same call,
    whatever else is queued; sends wait while the kernel has no room.  Any
    number of tasks may wait on one endpoint.  After ``close()``, waiting calls
    and new ones raise the closed socket's ``OSError`` (EBADF).
    """

    def __init__(self, sock: Any, loop: asyncio.AbstractEventLoop) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd: int = sock.fileno()
        self._loop = loop
        self._closed = False
        self._readers: list[asyncio.Future[None]] = []
        self._writers: list[asyncio.Future[None]] = []
        self._watching_read = False
        self._watching_write = False
        self._send_error: Optional[OSError] = None  # met after part of a batch went out
        self._closed_future: asyncio.Future[None] = loop.create_future()
        self._extra: dict[str, Any] = {"socket": sock}
        for key, getter in (("sockname", sock.getsockname), ("peername", sock.getpeername)):
            try:
                self._extra[key] = getter()
            except OSError:  # not connected
                self._extra[key] = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._fd}"
        return f"<DatagramEndpoint {state} sockname={self._extra['sockname']!r}>"

    @property
    def socket(self) -> Any:
        """The fastsock DatagramSocket (non-blocking)."""
        return self._sock

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket``, ``sockname``, ``peername`` (None when not connected)."""
        return self._extra.get(name, default)

    # -- waiting ------------------------------------------------------------

    async def _readable(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._readers.append(fut)
        if not self._watching_read:
            self._watching_read = True
            self._loop.add_reader(self._fd, self._on_readable)
        try:
            await fut
        finally:
            if fut in self._readers:  # cancelled
                self._readers.remove(fut)

    def _on_readable(self) -> None:
        # stays watched while someone waits; a readiness that finds nobody
        # waiting stops the watch until a receive waits again
        if not self._readers:
            self._watching_read = False
            self._loop.remove_reader(self._fd)
            return
        _wake_all(self._readers)

    async def _writable(self) -> None:
        fut: asyncio.Future[None] = self._loop.create_future()
        self._writers.append(fut)
        if not self._watching_write:
            self._watching_write = True
            self._loop.add_writer(self._fd, self._on_writable)
        try:
            await fut
        finally:
            if fut in self._writers:
                self._writers.remove(fut)

    def _on_writable(self) -> None:
        if not self._writers:
            self._watching_write = False
            self._loop.remove_writer(self._fd)
            return
        _wake_all(self._writers)

    async def _receive(self, call: Callable[..., Any], *args: Any) -> Any:
        while True:
            try:
                return call(*args)
            except BlockingIOError:
                pass
            except OSError:
                self._unwatch_after_error()
                raise
            await self._readable()

    async def _send(self, call: Callable[..., Any], *args: Any) -> Any:
        self._raise_kept_error()
        while True:
            try:
                return call(*args)
            except BlockingIOError:
                pass
            except OSError:
                self._unwatch_after_error()
                raise
            await self._writable()

    def _unwatch_after_error(self) -> None:
        """A socket error (an ICMP refusal, say) is a readiness that uvloop
        answers by dropping the watch without a word: watch anew next time."""
        if self._closed:
            return
        if self._watching_read:
            self._watching_read = False
            self._loop.remove_reader(self._fd)
        if self._watching_write:
            self._watching_write = False
            self._loop.remove_writer(self._fd)

    def _raise_kept_error(self) -> None:
        exc, self._send_error = self._send_error, None
        if exc is not None:
            raise exc

    # -- receiving ----------------------------------------------------------

    async def recvfrom(self, bufsize: int = 65535) -> tuple[bytes, Address]:
        """One datagram and its sender (cut to ``bufsize`` as the socket's recvfrom())."""
        result: tuple[bytes, Address] = await self._receive(self._sock.recvfrom, bufsize)
        return result

    async def recv(self, bufsize: int = 65535) -> bytes:
        """One datagram (cut to ``bufsize``)."""
        data: bytes = await self._receive(self._sock.recv, bufsize)
        return data

    async def recv_many(self, max_count: int = 64,
                        bufsize: int = 2048) -> list[tuple[bytes, Address]]:
        """Wait for a datagram, then return it and every other one already queued,
        up to ``max_count``, as ``(bytes, address)`` pairs: the socket's
        recv_many() (TruncatedDatagramError, holding them all, when one is
        longer than ``bufsize``)."""
        messages: list[tuple[bytes, Address]] = await self._receive(
            self._sock.recv_many, max_count, bufsize)
        return messages

    async def recv_batch(self, batch: Any) -> int:
        """Wait for a datagram, then receive it and every other one queued into
        ``batch`` (a fastsock.DatagramBatch), up to its count; returns how many."""
        count: int = await self._receive(self._sock.recv_batch, batch)
        return count

    def set_gro(self, enabled: bool = True) -> bool:
        """The socket's set_gro(): whether UDP GRO is on now."""
        on: bool = self._sock.set_gro(enabled)
        return on

    async def recv_gro(self, bufsize: int = 65535) -> tuple[bytes, Address, int]:
        """Wait for data, then the socket's recv_gro(): ``(data, address,
        segment_size)``, several datagrams of one sender coalesced when GRO is on."""
        result: tuple[bytes, Address, int] = await self._receive(self._sock.recv_gro, bufsize)
        return result

    # -- sending ------------------------------------------------------------

    async def sendto(self, data: Any, address: Address = None) -> None:
        """Send one datagram to ``address`` (None: the connected peer), waiting
        while the kernel has no room."""
        if address is None:
            await self._send(self._sock.send, data)
        else:
            await self._send(self._sock.sendto, data, address)

    async def send(self, data: Any) -> None:
        """Send one datagram to the connected peer, waiting for room."""
        await self._send(self._sock.send, data)

    async def _send_all(self, items: list[Any], call: Callable[[list[Any]], int]) -> int:
        """Send ``items`` with ``call`` (a batch send returning how many went
        out), waiting for room between tries; an error after some went out
        returns their count and is raised by the next send."""
        self._raise_kept_error()
        sent = 0
        while sent < len(items):
            try:
                sent += call(items[sent:])
                continue  # a short count: room ran out, or an error is kept
            except BlockingIOError:
                pass
            except OSError as exc:
                self._unwatch_after_error()
                if not sent:
                    raise
                self._send_error = exc
                return sent
            await self._writable()
        return sent

    async def send_many(self, buffers: Iterable[Any], address: Address = None) -> int:
        """Send each buffer as a datagram to ``address`` (None: the connected
        peer), many per kernel call, waiting for room; returns how many were
        sent: all, unless an error came after some (that error is then raised
        by the next send)."""
        items = list(buffers)
        send_many = self._sock.send_many
        return await self._send_all(items, lambda rest: send_many(rest, address))

    async def sendto_many(self, pairs: Iterable[tuple[Any, Address]]) -> int:
        """send_many() of ``(data, address)`` pairs, each to its address."""
        return await self._send_all(list(pairs), self._sock.sendto_many)

    async def send_segments(self, buffer: Any, segment_size: int,
                            address: Address = None) -> int:
        """Send ``buffer`` as datagrams of ``segment_size`` bytes (UDP GSO where
        the kernel has it), waiting for room; returns how many, as send_many()."""
        view = memoryview(buffer).cast("B")
        if segment_size <= 0:
            self._sock.send_segments(view, segment_size, address)  # its ValueError
        segments = [view[start:start + segment_size]
                    for start in range(0, len(view), segment_size)]
        send_segments = self._sock.send_segments

        def send_rest(rest: list[memoryview]) -> int:
            start = (len(segments) - len(rest)) * segment_size
            count: int = send_segments(view[start:], segment_size, address)
            return count

        return await self._send_all(segments, send_rest)

    # -- closing ------------------------------------------------------------

    def is_closing(self) -> bool:
        """True once close() was called."""
        return self._closed

    def close(self) -> None:
        """Close the socket now; waiting calls raise its OSError (EBADF)."""
        if self._closed:
            return
        self._closed = True
        # unregister before closing: a loop must never watch a reused number
        if self._watching_read:
            self._watching_read = False
            self._loop.remove_reader(self._fd)
        if self._watching_write:
            self._watching_write = False
            self._loop.remove_writer(self._fd)
        self._sock.close()
        _wake_all(self._readers)
        _wake_all(self._writers)
        if not self._closed_future.done():
            self._closed_future.set_result(None)

    async def wait_closed(self) -> None:
        """Wait until close() is called."""
        await asyncio.shield(self._closed_future)

    async def __aenter__(self) -> "DatagramEndpoint":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


async def open_datagram_endpoint(local_addr: Any = None, remote_addr: Any = None, *,
                                 family: int = 0, proto: int = 0, flags: int = 0,
                                 reuse_port: Optional[bool] = None,
                                 allow_broadcast: Optional[bool] = None,
                                 sock: Any = None) -> DatagramEndpoint:
    """A DatagramEndpoint for asyncio's create_datagram_endpoint() arguments
    (``local_addr``/``remote_addr`` host-port pairs, or paths with
    ``family=AF_UNIX``; ``sock``: a datagram socket of fastsock, either
    implementation, or the stdlib, whose descriptor is taken over)."""
    loop = asyncio.get_running_loop()
    sock = await _open_socket(loop, local_addr, remote_addr, family, proto, flags,
                              reuse_port, allow_broadcast, sock)
    return DatagramEndpoint(sock, loop)


class DatagramTransport(asyncio.DatagramTransport):
    """asyncio's datagram transport over a fastsock DatagramSocket: a batch of
    datagrams per readiness (recvmmsg for UDP), queued sends flushed in
    batches (sendmmsg)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: Any,
                 protocol: asyncio.BaseProtocol,
                 waiter: "asyncio.Future[None]") -> None:
        super().__init__()
        self._extra_info: dict[str, Any] = {"socket": sock}
        self._loop = loop
        self._sock = sock
        self._fd: int = sock.fileno()
        self._protocol: Any = protocol  # a DatagramProtocol, as asyncio's transports take
        for key, getter in (("sockname", sock.getsockname), ("peername", sock.getpeername)):
            try:
                self._extra_info[key] = getter()
            except OSError:
                self._extra_info[key] = None
        self._address = self._extra_info["peername"]
        self._closing = False
        self._closed = False
        self._conn_lost = 0
        self._buffer: collections.deque[tuple[bytes, Address]] = collections.deque()
        self._buffer_size = 0
        self._high = _HIGH_WATER
        self._low = _HIGH_WATER // 4
        self._protocol_paused = False
        self._batch: Any = None
        if sock.family != _stdlib.AF_UNIX:
            # the batch of the socket's own implementation
            implementation = sys.modules[type(sock).__module__]
            self._batch = implementation.DatagramBatch(_TRANSPORT_BATCH, _UDP_SLOT)
        loop.call_soon(protocol.connection_made, self)
        loop.call_soon(loop.add_reader, self._fd, self._read_ready)
        loop.call_soon(self._set_waiter, waiter)

    @staticmethod
    def _set_waiter(waiter: "asyncio.Future[None]") -> None:
        if not waiter.cancelled():
            waiter.set_result(None)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("closing" if self._closing else "open")
        return f"<fastsock.aio datagram transport fd={self._fd} {state}>"

    # -- asyncio.BaseTransport ---------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """``socket`` (the fastsock socket), ``sockname``, ``peername``."""
        return self._extra_info.get(name, default)

    def get_protocol(self) -> asyncio.BaseProtocol:
        protocol: asyncio.BaseProtocol = self._protocol
        return protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._buffer:
            self._conn_lost += 1
            self._loop.call_soon(self._call_connection_lost, None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Optional[Exception]) -> None:
        if self._conn_lost:
            return
        if self._buffer:
            self._buffer.clear()
            self._buffer_size = 0
            self._loop.remove_writer(self._fd)
        if not self._closing:
            self._closing = True
            self._loop.remove_reader(self._fd)
        self._conn_lost += 1
        self._loop.call_soon(self._call_connection_lost, exc)

    def _fatal_error(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler({
            "message": message,
            "exception": exc, "transport": self, "protocol": self._protocol})
        self._force_close(exc)

    def _call_connection_lost(self, exc: Optional[Exception]) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._closed = True
            self._sock.close()

    # -- flow control --------------------------------------------------------

    def get_write_buffer_size(self) -> int:
        return self._buffer_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: Optional[int] = None,
                                low: Optional[int] = None) -> None:
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high, self._low = high, low
        self._maybe_pause_protocol()

    def _maybe_pause_protocol(self) -> None:
        if self._buffer_size <= self._high or self._protocol_paused:
            return
        self._protocol_paused = True
        try:
            self._protocol.pause_writing()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:  # the application's callback: reported, as asyncio
            self._loop.call_exception_handler({
                "message": "protocol.pause_writing() failed",
                "exception": exc, "transport": self, "protocol": self._protocol})

    def _maybe_resume_protocol(self) -> None:
        if self._protocol_paused and self._buffer_size <= self._low:
            self._protocol_paused = False
            try:
                self._protocol.resume_writing()
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:  # as above
                self._loop.call_exception_handler({
                    "message": "protocol.resume_writing() failed",
                    "exception": exc, "transport": self, "protocol": self._protocol})

    # -- receiving -----------------------------------------------------------

    def _read_ready(self) -> None:
        if self._batch is not None:
            self._read_batch()
        else:
            self._read_each()

    def _read_batch(self) -> None:
        batch = self._batch
        try:
            count = self._sock.recv_batch(batch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._rearm_reader()
            self._protocol.error_received(exc)
            return
        received = self._protocol.datagram_received
        for k in range(count):
            if self._closing:
                break  # as asyncio: nothing is delivered after close()
            with batch.data(k) as view:
                data = bytes(view)
            received(data, batch.address(k))

    def _read_each(self) -> None:
        recvfrom = self._sock.recvfrom
        for _ in range(_TRANSPORT_BATCH):
            if self._closing:
                return
            try:
                data, address = recvfrom(_UNIX_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._rearm_reader()
                self._protocol.error_received(exc)
                return
            self._protocol.datagram_received(data, address)

    def _rearm_reader(self) -> None:
        """A socket error is a readiness that uvloop answers by dropping the
        watch: register it anew."""
        if not self._closing:
            self._loop.remove_reader(self._fd)
            self._loop.add_reader(self._fd, self._read_ready)

    # -- sending -------------------------------------------------------------

    def sendto(self, data: Any, addr: Address = None) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data argument must be a bytes-like object, "
                            f"not {type(data).__name__!r}")
        if self._address is not None:
            if addr not in (None, self._address):
                raise ValueError(f"Invalid address: must be None or {self._address}")
            addr = None
        if self._conn_lost:
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                if addr is None:
                    self._sock.send(data)
                else:
                    self._sock.sendto(data, addr)
                return
            except (BlockingIOError, InterruptedError):
                self._loop.add_writer(self._fd, self._write_ready)
            except OSError as exc:
                self._protocol.error_received(exc)
                return
            except (TypeError, ValueError, OverflowError) as exc:
                # an address the socket refuses: asyncio ends the transport with it
                self._fatal_error(exc, "Fatal write error on datagram transport")
                return
        self._buffer.append((bytes(data), addr))
        self._buffer_size += len(data) + _QUEUED_HEADER
        self._maybe_pause_protocol()

    def _write_ready(self) -> None:
        buffer = self._buffer
        while buffer:
            items = list(buffer)[:_TRANSPORT_BATCH]
            try:
                if self._address is not None:
                    sent = self._sock.send_many([data for data, _ in items])
                else:
                    sent = self._sock.sendto_many(items)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # as asyncio: the datagram that failed is dropped, the error reported
                data, _ = buffer.popleft()
                self._buffer_size -= len(data) + _QUEUED_HEADER
                self._loop.remove_writer(self._fd)  # anew, as _rearm_reader()
                if buffer:
                    self._loop.add_writer(self._fd, self._write_ready)
                self._protocol.error_received(exc)
                return
            for _ in range(sent):
                data, _ = buffer.popleft()
                self._buffer_size -= len(data) + _QUEUED_HEADER
            if sent < len(items):
                continue  # an error is kept for the next call, or room ran out
        self._maybe_resume_protocol()
        if not buffer:
            self._loop.remove_writer(self._fd)
            if self._closing:
                self._call_connection_lost(None)


_Protocol = TypeVar("_Protocol", bound=asyncio.BaseProtocol)


async def create_datagram_endpoint(
        protocol_factory: Callable[[], _Protocol],
        local_addr: Any = None, remote_addr: Any = None, *, family: int = 0,
        proto: int = 0, flags: int = 0, reuse_port: Optional[bool] = None,
        allow_broadcast: Optional[bool] = None, sock: Any = None,
) -> tuple[DatagramTransport, _Protocol]:
    """loop.create_datagram_endpoint() on a fastsock DatagramSocket: the same
    arguments and (transport, protocol); the transport hands the protocol every
    datagram queued at a readiness (up to 32) and sends in batches."""
    loop = asyncio.get_running_loop()
    sock = await _open_socket(loop, local_addr, remote_addr, family, proto, flags,
                              reuse_port, allow_broadcast, sock)
    try:
        protocol = protocol_factory()
        waiter: asyncio.Future[None] = loop.create_future()
        transport = DatagramTransport(loop, sock, protocol, waiter)
    except BaseException:
        sock.close()
        raise
    try:
        await waiter
    except BaseException:
        transport.close()
        raise
    return transport, protocol


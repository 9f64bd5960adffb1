"""StreamSocket.makefile(), written once for both twins: its argument checks
(the stdlib's), the unbuffered file (SocketIO), and the layers each mode
asks for.  The buffered binary file that reads the socket's own receive
buffer is each twin's ``SocketFile`` (_file_py.py, _file_c.pxi), passed in.

Every file holds a reference on its socket (``_file_opened`` /
``_file_closed``), as the stdlib's ``_io_refs``: close() of a socket that
has files open is carried out when the last of them closes.

It imports neither twin.
"""

from __future__ import annotations

import io
from operator import index as _index
from typing import Any, Callable, Literal, Optional, Protocol

# the modes of makefile(), for its overloads: the file each one makes
ReadingBinaryMode = Literal["rb", "br", "b", "rwb", "rbw", "wrb", "wbr", "brw", "bwr"]
WritingBinaryMode = Literal["wb", "bw"]
BinaryMode = Literal[ReadingBinaryMode, WritingBinaryMode]
TextMode = Literal["r", "w", "rw", "wr", ""]


class FileSocket(Protocol):
    """What the files use of a StreamSocket."""

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int: ...

    def send(self, data: Any, flags: int = 0) -> int: ...

    def fileno(self) -> int: ...

    def _file_opened(self) -> None: ...

    def _file_closed(self) -> None: ...


def check_mode(mode: Any, buffering: Any) -> tuple[bool, bool, bool, int]:
    """``(reading, writing, binary, buffer size)`` for makefile's arguments,
    refused with the stdlib's errors, before anything is created."""
    if not set(mode) <= {"r", "w", "b"}:
        raise ValueError("invalid mode %r (only r, w, b allowed)" % (mode,))
    writing = "w" in mode
    reading = "r" in mode or not writing
    binary = "b" in mode
    if buffering is None:
        buffering = -1
    if buffering < 0:
        buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if not binary:
            raise ValueError("unbuffered streams must be binary")
        return reading, writing, binary, 0
    return reading, writing, binary, _index(buffering)


class SocketIO(io.RawIOBase):
    """The unbuffered file of ``makefile(mode, buffering=0)``, and the raw file
    under a writing file's buffer, as the stdlib's socket.SocketIO: a read is
    one recv_into() of the socket (its receive buffer first, so nothing
    buffered is skipped), a write one send(); None when a non-blocking
    socket would block.  Unlike the stdlib's, a timeout loses nothing, and
    reading after one goes on."""

    def __init__(self, sock: FileSocket, mode: str) -> None:
        super().__init__()
        self._sock: Optional[FileSocket] = None  # closed, for the finalizer, until opened
        sock._file_opened()
        self._sock = sock
        self._mode = mode
        self._reading = "r" in mode
        self._writing = "w" in mode

    def _socket(self) -> FileSocket:
        sock = self._sock
        if sock is None:
            raise ValueError("I/O operation on closed file.")
        return sock

    def readinto(self, buffer: Any) -> Optional[int]:
        """Read up to len(buffer) bytes into it and return the count; 0 at the
        end of the stream, None when a non-blocking socket has none."""
        sock = self._socket()
        if not self._reading:
            raise io.UnsupportedOperation("File or stream is not readable.")
        try:
            return sock.recv_into(buffer)
        except BlockingIOError:
            return None

    def write(self, data: Any) -> Optional[int]:
        """Send what the socket takes of ``data`` with one send() and return the
        count; None when a non-blocking socket takes none."""
        sock = self._socket()
        if not self._writing:
            raise io.UnsupportedOperation("File or stream is not writable.")
        try:
            return sock.send(data)
        except BlockingIOError:
            return None

    def readable(self) -> bool:
        """True when the file was opened for reading."""
        self._socket()
        return self._reading

    def writable(self) -> bool:
        """True when the file was opened for writing."""
        self._socket()
        return self._writing

    def seekable(self) -> bool:
        """False: a socket cannot seek."""
        self._socket()
        return False

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self._socket().fileno()

    @property
    def name(self) -> int:
        """The socket's descriptor, -1 once the file is closed (as the stdlib's)."""
        sock = self._sock
        return -1 if sock is None else sock.fileno()

    @property
    def mode(self) -> str:
        """"rb", "wb" or "rwb"."""
        return self._mode

    def close(self) -> None:
        """Close the file; the socket closes with it only if its close() was
        called while files were open and this was the last of them."""
        sock = self._sock
        if sock is None:
            return
        super().close()
        self._sock = None
        sock._file_closed()


def open_file(sock: FileSocket, file_class: Callable[..., Any], mode: Any,
              buffering: Any, encoding: Optional[str], errors: Optional[str],
              newline: Optional[str]) -> Any:
    """The file ``makefile(mode, buffering, ...)`` returns: ``file_class``
    (the twin's SocketFile) for reading, a BufferedWriter over SocketIO for
    writing only, SocketIO when unbuffered, and a TextIOWrapper over one of
    those in text mode.  On any error nothing stays open."""
    reading, writing, binary, size = check_mode(mode, buffering)
    rawmode = ("r" if reading else "") + ("w" if writing else "") + "b"
    if size == 0:
        return SocketIO(sock, rawmode)
    if reading:
        writer = io.BufferedWriter(SocketIO(sock, "wb"), size) if writing else None
        try:
            # text mode: reads are served a line at a time, so the text
            # layer takes no bytes past the line it returns
            file = file_class(sock, rawmode, writer, not binary)
        except BaseException:
            if writer is not None:
                writer.close()
            raise
    else:
        file = io.BufferedWriter(SocketIO(sock, rawmode), size)
    if binary:
        return file
    try:
        # io.text_encoding is 3.10's, but typed only from 3.11 on
        encoding = io.text_encoding(encoding)  # type: ignore[attr-defined,unused-ignore]
        text = io.TextIOWrapper(file, encoding, errors, newline)
    except BaseException:
        file.close()
        raise
    text.mode = mode  # type: ignore[misc]  # as the stdlib's makefile
    return text

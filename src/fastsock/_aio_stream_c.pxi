# The compiled core of fastsock.aio's streams: the reads, writes and waits run
# per request, as C methods of the classes aio.StreamReader and aio.StreamWriter
# derive from.  Pure twin: _aio_stream_py.py (the same steps, line for line,
# and the comments on why live there), except two things only this core does:
# a server handler's reads resumed by the readiness callback (AioHandler), and
# the per-request reads as awaitables of their own (AioRead, at the end)
# rather than coroutines.  A StreamSocket of this module (not a subclass) is
# called in C; any other socket through its Python methods.
#
# asyncio is imported on first use, not with fastsock: its exceptions are
# raised only when a read fails.

cdef Py_ssize_t aio_read_ahead_frames = _common.AIO_READ_AHEAD_FRAMES
cdef Py_ssize_t aio_read_ahead_bytes = _common.AIO_READ_AHEAD_BYTES
cdef Py_ssize_t aio_send_chunk = _common.AIO_SEND_CHUNK
cdef object aio_default_limit = _common.AIO_DEFAULT_LIMIT
cdef object aio_high_water = _common.AIO_HIGH_WATER
cdef object aio_max_message = _common.DEFAULT_MAX_MESSAGE
cdef dict aio_prefixes = {size: _struct.Struct(code)
                          for size, code in ((1, ">B"), (2, ">H"), (4, ">I"), (8, ">Q"))}
cdef object _asyncio_module = None


cdef extern from "Python.h":
    ctypedef enum PySendResult:
        PYGEN_RETURN
        PYGEN_ERROR
        PYGEN_NEXT
    PySendResult PyIter_Send(object iter, object arg, PyObject **presult) except? PYGEN_ERROR
    int PyContext_Enter(object context) except -1
    int PyContext_Exit(object context) except -1
    PyObject *PyDict_GetItem(object mapping, object key)  # borrowed; never raises
    PyObject *PyDict_SetDefault(object mapping, object key, object value) except NULL  # borrowed


cdef extern from "aio_send.h":
    ctypedef object (*fastsock_aio_step_fn)(object awaitable, int *yielded)
    int fastsock_aio_set_am_send(PyTypeObject *type, fastsock_aio_step_fn step) except -1
    int fastsock_aio_learn_future(object future_type) except -1
    int fastsock_aio_done(object fut) except -1


cdef object _asyncio():
    global _asyncio_module
    if _asyncio_module is None:
        import asyncio
        _asyncio_module = asyncio
    return _asyncio_module


cdef object _aio_incomplete(object exc):
    return _asyncio().IncompleteReadError(exc.partial, exc.expected)


cdef object _aio_prefix(object prefix_size):
    try:
        return aio_prefixes[prefix_size]
    except KeyError:
        raise ValueError("prefix_size must be 1, 2, 4 or 8") from None


cdef bint aio_future_learned = False


cdef inline bint _aio_done(object fut) except -1:
    """fut.done() (aio_send.h: by the C function on asyncio's own futures)."""
    global aio_future_learned
    if not aio_future_learned:
        fastsock_aio_learn_future(_asyncio().Future)
        aio_future_learned = True
    return fastsock_aio_done(fut)


cdef inline int _aio_wake(object fut) except -1:
    if not _aio_done(fut):
        fut.set_result(None)
    return 0


cdef bint aio_resume_inline = True


def _aio_resume_inline(bint on):
    """Off: every wake goes through the loop's scheduling (_aio_stream_py's
    RESUME_INLINE; tests run the faults both ways)."""
    global aio_resume_inline
    aio_resume_inline = on


cdef int _aio_resume_now(object fut) except -1:
    # complete fut and run the one task waiting on it now (resume_now)
    callbacks = fut._callbacks if aio_resume_inline else None
    if callbacks is not None and len(callbacks) == 1:
        wakeup, context = callbacks[0]
        fut.remove_done_callback(wakeup)
        fut.set_result(None)
        context.run(wakeup, fut)
    else:
        fut.set_result(None)
    return 0


cdef bint aio_drive = True
cdef object aio_task_type = None  # asyncio's C Task: the only kind a handler drives
cdef object aio_current_task = None
cdef object aio_enter_task = None
cdef object aio_leave_task = None
# asyncio's own record of each loop's running task (3.10-3.13: a dict that
# current_task(), _enter_task() and _leave_task() read and write), looked up
# directly: calling them costs a fifth of a driven read's instructions
cdef dict aio_current_tasks = None


def _aio_drive(bint on):
    """Off: a server handler's reads are resumed through its task like any
    other (resume_now); tests run the faults both ways."""
    global aio_drive
    aio_drive = on


cdef enum:
    HANDLER_RUNS
    HANDLER_YIELDED
    HANDLER_RETURNED
    HANDLER_RAISED


cdef class AioHandler:
    """The coroutine a fastsock.aio server's task runs for one connection: the
    handler's coroutine, passed through, which the connection's readiness
    callback may also resume directly.

    Why: resuming a task costs a future per wait, completing it and a step of
    the task: over a third of an echo request's instructions.  So while the
    handler waits for its own connection's data, its task waits on ``park``, a
    pending future that outlives the wait, and the readiness callback resumes
    the handler's coroutine itself -- as the task would: as the current task,
    in the task's context.  When the coroutine waits for the same connection
    again it yields ``park`` once more, and nothing changes for the task.
    Anything else it does (waits on another future, returns, raises) is handed
    to the task: ``park`` completes, the task steps at once, and this object
    gives it what the coroutine did (the stash).  Cancelling the task cancels
    ``park``; the task then throws into the coroutine where it waits, as it
    would have.
    """

    cdef object coro
    cdef object loop
    cdef object task
    cdef object context  # the task's, learned from its wake-up on park
    cdef object park
    cdef bint running  # inside resume()
    cdef int stash
    cdef object stash_value

    def __init__(self, coro, loop):
        self.coro = coro
        self.loop = loop
        self.task = None
        self.context = None
        self.park = None
        self.running = False
        self.stash = HANDLER_RUNS
        self.stash_value = None

    def _set_task(self, task):
        global aio_task_type, aio_current_task, aio_enter_task, aio_leave_task
        global aio_current_tasks
        if aio_task_type is None:
            tasks = _asyncio().tasks
            aio_current_task = tasks.current_task
            aio_enter_task, aio_leave_task = tasks._enter_task, tasks._leave_task
            current_tasks = getattr(tasks, "_current_tasks", None)
            aio_current_tasks = current_tasks if type(current_tasks) is dict else None
            aio_task_type = getattr(tasks, "_CTask", None) or tasks.Task
        # a task of another kind (a task factory's subclass) steps by its own rules
        self.task = task if type(task) is aio_task_type else None

    cdef bint can_park(self) except -1:
        """Whether a read of the handler's connection may wait on ``park``
        (made anew when the task is the one stepping)."""
        if self.task is None or not aio_drive:
            return False
        # inside resume() the task is current, and before 3.12 no other task
        # can step within its step (3.12's eager tasks start at once)
        if not self.running or PY_VERSION_HEX >= 0x030C0000:
            if aio_current_tasks is not None:
                if PyDict_GetItem(aio_current_tasks, self.loop) is not <PyObject *>self.task:
                    return False  # the read runs in another task
            elif aio_current_task(self.loop) is not self.task:
                return False
        park = self.park
        if self.running:
            # the task waits on park if it is still pending; if not, the
            # task's wake-up is under way and the read must wait its own way
            return park is not None and not _aio_done(park)
        if park is None or _aio_done(park):
            self.park = self.loop.create_future()
        return True

    cdef int resume(self) except -1:
        """Resume the handler's coroutine, which waits on ``park`` for data
        that has now arrived."""
        cdef PyObject *raw = NULL
        cdef PySendResult status
        park = self.park
        if self.context is None:
            callbacks = park._callbacks
            if callbacks is None or len(callbacks) != 1:
                _aio_resume_now(park)
                return 0
            self.context = callbacks[0][1]
        context = self.context
        task = self.task
        loop = self.loop
        if (aio_current_tasks is None
                or PyDict_SetDefault(aio_current_tasks, loop, task) is not <PyObject *>task):
            aio_enter_task(loop, task)  # raises as asyncio does (another task runs), or has no dict
        PyContext_Enter(context)
        self.running = True
        try:
            status = PyIter_Send(self.coro, None, &raw)
            result = <object>raw
            Py_XDECREF(raw)
            if status == PYGEN_NEXT:
                if result is park and not _aio_done(park):
                    return 0  # waits for its connection again: the task still waits on park
                self.stash = HANDLER_YIELDED
            else:
                self.stash = HANDLER_RETURNED
            self.stash_value = result
        except BaseException as exc:
            # the handler's own exception (KeyboardInterrupt included): its
            # task raises it, as when it steps the coroutine itself
            self.stash = HANDLER_RAISED
            self.stash_value = exc
        finally:
            self.running = False
            PyContext_Exit(context)
            if aio_current_tasks is None:
                aio_leave_task(loop, task)
            else:
                current = aio_current_tasks.pop(loop, None)
                if current is not task:
                    if current is not None:
                        aio_current_tasks[loop] = current
                    aio_leave_task(loop, task)  # raises as asyncio does
        self._hand_over()
        return 0

    cdef int _hand_over(self) except -1:
        park, self.park = self.park, None
        if not _aio_done(park):
            _aio_resume_now(park)
        # else the task was cancelled meanwhile: its wake-up is scheduled and
        # throws into the coroutine where it now waits (throw())
        return 0

    # -- the coroutine the task steps ------------------------------------------

    def send(self, value):
        cdef int stash = self.stash
        if stash == HANDLER_RUNS:
            return self.coro.send(value)
        result, self.stash, self.stash_value = self.stash_value, HANDLER_RUNS, None
        if stash == HANDLER_YIELDED:
            return result
        if stash == HANDLER_RETURNED:
            raise StopIteration(result)
        raise result

    def __next__(self):
        cdef PyObject *raw = NULL
        if self.stash != HANDLER_RUNS:
            return self.send(None)
        if PyIter_Send(self.coro, None, &raw) == PYGEN_NEXT:
            result = <object>raw
            Py_XDECREF(raw)
            return result
        result = <object>raw
        Py_XDECREF(raw)
        raise StopIteration(result)

    def throw(self, typ, val=None, tb=None):
        cdef int stash = self.stash
        if stash != HANDLER_RUNS:
            stashed, self.stash, self.stash_value = self.stash_value, HANDLER_RUNS, None
            if stash == HANDLER_RAISED:
                raise stashed  # ended with its own exception before the throw
            if stash == HANDLER_RETURNED:
                # ended before the cancellation reached it: the task ends
                # cancelled, as asyncio's when cancel() comes as the coroutine returns
                if val is None:
                    raise typ
                raise val
            # it had moved on to wait on another future: cancelled with the task
            if stashed is not None and _asyncio().isfuture(stashed):
                stashed.cancel()
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self):
        self.stash, self.stash_value = HANDLER_RUNS, None
        return self.coro.close()

    def __await__(self):
        return self

    def __iter__(self):
        return self

    # what asyncio's reprs and stacks read of a coroutine: the handler's
    @property
    def __name__(self):
        return getattr(self.coro, "__name__", type(self.coro).__name__)

    @property
    def __qualname__(self):
        return getattr(self.coro, "__qualname__", self.__name__)

    @property
    def cr_code(self):
        return getattr(self.coro, "cr_code", None)

    @property
    def cr_frame(self):
        return getattr(self.coro, "cr_frame", None)

    @property
    def cr_running(self):
        return self.running or getattr(self.coro, "cr_running", False)

    @property
    def cr_await(self):
        return getattr(self.coro, "cr_await", None)

    def __repr__(self):
        return repr(self.coro)


def _aio_serve(loop, reader, coro):
    """The task of a server's handler coroutine for a connection whose
    reader is ``reader``: driven by an AioHandler when the reader has the
    compiled core."""
    if not isinstance(reader, AioReaderCore):
        return loop.create_task(coro)
    handler = AioHandler(coro, loop)
    task = loop.create_task(handler)
    handler._set_task(task)
    (<AioReaderCore>reader)._handler = handler
    return task


cdef class AioParked:
    """What a read awaits while its task waits on its handler's ``park``: the
    future once, then done at the next resumption (a future's own awaiting
    refuses to resume while the future is pending, and park stays pending)."""

    cdef object fut

    cdef void arm(self, object fut):
        self.fut = fut

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        fut = self.fut
        if fut is None:
            raise StopIteration
        self.fut = None
        return fut


cdef class AioConnection:
    """What the reader and the writer of one socket share: its loop
    registrations and its end (the compiled twin of _aio_stream_py.Connection)."""

    cdef public object sock
    cdef public int fd
    cdef public object loop
    cdef public bint closed
    cdef public bint closing
    cdef public object exception
    cdef public object reader
    cdef public object writer
    cdef public object closed_future
    cdef public object on_close
    cdef object __weakref__

    def __init__(self, sock, loop):
        sock.setblocking(False)
        self.sock = sock
        self.fd = sock.fileno()
        self.loop = loop
        self.closed = False
        self.closing = False
        self.exception = None
        self.reader = None
        self.writer = None
        self.closed_future = loop.create_future()
        self.on_close = None

    def close(self, exc=None):
        """Close the descriptor now and wake whoever waits on it."""
        if self.closed:
            return
        self.closed = True
        self.closing = True
        if exc is not None and self.exception is None:
            self.exception = exc
        self.loop.remove_reader(self.fd)
        self.loop.remove_writer(self.fd)
        self.sock.close()
        if self.reader is not None:
            self.reader._connection_closed()
        if self.writer is not None:
            self.writer._connection_closed()
        if not self.closed_future.done():
            if exc is not None:
                self.closed_future.set_exception(exc)
                self.closed_future.exception()
            else:
                self.closed_future.set_result(None)
        if self.on_close is not None:
            self.on_close()


cdef class AioReaderCore:
    """The compiled core of fastsock.aio.StreamReader."""

    cdef public AioConnection _conn
    cdef public object _sock
    cdef StreamSocket _fast  # the socket, when it is this module's StreamSocket
    cdef public object _limit
    cdef public bint _eof
    cdef public object _waiter
    cdef public Py_ssize_t _waits
    cdef public bint _watching
    cdef public bint _drained
    cdef public list _frames
    cdef public int _frames_prefix
    cdef public AioHandler _handler  # the server task's driver, when it drives
    cdef AioParked _parked

    def __init__(self, AioConnection conn not None, limit=aio_default_limit):
        if limit <= 0:
            raise ValueError("Limit cannot be <= 0")
        self._conn = conn
        self._sock = conn.sock
        self._fast = conn.sock if type(conn.sock) is StreamSocket else None
        self._limit = limit
        self._eof = False
        self._waiter = None
        self._waits = 0
        self._watching = False
        self._drained = False
        self._frames = []
        self._frames_prefix = 0
        self._handler = None
        self._parked = AioParked()
        conn.reader = self

    # -- state --------------------------------------------------------------

    def exception(self):
        """The error that ended the connection, or None."""
        return self._conn.exception

    def at_eof(self):
        """True once the stream has ended and nothing is left to read."""
        if self._conn.closing:
            return True
        return self._eof and not self._frames and not self._holds()

    def _connection_closed(self):
        self._eof = True
        self._frames = []
        self._watching = False
        fut = self._waiter
        if fut is not None:
            self._waiter = None
            _aio_wake(fut)

    def _stop(self):
        if self._watching:
            self._watching = False
            self._conn.loop.remove_reader(self._conn.fd)
        self._connection_closed()

    def _ended(self):
        cdef AioConnection conn = self._conn
        if conn.exception is not None:
            raise conn.exception
        return conn.closing

    cdef inline bint _holds(self) except -1:
        """Whether the socket holds received bytes (sock.buffered)."""
        if self._fast is not None:
            return self._fast._held() != 0
        return bool(self._sock.buffered)

    def _wait_readable(self, name):
        return self._wait(name)

    cdef object _wait_on(self, str name):
        """Watch for readability and return the future the read waits on: its
        handler's ``park`` when the handler's task may wait there, else a new one."""
        fut = self._waiter
        if fut is not None and not fut.cancelled():
            raise RuntimeError(
                f"{name}() called while another coroutine is already waiting for incoming data")
        cdef AioConnection conn = self._conn
        cdef AioHandler handler = self._handler
        loop = conn.loop
        if handler is not None and handler.can_park():
            fut = handler.park
            if not handler.running:
                fut._asyncio_future_blocking = True  # a future awaited: the task checks
        else:
            fut = loop.create_future()
        self._waiter = fut
        self._waits += 1
        self._drained = False
        if not self._watching:
            self._watching = True
            loop.add_reader(conn.fd, self._on_readable)
        return fut

    cdef object _wait(self, str name):
        """What a read's coroutine awaits until the socket is readable."""
        fut = self._wait_on(name)
        handler = self._handler
        if handler is not None and fut is (<AioHandler>handler).park:
            self._parked.arm(fut)
            return self._parked
        return fut

    def _on_readable(self):
        fut = self._waiter
        if fut is None or _aio_done(fut):
            self._watching = False
            self._conn.loop.remove_reader(self._conn.fd)
            return
        try:
            if self._fast is not None:
                self._fast._recv_ahead(aio_read_ahead_bytes)
            else:
                self._sock.recv_ahead(aio_read_ahead_bytes)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        self._waiter = None
        handler = self._handler
        if handler is not None and fut is handler.park and not handler.running:
            handler.resume()
        else:
            _aio_resume_now(fut)

    def _lost(self, exc):
        """The kernel reported the connection broken: end it as asyncio does."""
        self._conn.close(exc)

    def _unsplit(self):
        """Give the frames read_msg() split ahead back to the socket."""
        cdef list frames = self._frames
        if not frames:
            return
        self._frames = []
        if self._conn.closing:
            return
        pack = aio_prefixes[self._frames_prefix].pack
        self._sock.unrecv(b"".join([pack(len(frame)) + frame for frame in reversed(frames)]))

    # -- asyncio's methods ----------------------------------------------------

    async def read(self, n=-1):
        """Read up to ``n`` bytes (all until the end when negative); b"" at the end."""
        if n == 0:
            return b""
        if self._frames:
            self._unsplit()
        if n < 0:
            blocks = []
            while True:
                block = await self.read(self._limit)
                if not block:
                    return b"".join(blocks)
                blocks.append(block)
        sock = self._sock
        cdef AioConnection conn = self._conn
        while not conn.closing:
            if self._drained and not self._holds():
                await self._wait("read")
                continue
            try:
                data = sock.recv(n)
            except BlockingIOError:
                await self._wait("read")
                continue
            except ConnectionError as exc:
                self._lost(exc)
                raise
            if not data:
                self._eof = True
            self._drained = 0 < len(data) < n and not self._holds()
            return data
        self._ended()
        return b""

    def readexactly(self, n):
        """Read exactly ``n`` bytes; asyncio.IncompleteReadError when the stream
        ends first."""
        cdef AioRead read = _aio_read(self, AIO_READ_EXACTLY)
        read.size = n
        return read

    async def readuntil(self, separator=b"\n"):
        """Read up to and including ``separator``, as asyncio's readuntil()."""
        if isinstance(separator, tuple):
            seps = sorted(separator, key=len)
            if not seps:
                raise ValueError("Separator should contain at least one element")
            if not seps[0]:
                raise ValueError("Separator should be at least one-byte string")
            if len(seps) > 1:
                return await self._readuntil_any(seps)
            separator = seps[0]
        if not separator:
            raise ValueError("Separator should be at least one-byte string")
        if self._frames:
            self._unsplit()
        sock = self._sock
        limit = self._limit + len(separator)
        cdef AioConnection conn = self._conn
        while not conn.closing:
            if self._drained and not self._holds():
                await self._wait("readuntil")
                continue
            try:
                data = sock.recv_until(separator, limit)
                self._drained = not self._holds()
                return data
            except BlockingIOError:
                pass
            except IncompleteReadError as exc:
                self._eof = True
                raise _aio_incomplete(exc) from None
            except LimitOverrunError as exc:
                raise _asyncio().LimitOverrunError(
                    "Separator is not found, and chunk exceed the limit",
                    exc.consumed) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait("readuntil")
        self._ended()
        raise _asyncio().IncompleteReadError(b"", None)

    # -- fast methods ---------------------------------------------------------

    def read_msg(self, *, prefix_size=4, max_size=aio_max_message):
        """Read one message framed by a big-endian length prefix (write_msg(),
        StreamSocket.send_msg()) and return its payload."""
        cdef AioRead read = _aio_read(self, AIO_READ_MSG)
        read.prefix_size = prefix_size
        read.max_size = max_size
        return read

    def read_msgs(self, max_count=1024, *, prefix_size=4, max_size=aio_max_message,
                  max_bytes=None):
        """Wait for the next message and return it with every complete one
        already received after it (read_msg()'s framing and errors)."""
        cdef AioRead read = _aio_read(self, AIO_READ_MSGS)
        read.size = max_count
        read.prefix_size = prefix_size
        read.max_size = max_size
        read.max_bytes = max_bytes
        return read

    # -- the attempts of an AioRead: the result, or aio_would_block when the
    # socket has nothing yet (the read then waits for readability and tries again)

    cdef object _try_exactly(self, object n):
        try:
            data = (self._fast._recv_exactly(n) if self._fast is not None
                    else self._sock.recv_exactly(n))
        except BlockingIOError:
            return aio_would_block
        except IncompleteReadError as exc:
            self._eof = True
            raise _aio_incomplete(exc) from None
        except ConnectionError as exc:
            self._lost(exc)
            raise
        self._drained = not self._holds()
        return data

    cdef object _try_msgs(self, object max_count, object prefix_size, object max_size,
                          object max_bytes):
        try:
            if self._fast is not None:
                messages = self._fast._recv_msgs(max_count, prefix_size, max_size, max_bytes)
            else:
                messages = self._sock.recv_msgs(max_count, prefix_size=prefix_size,
                                                max_size=max_size, max_bytes=max_bytes)
        except BlockingIOError:
            return aio_would_block
        except IncompleteReadError as exc:
            self._eof = True
            raise _aio_incomplete(exc) from None
        except ConnectionError as exc:
            self._lost(exc)
            raise
        self._drained = not self._holds()
        return messages

    async def read_until(self, delimiter, limit=65536):
        """Read up to and including ``delimiter`` with StreamSocket.recv_until()'s
        rule: all of it within ``limit`` bytes."""
        if self._frames:
            self._unsplit()
        sock = self._sock
        cdef AioConnection conn = self._conn
        while not conn.closing:
            if self._drained and not self._holds():
                await self._wait("read_until")
                continue
            try:
                data = sock.recv_until(delimiter, limit)
                self._drained = not self._holds()
                return data
            except BlockingIOError:
                pass
            except IncompleteReadError as exc:
                self._eof = True
                raise _aio_incomplete(exc) from None
            except LimitOverrunError as exc:
                raise _asyncio().LimitOverrunError(str(exc), exc.consumed) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait("read_until")
        self._ended()
        raise _asyncio().IncompleteReadError(b"", None)

    async def readexactly_into(self, buffer, nbytes=0):
        """Fill the first ``nbytes`` bytes (0: all) of a writable buffer and
        return that count; asyncio.IncompleteReadError when the stream ends first."""
        if self._frames:
            self._unsplit()
        sock = self._sock
        cdef AioConnection conn = self._conn
        while not conn.closing:
            if self._drained and not self._holds():
                await self._wait("readexactly_into")
                continue
            try:
                filled = sock.recv_exactly_into(buffer, nbytes)
                self._drained = not self._holds()
                return filled
            except BlockingIOError:
                pass
            except IncompleteReadError as exc:
                self._eof = True
                raise _aio_incomplete(exc) from None
            except ConnectionError as exc:
                self._lost(exc)
                raise
            await self._wait("readexactly_into")
        self._ended()
        raise _asyncio().IncompleteReadError(b"", nbytes or len(memoryview(buffer).cast("B")))


cdef Py_ssize_t _aio_send_view(StreamSocket sock, object data) except -1:
    """StreamSocket._send_now of a buffer that is not bytes."""
    cdef Py_buffer view
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        return sock._send_now(<const char *>view.buf, <size_t>view.len)
    finally:
        PyBuffer_Release(&view)


cdef class AioWriterCore:
    """The compiled core of fastsock.aio.StreamWriter."""

    cdef public AioConnection _conn
    cdef public object _sock
    cdef StreamSocket _fast  # the socket, when it is this module's StreamSocket
    cdef public object _reader
    cdef public bytearray _buffer
    cdef public bint _writing
    cdef public bint _closing
    cdef public bint _eof_pending
    cdef public bint _eof_sent
    cdef public object _high
    cdef public object _low
    cdef public list _drain_waiters

    def __init__(self, AioConnection conn not None, reader):
        self._conn = conn
        self._sock = conn.sock
        self._fast = conn.sock if type(conn.sock) is StreamSocket else None
        self._reader = reader
        self._buffer = bytearray()
        self._writing = False
        self._closing = False
        self._eof_pending = False
        self._eof_sent = False
        self._high = aio_high_water
        self._low = aio_high_water // 4
        self._drain_waiters = []
        conn.writer = self

    def _check_writable(self):
        if self._eof_pending or self._eof_sent:
            raise RuntimeError("Cannot call write() after write_eof()")
        return not (self._closing or self._conn.closed)

    def write(self, data):
        """Send ``data`` now as far as the kernel takes it; keep the rest."""
        cdef Py_ssize_t sent
        if self._eof_pending or self._eof_sent or self._closing or self._conn.closed:
            if not self._check_writable():
                return
        if not data:
            return
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        if self._buffer:
            self._buffer += data
            return
        try:
            if self._fast is None:
                sent = self._sock.send(data)
            elif type(data) is bytes:
                sent = self._fast._send_now(PyBytes_AS_STRING(data), len(<bytes>data))
            else:
                sent = _aio_send_view(self._fast, data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._conn.close(exc)
            return
        if sent < len(data):
            self._buffer += data[sent:]
            self._start_writing()

    def write_msg(self, payload, *, prefix_size=4):
        """Write ``payload`` after its length as a big-endian ``prefix_size``-byte
        integer (1, 2, 4 or 8), the framing of read_msg(); OverflowError when
        the length does not fit."""
        cdef Py_ssize_t sent
        header = _aio_prefix(prefix_size)
        data = payload if type(payload) is bytes else memoryview(payload).cast("B")
        size = len(data)
        try:
            packed = header.pack(size)
        except _struct.error:
            raise OverflowError(f"message of {size} bytes does not fit a "
                                f"{prefix_size}-byte length prefix") from None
        if not self._check_writable():
            return
        buffer = self._buffer
        if buffer:
            buffer += packed
            buffer += data
            return
        try:
            sent = self._sock.send_buffers([packed, data])
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._conn.close(exc)
            return
        if sent < len(packed):
            buffer += packed[sent:]
            buffer += data
        else:
            buffer += data[sent - len(packed):]
        if buffer:
            self._start_writing()

    def _send_eof(self):
        self._eof_pending = False
        self._eof_sent = True
        try:
            self._sock.shutdown(_stdlib.SHUT_WR)
        except OSError as exc:
            self._conn.close(exc)

    def _start_writing(self):
        if not self._writing:
            self._writing = True
            self._conn.loop.add_writer(self._conn.fd, self._on_writable)

    def _on_writable(self):
        cdef Py_ssize_t sent
        buffer = self._buffer
        try:
            sent = self._sock.send(memoryview(buffer)[:aio_send_chunk])
        except BlockingIOError:
            return
        except OSError as exc:
            self._conn.close(exc)
            return
        del buffer[:sent]
        if buffer:
            self._maybe_resume()
            return
        self._writing = False
        self._conn.loop.remove_writer(self._conn.fd)
        self._maybe_resume()
        if self._eof_pending:
            self._send_eof()
        if self._closing:
            self._conn.close()

    def _maybe_resume(self):
        if len(self._buffer) <= self._low:
            waiters, self._drain_waiters = self._drain_waiters, []
            for fut in waiters:
                _aio_wake(fut)

    def _connection_closed(self):
        self._buffer.clear()
        self._writing = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for fut in waiters:
            _aio_wake(fut)

    def drain(self):
        """Wait while more than the high-water mark is waiting to be sent.
        Raises the error that ended the connection; ConnectionResetError once
        it is closed."""
        if not (self._closing or self._conn.closed) and len(self._buffer) <= self._high:
            return aio_ready  # nothing to wait for: no coroutine made
        return self._drain_wait()

    async def _drain_wait(self):
        cdef AioConnection conn = self._conn
        if conn.exception is not None:
            raise conn.exception
        if self._closing or conn.closed:
            await _asyncio().sleep(0)
        while len(self._buffer) > self._high and not conn.closed:
            fut = conn.loop.create_future()
            self._drain_waiters.append(fut)
            await fut
        if conn.exception is not None:
            raise conn.exception
        if conn.closed and not self._closing:
            raise ConnectionResetError("Connection lost")


# -- the awaitable of the per-request reads ------------------------------------

cdef object aio_would_block = object()  # an attempt's "nothing yet"

cdef enum:
    AIO_READ_EXACTLY = 1
    AIO_READ_MSG
    AIO_READ_MSGS
    AIO_READY  # drain() with nothing to wait for

cdef enum:
    AIO_NEW
    AIO_WAITING
    AIO_ENDED


@cython.final
@cython.freelist(16)
cdef class AioRead:
    """What readexactly(), read_msg(), read_msgs() (and drain() with nothing to
    wait for) return: a coroutine-like awaitable that makes its attempt when
    awaited and waits for readability only when the socket has nothing.

    Why: a Cython ``async def`` costs a coroutine object, a frame of its own
    and a resumption through it for every read; this object comes from a
    free list and returns its result through the am_send slot (aio_send.h),
    without raising StopIteration.  It is a collections.abc.Coroutine (send,
    throw, close, __await__), so create_task() and wait_for() take it.
    """

    cdef AioReaderCore reader
    cdef int kind
    cdef int state
    cdef object size  # readexactly's n, read_msgs' max_count
    cdef object prefix_size
    cdef object max_size
    cdef object max_bytes
    cdef object waiting  # the future it yielded, while it waits

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return _aio_read_next(self)  # what an await calls on CPython 3.12+ (am_send before)

    def send(self, value):
        return _aio_read_next(self)

    def throw(self, typ, val=None, tb=None):
        # a cancelled or failed wait ends the read where it waits, as the
        # await of its future would
        if self.kind != AIO_READY:
            self.state = AIO_ENDED
            self.waiting = None
        if val is None:
            exc = typ() if isinstance(typ, type) else typ
        elif isinstance(val, BaseException):
            exc = val
        else:
            exc = typ(val)
        if tb is not None:
            exc = exc.with_traceback(tb)
        raise exc

    def close(self):
        if self.kind != AIO_READY:
            self.state = AIO_ENDED
            self.waiting = None

    # what asyncio's reprs and stacks read of a coroutine
    @property
    def __name__(self):
        return aio_read_names[self.kind]

    @property
    def __qualname__(self):
        return "StreamReader." + aio_read_names[self.kind]

    @property
    def cr_await(self):
        return self.waiting

    @property
    def cr_frame(self):
        return None

    @property
    def cr_code(self):
        return None

    @property
    def cr_running(self):
        return False

    def __repr__(self):
        return f"<fastsock.aio {self.__qualname__}() awaitable at {id(self):#x}>"


cdef tuple aio_read_names = (None, "readexactly", "read_msg", "read_msgs", "drain")  # by kind


cdef inline AioRead _aio_read(AioReaderCore reader, int kind):
    cdef AioRead read = AioRead.__new__(AioRead)
    read.reader = reader
    read.kind = kind
    return read


cdef object _aio_read_next(AioRead read):
    """A step as an iterator's: the future yielded, or StopIteration(result)."""
    cdef int yielded = 0
    result = _aio_read_step(read, &yielded)
    if yielded:
        return result
    raise StopIteration(result)


cdef object _aio_read_step(object awaitable, int *yielded):
    """One step of an AioRead: its result (returned), or the future it now
    waits on (yielded, ``yielded[0]`` set)."""
    cdef AioRead read = <AioRead>awaitable
    cdef AioReaderCore reader
    cdef AioConnection conn
    cdef int kind = read.kind
    cdef bint first
    cdef list frames
    if kind == AIO_READY:
        return None
    if read.state == AIO_ENDED:
        raise RuntimeError("cannot reuse already awaited coroutine")
    reader = read.reader
    first = read.state == AIO_NEW
    read.state = AIO_ENDED  # until it waits: an exception ends it
    read.waiting = None
    if first:
        if kind == AIO_READ_EXACTLY:
            if read.size < 0:
                raise ValueError("readexactly size can not be less than zero")
            if read.size == 0:
                return b""
        frames = reader._frames
        if frames:
            if (kind == AIO_READ_MSG and read.prefix_size == reader._frames_prefix
                    and len(frames[-1]) <= read.max_size):
                return frames.pop()
            reader._unsplit()
    conn = reader._conn
    while not conn.closing:
        if not reader._drained or reader._holds():
            if kind == AIO_READ_EXACTLY:
                result = reader._try_exactly(read.size)
            elif kind == AIO_READ_MSGS:
                result = reader._try_msgs(read.size, read.prefix_size, read.max_size,
                                          read.max_bytes)
            else:
                result = reader._try_msgs(aio_read_ahead_frames, read.prefix_size,
                                          read.max_size, aio_read_ahead_bytes)
                if result is not aio_would_block:
                    frames = result
                    if len(frames) > 1:
                        # the frames read ahead wait in reverse, popped from the end
                        reader._frames = frames[:0:-1]
                        reader._frames_prefix = read.prefix_size
                    return frames[0]
            if result is not aio_would_block:
                return result
        fut = reader._wait_on(aio_read_names[kind])
        if reader._handler is None or fut is not reader._handler.park:
            fut._asyncio_future_blocking = True  # a future awaited: the task checks
        read.waiting = fut
        read.state = AIO_WAITING
        yielded[0] = 1
        return fut
    reader._ended()
    raise _asyncio().IncompleteReadError(
        b"", read.size if kind == AIO_READ_EXACTLY else read.prefix_size)


fastsock_aio_set_am_send(<PyTypeObject *>AioRead, _aio_read_step)

cdef AioRead aio_ready = AioRead.__new__(AioRead)
aio_ready.kind = AIO_READY

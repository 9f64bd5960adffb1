"""Thread-safety stress: many threads on shared sockets, receives racing
close(), descriptors reopened under blocked calls, fork with blocked threads,
timeouts changed under calls.  They hold on any build; on a free-threaded
CPython (``make test-ft``) nothing serialises the threads but fastsock itself,
and there they fail on a racy implementation (``make tsan-test`` runs them
under ThreadSanitizer)."""

from __future__ import annotations

import collections
import errno
import functools
import os
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
import warnings
from types import ModuleType
from typing import Any, Callable

import pytest
from conftest import Worker

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def run_all(*targets: Callable[[], Any], timeout: float = 30.0) -> list[Any]:
    workers = [Worker(target) for target in targets]
    for worker in workers:
        worker.start()
    return [worker.finish(timeout) for worker in workers]


@pytest.mark.skipif(not FREE_THREADED, reason="needs a free-threaded CPython")
@pytest.mark.parametrize("pure", ["0", "1"])
def test_importing_fastsock_and_the_demos_leaves_the_gil_off(pure: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    env["FASTSOCK_NO_EXTENSIONS"] = pure
    code = ("import sys, fastsock, fastsock.aio, fastsock.webserver, fastsock.webclient, "
            "fastsock.ping\n"
            "assert not sys._is_gil_enabled(), 'the GIL was enabled'\n"
            "print(fastsock.IMPLEMENTATION)")
    result = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ("python" if pure == "1" else "cython")


# -- many threads, one socket: nothing lost, nothing twice ----------------------

SENDERS, PER_SENDER, RECEIVERS = 4, 1500, 3


@pytest.mark.parametrize("receive", ["recv", "recvfrom", "recv_many", "recv_batch"])
def test_threads_sharing_a_datagram_pair_lose_and_duplicate_nothing(
        impl: ModuleType, receive: str) -> None:
    a, b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # reliable: sends wait
    total = SENDERS * PER_SENDER
    counted = collections.Counter[bytes]()
    lock = threading.Lock()
    with a, b:
        b.settimeout(0.2)

        def sender(t: int) -> None:
            items = [b"%d:%d" % (t, i) for i in range(PER_SENDER)]
            for start in range(0, PER_SENDER, 50):
                chunk = items[start:start + 50]
                if start % 100:
                    for item in chunk:
                        a.send(item)
                else:
                    sent = 0
                    while sent < len(chunk):
                        sent += a.send_many(chunk[sent:])

        def receiver() -> None:
            batch = impl.DatagramBatch(32, 64)
            while True:
                with lock:
                    if sum(counted.values()) >= total:
                        break
                try:
                    if receive == "recv":
                        got = [b.recv(64)]
                    elif receive == "recvfrom":
                        got = [b.recvfrom(64)[0]]
                    elif receive == "recv_many":
                        got = [data for data, _ in b.recv_many(32, 64)]
                    else:
                        got = [bytes(batch.data(i)) for i in range(b.recv_batch(batch))]
                except TimeoutError:
                    got = []
                with lock:
                    counted.update(got)

        run_all(*[lambda t=t: sender(t) for t in range(SENDERS)],
                *[receiver for _ in range(RECEIVERS)])
    expected = collections.Counter(b"%d:%d" % (t, i) for t in range(SENDERS)
                                   for i in range(PER_SENDER))
    assert counted == expected


@pytest.mark.parametrize("call", ["recv_msgs", "recv_msg", "recv_exactly", "makefile"])
def test_threads_framing_one_stream_take_every_message_once_in_order(
        impl: ModuleType, call: str) -> None:
    a, b = impl.socketpair()
    count = 20000
    taken: list[list[int]] = [[] for _ in range(RECEIVERS)]
    refused = [0] * RECEIVERS
    done = threading.Event()
    with a, b:
        b.settimeout(0.2)
        reader = b.makefile("rb") if call == "makefile" else None

        def sender() -> None:
            for start in range(0, count, 500):  # 500 frames per sendall
                a.sendall(b"".join(struct.pack("!IQ", 8, i) for i in range(start, start + 500)))

        def receiver(k: int) -> None:
            while not done.is_set():
                try:
                    if call == "recv_msgs":
                        got = b.recv_msgs(prefix_size=4)
                    elif call == "recv_msg":
                        got = [b.recv_msg(prefix_size=4)]
                    elif call == "recv_exactly":
                        got = [b.recv_exactly(12)[4:]]
                    else:
                        assert reader is not None
                        got = [reader.read(12)[4:]]
                except RuntimeError:  # another thread is receiving: its turn
                    refused[k] += 1
                    time.sleep(0)
                    continue
                except TimeoutError:
                    continue
                taken[k].extend(struct.unpack("!Q", m)[0] for m in got)
                if sum(map(len, taken)) >= count:
                    done.set()

        try:
            run_all(sender, *[lambda k=k: receiver(k) for k in range(RECEIVERS)])
        finally:
            if reader is not None:
                reader.close()
    assert sorted(n for part in taken for n in part) == list(range(count))
    for part in taken:  # each call took a run of the stream: order kept
        assert part == sorted(part)


# -- close() racing blocked calls while descriptor numbers are reused ----------

BLOCKING_CALLS: dict[str, Callable[[Any], Any]] = {
    "recv": lambda s: s.recv(16),
    "recv_into": lambda s: s.recv_into(bytearray(16)),
    "recv_msgs": lambda s: s.recv_msgs(),
    "recv_exactly": lambda s: s.recv_exactly(16),
    "recv_until": lambda s: s.recv_until(b"\n"),
    "recvmsg": lambda s: s.recvmsg(16),
    "recv_ahead": lambda s: s.recv_ahead(),
}


def test_close_races_every_blocked_call_while_descriptors_are_reopened(
        impl: ModuleType) -> None:
    for _ in range(15):
        pairs = [impl.socketpair() for _ in BLOCKING_CALLS]
        listener = impl.create_server(("127.0.0.1", 0))
        dgram_a, dgram_b = impl.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        targets: list[Callable[[], Any]] = [
            functools.partial(call, pair[0]) for pair, call in zip(pairs, BLOCKING_CALLS.values())]
        targets += [listener.accept, functools.partial(dgram_a.recv_many, 8, 64),
                    functools.partial(dgram_a.recvfrom, 64)]
        workers = [Worker(target) for target in targets]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.entered.wait(5)
        time.sleep(0.02)  # into their syscalls
        victims = [pair[0] for pair in pairs] + [listener, dgram_a]
        for victim in victims:
            victim.close()
        # the numbers come free once the woken calls leave: new sockets take
        # them, and no old call may read what arrives on these
        fresh = [impl.socketpair() for _ in range(len(victims))]
        for x, y in fresh:
            x.sendall(b"fresh\n")
        for worker in workers:
            with pytest.raises(OSError) as info:
                worker.finish(10)
            assert info.value.errno == errno.EBADF
        for x, y in fresh:
            y.settimeout(5)
            assert y.recv_exactly(6) == b"fresh\n"
            x.close()
            y.close()
        for pair in pairs:
            pair[1].close()
        dgram_b.close()


def test_close_races_calls_that_do_not_block(impl: ModuleType) -> None:
    # sends and option calls in flight on other threads when close() comes:
    # each ends with its result or EBADF, never acting on another descriptor
    for _ in range(20):
        a, b = impl.socketpair()
        b.setblocking(False)
        stop = threading.Event()

        def hammer(call: Callable[[], Any]) -> str:
            while not stop.is_set():
                try:
                    call()
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        return "closed"
                    if exc.errno not in (errno.EAGAIN, errno.EPIPE, errno.ECONNRESET):
                        raise
            return "stopped"

        calls: list[Callable[[], Any]] = [
            functools.partial(a.send, b"x"),
            functools.partial(a.getsockopt, socket.SOL_SOCKET, socket.SO_SNDBUF),
            functools.partial(a.settimeout, 0.5), functools.partial(b.recv, 4096),
            a.getsockname]
        workers = [Worker(functools.partial(hammer, call)) for call in calls]
        for worker in workers:
            worker.start()
        time.sleep(0.005)
        a.close()
        b.close()
        time.sleep(0.005)
        stop.set()
        for worker in workers:
            assert worker.finish(10) in ("closed", "stopped")


def test_settimeout_under_calls_in_other_threads_never_hangs(impl: ModuleType) -> None:
    a, b = impl.socketpair()
    stop = threading.Event()
    received = [0]

    def flip() -> None:
        values = [None, 0.5, 0.0, 2.0]
        i = 0
        while not stop.is_set():
            b.settimeout(values[i % len(values)])
            i += 1

    def read() -> None:
        while not stop.is_set():
            try:
                received[0] += len(b.recv(65536))
            except (BlockingIOError, TimeoutError):
                pass

    def write() -> None:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            a.sendall(b"y" * 1024)
        stop.set()
        a.shutdown(socket.SHUT_WR)  # wakes a read blocked with no timeout

    with a, b:
        run_all(flip, read, write)
    assert received[0] > 0


# -- fork while other threads are blocked -----------------------------------------

def test_fork_while_threads_are_blocked(impl: ModuleType) -> None:
    pairs = [impl.socketpair() for _ in range(3)]
    workers = [Worker(functools.partial(pair[0].recv, 16)) for pair in pairs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.entered.wait(5)
    time.sleep(0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        pid = os.fork()
    if pid == 0:  # the child: the parent's blocked calls do not exist here
        code = 1
        try:
            for pair in pairs:
                pair[0].close()  # must not wait for the parent's threads
                pair[1].close()
            x, y = impl.socketpair()
            x.sendall(b"child")
            code = 0 if y.recv(5) == b"child" else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 20
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        assert time.monotonic() < deadline, "the child hung"
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0
    for pair in pairs:  # the parent's calls are woken by its own close()
        pair[0].close()
    for worker in workers:
        with pytest.raises(OSError) as info:
            worker.finish(10)
        assert info.value.errno == errno.EBADF
    for pair in pairs:
        pair[1].close()


def test_buffered_is_zero_while_another_threads_receive_holds_the_bytes(
        impl: ModuleType) -> None:
    # recv_until keeps what came in the buffer while it waits for the rest:
    # those bytes are that call's, not the next call's, so buffered says 0
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(10)
        a.sendall(b"abc")
        worker = Worker(lambda: b.recv_until(b"\n"))
        worker.start()
        worker.entered.wait(5)
        time.sleep(0.1)  # into its wait, "abc" taken into the buffer
        assert b.buffered == 0
        a.sendall(b"\nde")
        assert worker.finish(10) == b"abc\n"
        assert b.buffered == 2
        assert b.recv(16) == b"de"


def test_bytes_given_back_while_threads_receive_are_each_read_once(impl: ModuleType) -> None:
    # threads take lines, some giving lines back once (unrecv), while the
    # others take lines too: every line is kept exactly once in all, never
    # torn or doubled; a give-back that meets another's receive is refused
    lines = [b"%05d\n" % i for i in range(3000)]
    a, b = impl.socketpair()
    with a, b:
        b.settimeout(2)
        kept: list[list[bytes]] = [[] for _ in range(4)]
        given_back: set[bytes] = set()
        lock = threading.Lock()

        def reader(index: int, gives_back: bool) -> None:
            while True:
                try:
                    line = b.recv_until(b"\n")
                except RuntimeError:
                    continue  # another thread's call holds the buffer
                except (TimeoutError, EOFError):
                    return
                if gives_back and int(line[:5]) % 3 == 0:
                    with lock:
                        first_time = line not in given_back
                        given_back.add(line)
                    if first_time:
                        try:
                            b.unrecv(line)
                            continue  # whoever takes it next keeps it
                        except RuntimeError:
                            pass  # refused: nothing changed, this thread keeps it
                kept[index].append(line)

        def send() -> None:
            for start in range(0, len(lines), 100):
                a.sendall(b"".join(lines[start:start + 100]))
            a.shutdown(socket.SHUT_WR)

        run_all(send, *(functools.partial(reader, i, i % 2 == 0) for i in range(4)))
        assert sorted(line for mine in kept for line in mine) == lines
        assert given_back  # the path under test

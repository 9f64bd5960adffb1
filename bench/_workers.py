"""Each fastsock variant runs its benchmarks in a process of its own.

The pytest process that runs the benchmarks (the controller) runs the C
reference itself.  For each fastsock implementation it starts a worker: the
same pytest over bench/, in a process whose environment picks that
implementation through the public switch (``fastsock._names.IMPLEMENTATIONS``;
the workloads then use ``import fastsock``); and one more for the stdlib
variants, so that they too run in a process of the same make as the ones
they are compared with.  A worker collects the benchmarks and runs the ones
the controller hands it, one at a time, when the controller hands them over,
so a pass keeps the controller's order: the variants of a workload back to
back, in an order rotated from pass to pass, and one benchmark running at a
time (the processes not running one wait on a socket).

A worker sends back the reports of each benchmark (serialized as pytest does
for pytest-xdist), which the controller logs as its own, and writes its
pytest-benchmark JSON next to the controller's, which merges it into its
own at the end of the session.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from _pytest.runner import runtestprotocol

from fastsock._names import IMPLEMENTATIONS

from ._harness import BENCH_DIR, PROGRESS_FD_ENV, implementation_env

WORKER_OPTION = "--bench-worker"
STDLIB_WORKER = "stdlib"  # the worker of the stdlib (and asyncio) variants
WORKERS = (STDLIB_WORKER, *IMPLEMENTATIONS)
# the controller's options a worker needs to run a benchmark the same way
_FORWARDED = (("bench_size", "--bench-size"), ("bench_bulk_mib", "--bench-bulk-mib"),
              ("bench_peer", "--bench-peer"), ("bench_pin", "--bench-pin"))
_FORWARDED_FLAGS = (("benchmark_disable", "--benchmark-disable"),
                    ("benchmark_disable_gc", "--benchmark-disable-gc"))


class Channel:
    """JSON lines over a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.file = sock.makefile("rwb")

    def send(self, message: dict[str, Any]) -> bool:
        """False when the other end has gone."""
        try:
            self.file.write(json.dumps(message).encode() + b"\n")
            self.file.flush()
        except OSError:
            return False
        return True

    def receive(self) -> Optional[dict[str, Any]]:
        """The next message, or None once the other end has gone."""
        try:
            line = self.file.readline()
            return json.loads(line) if line.endswith(b"\n") else None
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        try:
            self.file.close()  # flushes what a failed send left behind
        except OSError:
            pass
        self.sock.close()


# -- the worker ----------------------------------------------------------------

class WorkerPlugin:
    """Runs, in the worker, the benchmarks the controller names."""

    def __init__(self, config: pytest.Config, implementation: str, fd: int) -> None:
        self.config = config
        self.implementation = implementation
        self.channel = Channel(socket.socket(fileno=fd))
        # load fastsock now, outside any test's warning filters: when the
        # extension cannot be imported the dispatcher warns and falls back,
        # and the benchmarks skip (Variant says which implementation is live)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import fastsock
        self.live = fastsock.IMPLEMENTATION

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        items = {item.nodeid: item for item in session.items}
        hook = self.config.hook
        # the controller closes the channel when it is done (or needs no worker)
        answer: dict[str, Any] = {"ready": True, "implementation": self.live}
        while self.channel.send(answer) and (message := self.channel.receive()) is not None:
            item = items.get(message["run"])
            if item is None:
                answer = {"missing": message["run"]}
                continue
            reports = runtestprotocol(item, nextitem=items.get(message.get("next") or ""),
                                      log=False)
            answer = {"reports": [
                hook.pytest_report_to_serializable(config=self.config, report=report)
                for report in reports]}
        self.channel.close()
        return True


# -- the controller ------------------------------------------------------------

class WorkerProcess:
    """One worker as the controller sees it."""

    def __init__(self, config: pytest.Config, implementation: str,
                 json_path: Optional[Path]) -> None:
        self.implementation = implementation
        self.json_path = json_path
        self.problem: Optional[str] = None
        ours, theirs = socket.socketpair()
        # (the hypothesis plugin costs a second at the end of a session; no benchmark uses it)
        argv = [sys.executable, "-m", "pytest", str(BENCH_DIR), "-p", "no:cacheprovider",
                "-p", "no:hypothesispytest", "-q",
                f"--rootdir={config.rootpath}",
                f"{WORKER_OPTION}={implementation},{theirs.fileno()}"]
        if config.inipath is not None:
            argv.append(f"--config-file={config.inipath}")
        for dest, flag in _FORWARDED:
            value = config.getoption(dest)
            if value is not None:
                argv.append(f"{flag}={value}")
        argv += [flag for dest, flag in _FORWARDED_FLAGS if config.getoption(dest, False)]
        if json_path is not None:
            argv.append(f"--benchmark-json={json_path}")
        pass_fds = [theirs.fileno()]
        progress = os.environ.get(PROGRESS_FD_ENV)
        if progress and progress.isdigit() and _is_open(int(progress)):
            pass_fds.append(int(progress))
        env = (implementation_env(implementation) if implementation in IMPLEMENTATIONS
               else dict(os.environ))
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (kept until stop())
            prefix=f"fastsock-bench-{implementation}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(argv, cwd=config.rootpath, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     pass_fds=pass_fds)
        theirs.close()
        self.channel = Channel(ours)

    def wait_ready(self) -> None:
        message = self.channel.receive()
        if message is None or not message.get("ready"):
            self.problem = self._gone("did not start")

    def run(self, nodeid: str, nextid: Optional[str]) -> list[dict[str, Any]] | str:
        """The serialized reports of ``nodeid``, or why there are none."""
        if self.problem:
            return self.problem
        self.channel.send({"run": nodeid, "next": nextid})
        message = self.channel.receive()
        if message is None:
            self.problem = self._gone(f"ended while running {nodeid}")
            return self.problem
        if "missing" in message:
            return f"the {self.implementation} benchmark worker did not collect {nodeid}"
        return list(message["reports"])

    def _gone(self, what: str) -> str:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        self.log.flush()
        tail = Path(self.log.name).read_text(errors="replace").splitlines()[-30:]
        return (f"the {self.implementation} benchmark worker {what} "
                f"(exit {self.proc.returncode}); its output ends:\n" + "\n".join(tail))

    def stop(self) -> None:
        """Close the channel (the worker's session ends) and wait for it."""
        self.channel.close()  # again is harmless
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        if self.proc.returncode in (0, 5) and not self.problem:
            os.unlink(self.log.name)
        else:
            print(f"\nbenchmark worker {self.implementation}: exit {self.proc.returncode}, "
                  f"output in {self.log.name}", file=sys.stderr)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class ControllerPlugin:
    """Hands the benchmarks of the fastsock variants to their workers, in
    the order of the session, and merges the workers' JSON into its own."""

    def __init__(self, config: pytest.Config,
                 worker_of: Callable[[pytest.Item], Optional[str]]) -> None:
        self.config = config
        self.worker_of = worker_of
        self.owner: dict[str, str] = {}         # nodeid -> implementation
        # nodeid -> the next nodeid the same process runs (its fixtures are
        # torn down down to what that one shares)
        self.next_of: dict[str, Optional[str]] = {}
        self.items: dict[str, pytest.Item] = {}
        self.order: dict[str, int] = {}         # nodeid -> position in the session
        self.workers: dict[str, WorkerProcess] = {}
        json_option = config.getoption("benchmark_json", None)
        if json_option is not None and not isinstance(json_option, (str, os.PathLike)):
            json_option = json_option.name  # an open file, in older pytest-benchmark
        self.json_path = Path(json_option).resolve() if json_option is not None else None

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Start a worker per implementation, collecting while this process does."""
        if self.config.option.collectonly:
            return
        for implementation in WORKERS:
            self.workers[implementation] = WorkerProcess(
                self.config, implementation, self._worker_json(implementation))

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if self.config.option.collectonly:
            return
        last: dict[Optional[str], str] = {}
        for index, item in enumerate(session.items):
            self.order[item.nodeid] = index
            self.items[item.nodeid] = item
            implementation = self.worker_of(item)
            if implementation is not None:
                self.owner[item.nodeid] = implementation
            self.next_of[item.nodeid] = None
            if implementation in last:
                self.next_of[last[implementation]] = item.nodeid
            last[implementation] = item.nodeid
        # the workers with nothing to run go; the others are all ready
        # before the first benchmark
        for implementation in list(self.workers):
            if implementation not in last:
                self.workers.pop(implementation).stop()
        for worker in self.workers.values():
            worker.wait_ready()

    def _worker_json(self, implementation: str) -> Optional[Path]:
        if self.json_path is None:
            return None
        return self.json_path.with_name(f"{self.json_path.stem}.{implementation}.json")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item,
                                nextitem: Optional[pytest.Item]) -> Optional[bool]:
        if item.nodeid not in self.next_of:
            return None
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        implementation = self.owner.get(item.nodeid)
        nextid = self.next_of[item.nodeid]
        if implementation is None:
            # as pytest does, but tearing down to the next benchmark of this process
            runtestprotocol(item, nextitem=self.items[nextid] if nextid else None)
            ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
            return True
        outcome = self.workers[implementation].run(item.nodeid, nextid)
        if isinstance(outcome, str):
            ihook.pytest_runtest_logreport(report=_failure(item, outcome))
        else:
            for data in outcome:
                report = self.config.hook.pytest_report_from_serializable(
                    config=self.config, data=data)
                if isinstance(report.longrepr, list):  # a skip's (path, line, reason)
                    report.longrepr = tuple(report.longrepr)
                ihook.pytest_runtest_logreport(report=report)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Any:
        try:
            yield
        finally:
            self._stop_workers()

    def _stop_workers(self) -> None:
        workers, self.workers = self.workers, {}
        for worker in workers.values():
            worker.channel.close()  # all end their sessions at once
        for worker in workers.values():
            worker.stop()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Runs after pytest-benchmark has written the controller's JSON."""
        self._stop_workers()
        if self.json_path is not None:
            self._merge_json()

    def _merge_json(self) -> None:
        assert self.json_path is not None
        parts = [self.json_path] + [self._worker_json(name) or self.json_path
                                    for name in WORKERS]
        merged: Optional[dict[str, Any]] = None
        benchmarks: list[dict[str, Any]] = []
        for path in parts:
            if not path.exists():
                continue
            data = json.loads(path.read_text())
            if merged is None:
                merged = data
            benchmarks += data.get("benchmarks", [])
            if path != self.json_path:
                path.unlink()
        if merged is None:
            return
        # in the order they ran
        benchmarks.sort(key=lambda bench: self.order.get(bench.get("fullname", ""), len(self.order)))
        merged["benchmarks"] = benchmarks
        self.json_path.write_text(json.dumps(merged, indent=4))


def _failure(item: pytest.Item, message: str) -> pytest.TestReport:
    return pytest.TestReport(item.nodeid, item.location, {}, "failed", message, "call")


def configure(config: pytest.Config,
              worker_of: Callable[[pytest.Item], Optional[str]]) -> bool:
    """Register the worker or the controller side; True in a worker."""
    spec = config.getoption("bench_worker")
    if spec:
        implementation, _, fd = spec.partition(",")
        if implementation not in WORKERS:
            raise pytest.UsageError(f"{WORKER_OPTION}: no worker {implementation!r}")
        config.pluginmanager.register(WorkerPlugin(config, implementation, int(fd)),
                                      "fastsock-bench-worker")
        return True
    config.pluginmanager.register(ControllerPlugin(config, worker_of),
                                  "fastsock-bench-controller")
    return False

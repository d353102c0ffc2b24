"""``lakenode serve --workers N`` (N > 1): a supervisor process and N worker processes.

The supervisor owns what must exist once per node, before and after any worker:

1. it takes the data dir's lock (storage/data_dir_lock.py), creates the shared state
   (storage/workers.py) and binds the S3 address (and ``--metrics-listen``): a busy address
   or a locked data dir is one clear error before any worker starts;
2. it starts the workers, all at once so that their imports overlap: the same ``lakenode
   serve`` command line and environment, plus ``LAKENODE_WORKER`` (the worker's index) and
   the inherited descriptors (listening sockets, the lock). Every worker accepts connections
   on the same listening socket, so the kernel spreads them and a connection waiting in the
   backlog survives the death of a worker. At the node's start the first worker (the
   primary) recovers the data dir (migrations, torn segment tails, an interrupted GC) while
   the others wait for it before they open it (storage/data_dir.py). Once every worker's
   internal socket is up the supervisor marks the node started: ``/_lakenode/ready`` answers
   503 until then, so clients that connect as soon as the node is ready spread over every
   worker instead of all keeping their connections on the first one;
3. a worker that dies is logged and started again (after a pause that grows when it keeps
   dying at once), and the shared state forgets its writes in flight and GC floors;
4. SIGTERM or SIGINT stops the workers (each finishes the requests it has) and then itself.

All of it imports nothing but the standard library and the two small storage modules above:
``lakenode serve`` reaches :func:`start_supervisor` without importing the server, and then
replaces itself (exec) with ``python -m node.supervisor``, so that the node's start pays the
heavy imports only in the workers (in parallel), and the supervisor of an idle node holds
about 20 MiB, not a worker's 60.

Workers die with the supervisor (PR_SET_PDEATHSIG), and they hold the inherited lock too,
so the data dir stays locked until the last process of the node is gone.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from node.listen import bind_all
from node.logfile import LOG_FORMAT, add_log_file, rotate_if_due
from storage.data_dir_lock import DataDirLocked, lock_data_dir
from storage.workers import create_shared_file, every_worker_started, run_dir, worker_died

if TYPE_CHECKING:
    from node.config import ServeConfig

log = logging.getLogger("lakenode.supervisor")

PRIMARY = 0
WORKER_ENV = "LAKENODE_WORKER"  # the index of a worker process (set by the supervisor only)
SOCKETS_ENV = "LAKENODE_WORKER_SOCKETS"  # inherited descriptors: "S3[,METRICS]"
SUPERVISOR_ENV = "LAKENODE_SUPERVISOR_PID"
PLAN_ENV = "LAKENODE_SUPERVISOR_PLAN"  # what the exec'd supervisor is to do (SupervisorPlan)
RECOVER_ENV = "LAKENODE_WORKER_RECOVER"  # "1": recover the data dir before opening it
POLL_S = 0.1
STOP_TIMEOUT_S = 30.0
# A worker that dies within this long of its start waits before the next start, doubling
# up to the maximum: a worker that cannot start must not spin.
QUICK_DEATH_S = 10.0
RESTART_PAUSE_MAX_S = 10.0
PR_SET_PDEATHSIG = 1


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    pause_s: float = 0.0
    restart_at: float | None = None  # set while it waits to be started again
    exits: list[int] = field(default_factory=list)


def start_supervisor(config: ServeConfig) -> int:
    """``--workers N`` > 1: lock the data dir, create the shared state and bind the sockets,
    then become the supervisor (returns only on failure)."""
    try:
        lock = lock_data_dir(config.data_dir)
    except DataDirLocked as exc:
        log.error("%s", exc)
        return 1
    create_shared_file(config.data_dir)
    addresses = [(config.host, config.port, "--listen")]
    if config.metrics_listen is not None:
        addresses.append((*config.metrics_listen, "--metrics-listen"))
    listening = bind_all(addresses)
    if listening is None:
        return 1
    SupervisorPlan(
        data_dir=str(config.data_dir),
        workers=config.workers,
        where=f"{config.scheme}://{config.host}:{config.port}",
        socket_fds=[sock.fileno() for sock in listening],
        lock_fd=lock,
        command=sys.orig_argv[1:],
        log_file=str(config.log_path) if config.log_path is not None else None,
    ).exec_supervisor()
    return 1  # not reached: exec replaced this process


def worker_socket(data_dir: Path, index: int) -> Path:
    """Worker ``index``'s internal socket (node/internal.py)."""
    return run_dir(data_dir) / f"worker-{index}.sock"


@dataclass(frozen=True)
class SupervisorPlan:
    """What the preparing process hands to the exec'd supervisor (as JSON in PLAN_ENV)."""

    data_dir: str
    workers: int
    where: str  # the S3 URL, for the log
    socket_fds: list[int]
    lock_fd: int
    command: list[str]  # the worker command line: how ``lakenode serve`` was started
    log_file: str | None

    def exec_supervisor(self) -> None:
        """Replace this process with the supervisor (the descriptors stay open)."""
        for fd in (*self.socket_fds, self.lock_fd):
            os.set_inheritable(fd, True)
        environment = {**os.environ, PLAN_ENV: json.dumps(self.__dict__)}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, self.argv(), environment)

    def argv(self) -> list[str]:
        """The supervisor's command line. The plan travels in PLAN_ENV; the data dir and the
        URL are there for ``ps`` and ``pkill -f "data-dir DIR"``, which must find the whole
        node, supervisor included (else it restarts the workers it loses)."""
        return [sys.executable, "-m", "node.supervisor", "--data-dir", self.data_dir,
                "--serving", self.where]  # fmt: skip


class Supervisor:
    def __init__(self, plan: SupervisorPlan) -> None:
        self.plan = plan
        self.data_dir = Path(plan.data_dir)
        self._socket_fds = plan.socket_fds
        self._lock_fd = plan.lock_fd
        self._workers = [_Worker(index) for index in range(plan.workers)]
        self._stopping = False
        self._signal: int | None = None  # what stopped the node
        self._recovered = False  # the primary recovered the data dir (at its first start)
        self._all_started = False  # every worker has served once: the node may be ready
        self.log_file: RotatingFileHandler | None = None  # rotated here for every worker

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        log.info(
            "lakenode serving %s data=%s with %d workers (supervisor pid %d)",
            self.plan.where,
            self.plan.data_dir,
            self.plan.workers,
            os.getpid(),
        )
        primary = self._workers[PRIMARY]
        # All at once, so that their imports overlap: the others open the data dir only once
        # the primary has recovered it (storage/data_dir.py).
        for worker in self._workers:
            self._start(worker)
        if not self._wait_for_primary(primary):
            self._stop_all()
            return 1
        while not self._stopping:
            self._reap_and_restart()
            self._announce_when_all_started()
            if self.log_file is not None:
                rotate_if_due(self.log_file)
            time.sleep(POLL_S)
        self._stop_all()
        log.info("lakenode stopped")
        if self._signal is not None:  # end as a single-process node does: by that signal
            signal.signal(self._signal, signal.SIG_DFL)
            os.kill(os.getpid(), self._signal)
        return 0

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("stopping on %s", signal.Signals(signum).name)
        self._stopping = True
        self._signal = signum

    def _start(self, worker: _Worker) -> None:
        # A socket left by a crash would pass for the worker being up (_wait_for_primary): the
        # other workers would start beside the primary's recovery.
        worker_socket(self.data_dir, worker.index).unlink(missing_ok=True)
        environment = {
            **{name: value for name, value in os.environ.items() if name != PLAN_ENV},
            WORKER_ENV: str(worker.index),
            SOCKETS_ENV: ",".join(str(fd) for fd in self._socket_fds),
            SUPERVISOR_ENV: str(os.getpid()),
        }
        if worker.index == PRIMARY and not self._recovered:
            # Only while no other worker has the data dir open: the node's first start.
            environment[RECOVER_ENV] = "1"
        # The command line the node was started with (a console script, ``-m node``, or a
        # wrapper module that registers more), so each worker is configured the same way.
        worker.process = subprocess.Popen(
            [sys.executable, *self.plan.command],
            env=environment,
            pass_fds=(*self._socket_fds, self._lock_fd),
        )
        worker.started = time.monotonic()
        worker.restart_at = None
        log.info("worker %d started (pid %d)", worker.index, worker.process.pid)

    def _wait_for_primary(self, primary: _Worker) -> bool:
        """The primary's internal socket appears once it has recovered the data dir and its
        store, background tasks and admin channel run; False if it died first (the node
        cannot start: its error is on stderr) or a signal came. No deadline: recovering a
        large data dir (a migration) may take long, and a node killed for it would never
        start."""
        path = worker_socket(self.data_dir, PRIMARY)
        assert primary.process is not None
        while not self._stopping:
            if primary.process.poll() is not None:
                log.error("worker 0 exited with %s before it was ready", primary.process.returncode)
                return False
            if path.exists():
                self._recovered = True
                return True
            time.sleep(0.02)
        return False

    def _announce_when_all_started(self) -> None:
        """Once every worker's internal socket is up, let the node answer ready."""
        if self._all_started:
            return
        if all(worker_socket(self.data_dir, w.index).exists() for w in self._workers):
            self._all_started = True
            every_worker_started(self.data_dir)
            log.info("all %d workers serving", len(self._workers))

    def _reap_and_restart(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self._start(worker)
                continue
            process = worker.process
            if process is None or process.poll() is None:
                continue
            self._schedule_restart(worker, process.returncode, now)

    def _schedule_restart(self, worker: _Worker, code: int, now: float) -> None:
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        worker_died(self.data_dir, worker.index)
        lived = now - worker.started
        worker.pause_s = (
            min(RESTART_PAUSE_MAX_S, max(0.5, worker.pause_s * 2)) if lived < QUICK_DEATH_S else 0
        )
        worker.restart_at = now + worker.pause_s
        log.error(
            "worker %d (pid %d) died with %s after %.1f s; restarting it%s",
            worker.index,
            worker.process.pid if worker.process is not None else -1,
            how,
            lived,
            f" in {worker.pause_s:.1f} s" if worker.pause_s else "",
        )

    def _stop_all(self) -> None:
        running = [w.process for w in self._workers if w.process and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop in %g s: killed", process.pid, STOP_TIMEOUT_S)
                process.kill()
                process.wait()
        for worker in self._workers:
            worker_socket(self.data_dir, worker.index).unlink(missing_ok=True)


def main() -> int:
    """The exec'd supervisor (``python -m node.supervisor``, from SupervisorPlan; its
    arguments only name the node, see SupervisorPlan.argv)."""
    plan = SupervisorPlan(**json.loads(os.environ[PLAN_ENV]))
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    supervisor = Supervisor(plan)
    if plan.log_file is not None:
        handler = add_log_file(Path(plan.log_file))
        assert isinstance(handler, RotatingFileHandler)
        supervisor.log_file = handler
    return supervisor.run()


def die_with_supervisor() -> None:
    """In a worker: get SIGTERM when the supervisor dies, and exit now if it already has."""
    die_with_parent(signal.SIGTERM, int(os.environ.get(SUPERVISOR_ENV, "0")))


def die_with_parent(sent: signal.Signals, expected_parent: int) -> None:
    """Get ``sent`` when the parent process dies, and exit now if it already has (the
    parent is no longer ``expected_parent``; 0: not known)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, sent, 0, 0, 0)
    if expected_parent and os.getppid() != expected_parent:
        sys.exit(1)


def inherited_sockets() -> list[socket.socket]:
    """The listening sockets a worker inherited: S3 first, then --metrics-listen if any."""
    fds = [int(fd) for fd in os.environ[SOCKETS_ENV].split(",") if fd]
    return [socket.socket(fileno=fd) for fd in fds]


def worker_index() -> int | None:
    """This process's worker index, None when it is not a worker of a supervisor."""
    value = os.environ.get(WORKER_ENV)
    return int(value) if value is not None else None


def worker_recovers() -> bool:
    """Whether this worker is to recover the data dir before opening it (the primary, at the
    node's start)."""
    return os.environ.get(RECOVER_ENV) == "1"


if __name__ == "__main__":
    sys.exit(main())

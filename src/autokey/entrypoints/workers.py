"""`autokey serve --workers N`: N forked worker processes on one shared listening socket.

The supervisor binds the socket, forks the workers (each runs the whole app on the inherited
socket; the kernel hands each connection to one of the processes waiting in accept), starts
a worker again when one dies without being asked to, and on SIGTERM or SIGINT stops all of
them gracefully, then exits 0. See ADR 0020.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("autokey.workers")

_SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
STOP_TIMEOUT_S = 30.0
"""How long the workers get to finish their requests after SIGTERM before SIGKILL."""
RESTART_PAUSE_S = 1.0
"""A worker that dies sooner than this after its start is restarted only after this pause,
so a worker that cannot start (database down) does not spin."""

Worker = Callable[[socket.socket, int], None]
"""Runs one worker's server on the socket until it is told to stop; the int is its index
(0 to N-1, kept across restarts)."""


def supervise(sock: socket.socket, workers: int, run: Worker) -> int:
    """Fork `workers` processes running `run`, keep them running until SIGTERM/SIGINT; 0."""
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    running: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
    for index in range(workers):
        _start(sock, index, run, running)
    while True:
        signo = signal.sigwaitinfo(_SIGNALS).si_signo
        if signo != signal.SIGCHLD:
            return _stop(running, signal.Signals(signo).name)
        for pid, status in _reap():
            index, started = running.pop(pid, (-1, 0.0))
            if index < 0:
                continue
            log.error("workers.died", worker=index, pid=pid, status=_status(status))
            if time.monotonic() - started < RESTART_PAUSE_S:
                time.sleep(RESTART_PAUSE_S)
            _start(sock, index, run, running)


def _start(
    sock: socket.socket, index: int, run: Worker, running: dict[int, tuple[int, float]]
) -> None:
    supervisor = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker: never returns into the supervisor's code
        code = 1
        try:
            # Ctrl-C reaches the whole process group: the supervisor alone answers it. Until
            # the app has started, SIGTERM ends a worker at once (nothing is in flight, and
            # an interrupted start can hang on half-opened connections); the worker's server
            # then makes it graceful.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            _die_with(supervisor)
            run(sock, index)
            code = 0
        except BaseException:  # anything: logged, and it ends this worker only
            log.exception("workers.crashed", worker=index)
        finally:
            os._exit(code)
    running[pid] = (index, time.monotonic())
    log.info("workers.started", worker=index, pid=pid)


def _die_with(supervisor: int) -> None:
    """SIGKILL this worker when the supervisor dies, however it dies (kill -9 included), so
    no worker outlives it (Linux prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != supervisor:  # it died before prctl took effect
        os._exit(1)


_PR_SET_PDEATHSIG = 1


def _reap() -> list[tuple[int, int]]:
    """Every child that has ended, as (pid, wait status), without blocking."""
    ended: list[tuple[int, int]] = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.append((pid, status))


def _stop(running: dict[int, tuple[int, float]], reason: str) -> int:
    log.info("workers.stopping", reason=reason, workers=len(running))
    for pid in running:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while running:
        for pid, _status in _reap():
            running.pop(pid, None)
        left = deadline - time.monotonic()
        if running and left <= 0:
            for pid in running:
                log.error("workers.killed", pid=pid)
                os.kill(pid, signal.SIGKILL)
            deadline = float("inf")
        if running:
            signal.sigtimedwait({signal.SIGCHLD}, max(0.05, min(left, 1.0)))
    log.info("workers.stopped")
    return 0


def _status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return f"exit {os.waitstatus_to_exitcode(status)}"


def default_workers(on_postgres: bool) -> int:
    """One per CPU this process may run on when on PostgreSQL; 1 for the embedded stores."""
    return len(os.sched_getaffinity(0)) if on_postgres else 1

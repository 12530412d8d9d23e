"""Ownership of directories and processes.

A run directory (``evolve``/``resume``) and a cache directory (a build) are
written by one process at a time: :func:`owned` holds an advisory ``flock`` on
``<dir>/.gpproxy.lock``, which names the owner (pid and host). The kernel
drops the lock when its owner dies, however it dies, so a lock left behind by
a killed process is taken over (and said so); a second live writer gets one
clear error line instead of silently mixing two runs' files.

A file that several processes update (a score store) is read, merged and
replaced under :func:`waiting_for`, a blocking ``flock`` on a file beside it.

Worker processes (loky) call :func:`serve_driver` so that a ``kill -9`` of
the driver does not leave them running and they read relative paths as the
driver does; dask workers, which may run elsewhere, get absolute paths
(:func:`for_dask_workers`).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import sys
from pathlib import Path

from .errors import InUseError

LOCK_NAME = ".gpproxy.lock"


def _owner_text() -> str:
    return f"{os.getpid()} {socket.gethostname()}\n"


def _describe(text: str) -> str:
    pid, _, host = text.strip().partition(" ")
    return f"pid {pid} on host {host or '?'}" if pid else "another process"


@contextlib.contextmanager
def owned(directory, what: str, log=None):
    """Hold ``directory`` (created if needed) for this process while the block runs.

    ``what`` names the directory in messages ("run directory", "cache").
    Raises InUseError (a GpproxyError) when another live process holds it.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read(fd)
            os.close(fd)
            if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise InUseError(f"{what} {directory} is in use by {_describe(holder)}; wait for it to "
                             f"finish or use another directory", what=what) from None
        # The file may have been unlinked by its previous owner between our
        # open and flock: then we locked a dead inode; open again.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _read(fd)
    if previous.strip() and log is not None:
        log(f"{what} {directory}: took over the lock of {_describe(previous)}, which is gone "
            f"(killed or crashed)")
    os.ftruncate(fd, 0)
    os.pwrite(fd, _owner_text().encode(), 0)
    try:
        yield path
    finally:
        # Unlink while still holding the lock, so no one locks the old inode for good.
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def waiting_for(path):
    """Hold an exclusive lock beside file ``path`` (``<path>.lock``), waiting for any other holder."""
    lock = Path(path).with_name(Path(path).name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read(fd) -> str:
    try:
        return os.pread(fd, 200, 0).decode("utf-8", "replace")
    except OSError:
        return ""


_PR_SET_PDEATHSIG = 1


def serve_driver(parent_pid: int, cwd: str) -> None:
    """In a worker process of the driver ``parent_pid``: die with it, and work in its current directory.
    loky reuses its workers across calls, so a worker started before the driver changed directory would
    resolve relative paths (caches, space and pack files, input files) against the old one: a cache built
    into another directory's cache, a pack or space read from the wrong file."""
    die_with_parent(parent_pid)
    if os.getcwd() != cwd:
        os.chdir(cwd)


def for_dask_workers(path: str, is_file_name: bool = False) -> str:
    """A path as a dask worker must get it: absolute. Its working directory is not the driver's (a remote
    worker's never is; a LocalCluster's is the one the driver had when the cluster started), and a shared
    filesystem mounts the same absolute paths. ``is_file_name``: a space or pack argument, which names a
    built-in one unless it ends in .py."""
    if is_file_name and not str(path).endswith(".py"):
        return path
    return str(Path(path).resolve())


def die_with_parent(parent_pid: int) -> None:
    """In a worker: be killed when ``parent_pid`` (the driver) dies (Linux; no-op elsewhere)."""
    if not sys.platform.startswith("linux") or getattr(die_with_parent, "_done", None) == parent_pid:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl
        return
    die_with_parent._done = parent_pid
    if os.getppid() != parent_pid:  # the driver died before we asked
        os._exit(1)

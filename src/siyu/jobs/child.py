"""The embedded worker as a child process of `siyu serve`.

Callbacks must be answered within WeCom's 5 s, and quickly under load; the worker's
processing is CPU-bound Python. In one process they would share one event loop (and one
GIL), so the worker runs beside the web server as a child at a lower CPU priority, woken
through a pipe whenever the server stores work. When the server goes away, the pipe
closes and the child stops.
"""

from __future__ import annotations

import os
import subprocess
import sys

from siyu.config import Settings


def spawn(settings: Settings, nice: int = 19) -> tuple[subprocess.Popen, int]:
    """Start `siyu worker` with the same settings; returns it and the pipe's write end."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        env[f"SIYU_{name.upper()}"] = str(value)
    env["SIYU_AUTO_MIGRATE"] = "false"  # the server migrated before starting us
    proc = subprocess.Popen(
        [sys.executable, "-m", "siyu.cli", "worker", "--wake-fd", str(read_fd), "--nice", str(nice)],
        pass_fds=(read_fd,),
        env=env,
    )
    os.close(read_fd)
    return proc, write_fd


def stop(proc: subprocess.Popen, write_fd: int) -> None:
    os.close(write_fd)  # the child sees the pipe close and stops
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def watch_wake_pipe(loop, fd: int, rt, worker) -> None:
    """In the child: every byte on the pipe wakes the worker; end of file stops it."""

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            rt.wake()
        else:
            loop.remove_reader(fd)
            worker.stop()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)

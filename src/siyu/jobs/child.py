"""The embedded worker as a child process of `siyu serve`.

Callbacks must be answered within WeCom's 5 s, and quickly under load; the worker's
processing is CPU-bound Python. In one process they would share one event loop (and one
GIL), so the worker runs beside the web server as a child at a lower CPU priority, woken
through a pipe whenever the server stores work. When the server goes away, the pipe
closes and the child stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time

from siyu.config import Settings

log = logging.getLogger(__name__)


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
        # Ctrl-C and `systemctl stop` go to the server, which stops the child by closing the
        # pipe: caught by the child as well, they had looked like a crash to be restarted
        start_new_session=True,
    )
    os.close(read_fd)
    return proc, write_fd


# How long a stopped child is given to finish what it has under way before it is killed
STOP_WAIT_S = 15.0


def stop(proc: subprocess.Popen, write_fd: int) -> None:
    """Stop the child: the pipe closes, and SIGTERM comes at once. The child reads the pipe on
    its event loop, which work that waits on a database gone silent holds up (until the
    connection's limits give up: a minute and more), where Python takes the signal between
    two of those waits; the child then gives up on the silent database within seconds
    (`Database.stopping`). A stop during an outage had waited 15 s for the child to read
    the pipe before it sent the signal. The child stops the same way on either."""
    os.close(write_fd)  # (and a child still starting, its handlers not yet set, ends on the signal)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Keeper:
    """Keeps the embedded worker running: started with the server, and started again when it
    stops on its own (an error it could not get past, a crash, the OOM killer), after a pause
    that doubles while it keeps stopping. Without it the server had gone on answering WeCom
    and storing work that nothing took up."""

    CHECK_S = 1.0
    FIRST_PAUSE_S = 1.0
    MAX_PAUSE_S = 60.0

    def __init__(self, settings: Settings, runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.proc: subprocess.Popen | None = None
        self.pause_s = self.FIRST_PAUSE_S
        self.started_at = 0.0
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.proc, self.runtime.wake_fd = spawn(self.settings)
        self.started_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(self.CHECK_S)
            if self.alive:
                if time.monotonic() - self.started_at > self.MAX_PAUSE_S:
                    self.pause_s = self.FIRST_PAUSE_S  # it ran a while: the next stop is news
                continue
            code = self.proc.returncode if self.proc is not None else None
            # closed only after the pause: a thread that read the number just before may still
            # write its wake-up, which must not land in whatever reuses the number
            old_fd, self.runtime.wake_fd = self.runtime.wake_fd, None
            log.error(
                "the embedded worker stopped (exit status %s); starting it again in %.0f s",
                code,
                self.pause_s,
            )
            await asyncio.sleep(self.pause_s)
            if old_fd is not None:
                os.close(old_fd)
            self.pause_s = min(self.pause_s * 2, self.MAX_PAUSE_S)
            self.restarts += 1
            self._start()

    def stop(self) -> None:
        if self.proc is not None and self.runtime.wake_fd is not None:
            stop(self.proc, self.runtime.wake_fd)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        self.runtime.wake_fd = None


def watch_wake_pipe(loop, fd: int, rt, stop) -> None:
    """In the child: every byte on the pipe wakes the worker; end of file stops it (`stop`)."""

    def readable() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            rt.wake()
        else:
            loop.remove_reader(fd)
            stop()

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)

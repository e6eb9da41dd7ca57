"""Real HTTP servers for tests: an ASGI app under uvicorn on a free port, in a thread."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _this_workers_ports(start: int, stop: int) -> tuple[int, int]:
    """pytest-xdist's workers each pick from their own slice: two picking the same port, one
    between the other's pick and its server's bind, made that server fail to start."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker.startswith("gw") or count < 2:
        return start, stop
    size = max((stop - start) // count, 1)
    first = start + int(worker[2:]) % count * size
    return first, first + size


def free_port() -> int:
    """A port nobody listens on, below the kernel's ephemeral range: one from that range (the
    kernel's own pick) was at times given to an outgoing connection (to the database, say)
    before the server meant for it was up, which then failed: address already in use."""
    start, stop = _this_workers_ports(10000, max(_ephemeral_low(), 10001))
    for _ in range(100):
        port = random.randrange(start, stop)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bound_socket() -> socket.socket:
    """A socket bound to a free port and held until `serve` listens on it. A port looked up
    first and bound by uvicorn later was at times taken meanwhile by another process's server
    (address already in use); a test that must know its URL before it serves holds this."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", free_port()))
    return sock


def port_of(sock: socket.socket) -> int:
    return sock.getsockname()[1]


@contextlib.contextmanager
def serve(app, sock: socket.socket | None = None) -> Iterator[str]:
    """Serve `app` on 127.0.0.1, on `sock` if given (see `bound_socket`), and yield its base
    URL; stop it and close the socket on exit."""
    sock = sock or bound_socket()
    port = port_of(sock)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()

"""Helpers for the benchmarks: a lean HTTP/1.1 load client and the WeCom emulator with a
few benchmark-only control routes.

    python benchmarks/_util.py emulator --port 8081     # the emulator, as the benchmark runs it

The load client is deliberately minimal (pre-serialised requests over keep-alive
connections, responses parsed by Content-Length): it shares a core with the emulator, so
its own cost per request must stay far below Siyu's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter, deque

# ---------------------------------------------------------------- numbers


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# ---------------------------------------------------------------- processes


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL: only the process we started, by its pid."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


# ---------------------------------------------------------------- load client


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))
        self.waiter = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        i = head.find(b"\r\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r\n", i + 2)
            length = int(head[i + 17 : j if j >= 0 else None])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        status = int(head[9:12])
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body, time.perf_counter()))
        if b"connection: close" in head:
            self.closed = True

    def send(self, data: bytes) -> asyncio.Future:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter


class LoadClient:
    """A pool of keep-alive connections; `request` waits for a free one (that wait counts)."""

    def __init__(self, host: str, port: int, max_conns: int = 512) -> None:
        self.host, self.port, self.max_conns = host, port, max_conns
        self._idle: deque[_Conn] = deque()
        self._all: set[_Conn] = set()
        self._waiters: deque[asyncio.Future] = deque()
        self._opening = 0

    async def _open(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        self._all.add(conn)
        return conn

    async def warm(self, n: int) -> None:
        conns = await asyncio.gather(*(self._open() for _ in range(min(n, self.max_conns))))
        self._idle.extend(conns)

    async def _acquire(self) -> _Conn:
        while self._idle:
            conn = self._idle.popleft()
            if not conn.closed:
                return conn
            self._all.discard(conn)
        if len(self._all) + self._opening < self.max_conns:
            self._opening += 1
            try:
                return await self._open()
            finally:
                self._opening -= 1
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def _release(self, conn: _Conn) -> None:
        if conn.closed:
            self._all.discard(conn)
            conn.transport.close()
            if self._waiters:  # someone waits: open a replacement for them
                waiter = self._waiters.popleft()
                task = asyncio.ensure_future(self._open())
                task.add_done_callback(lambda t: _hand_over(waiter, t))
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def request(self, data: bytes) -> tuple[int, bytes, float]:
        """(status, body, perf_counter when the answer was complete)."""
        for attempt in range(2):
            conn = await self._acquire()
            try:
                result = await conn.send(data)
            except ConnectionError:
                conn.closed = True
                self._release(conn)
                if attempt:
                    raise
                continue  # the server closed an idle connection just now: once more
            self._release(conn)
            return result
        raise ConnectionError("unreachable")

    def close(self) -> None:
        for conn in list(self._all):
            if conn.transport is not None:
                conn.transport.close()
        self._all.clear()
        self._idle.clear()


def _hand_over(waiter: asyncio.Future, task: asyncio.Task) -> None:
    if waiter.done():
        return
    if task.exception() is not None:
        waiter.set_exception(task.exception())
    else:
        waiter.set_result(task.result())


def post_bytes(host: str, port: int, path: str, body: bytes, content_type: str = "text/xml") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


# ---------------------------------------------------------------- the emulator, benchmark edition


def bench_emulator_app(**overrides):
    """The WeCom emulator plus /_bench/ routes: many scans in one request (customers that
    exist in WeCom, with their welcome codes, but no callback delivered: the benchmark
    sends the callbacks itself, on its own schedule) and one summary of what Siyu did."""
    from fastapi import Body, HTTPException

    from siyu.emulator import actions
    from siyu.emulator.app import create_emulator_app

    app = create_emulator_app(**overrides)
    emu = app.state.emulator

    def corp_of(corp_id: str):
        corp = emu.state.corps.get(corp_id)
        if corp is None:
            raise HTTPException(404, f"unknown corp {corp_id}")
        return corp

    @app.post("/_bench/corps/{corp_id}/unbounded_calls")
    async def unbounded_calls(corp_id: str):
        corp = corp_of(corp_id)
        corp.calls = deque(corp.calls)  # keep every call, not the last 5,000
        return {"ok": True}

    @app.post("/_bench/corps/{corp_id}/scan_many")
    async def scan_many(corp_id: str, body: dict = Body(...)):
        """{config_id, at: [unix times], prefix?} -> [[external_userid, userid, welcome_code], ...]

        Each customer scans at its `at`; the welcome code is issued at that moment (as WeCom
        issues it with the event), so its 20 s start when the benchmark sends the event."""
        corp = corp_of(corp_id)
        saved, corp.callback_url = corp.callback_url, ""
        out = []
        try:
            for k, at in enumerate(body["at"]):
                customer = {"name": f"{body.get('prefix', '客户')}{k}", "gender": 1 + k % 2}
                result, delivery = actions.scan(emu, corp, body["config_id"], customer, None, int(at))
                emu.deliverer.log.pop(delivery.id, None)  # nothing was delivered; keep memory flat
                code = corp.welcome_codes[result["welcome_code"]]
                code.issued_at = float(at)
                out.append([result["external_userid"], result["userid"], result["welcome_code"]])
        finally:
            corp.callback_url = saved
        return out

    @app.get("/_bench/corps/{corp_id}/summary")
    async def summary(corp_id: str):
        corp = corp_of(corp_id)
        calls = Counter(f"{c['path'].removeprefix('/cgi-bin/')} {c['errcode']}" for c in corp.calls)
        welcomes = [[m["welcome_code"], m["received_at"]] for m in corp.welcome_messages]
        tagged = sum(1 for f in corp.follows.values() if f.tag_ids)
        return {"calls": dict(calls), "welcomes": welcomes, "tagged": tagged, "follows": len(corp.follows)}

    return app


def run_emulator(port: int) -> None:
    import uvicorn

    app = bench_emulator_app(rate_limit_per_minute=10**9)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "emulator" and sys.argv[2] == "--port":
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
        run_emulator(int(sys.argv[3]))
    else:
        sys.exit("usage: python benchmarks/_util.py emulator --port PORT")

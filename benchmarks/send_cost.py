"""What one app message (message/send textcard) costs the sender's CPU: through Siyu's
WeCom client (token, pacing, retries, logging, siyu.wecom.http) against the floor, the same
request from a bare aiohttp session. The escalation worker spends much of its CPU here.

    .venv/bin/python benchmarks/send_cost.py [--sends N] [--rounds R] [--in-flight K]

The WeCom emulator (the escalation benchmark's: no rate limit) runs in its own process; the
sends go K at a time, as the worker's claims do (the client allows 10 in flight per API).
The two ways are measured in turn, R rounds of N sends each, after a warm-up; CPU is this
process's (user + system), so the emulator's share is not counted. The last line is JSON:
`client_cpu_ms` and `bare_cpu_ms` (medians of the rounds, per send), `ratio`
(client / bare), the rates, and `sent` / `received` (every send, warm-ups included, and
what the emulator received).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for p in (str(HERE.parent), str(HERE.parent / "src")):
    if p not in sys.path:
        sys.path.insert(0, p)

import aiohttp  # noqa: E402
import httpx  # noqa: E402

from benchmarks._archive import log, organisation  # noqa: E402
from benchmarks._util import stop_process  # noqa: E402
from siyu.wecom.client import WeComClient  # noqa: E402

WARM_UP = 300  # sends per way before measuring: connections, the token, code paths


def card(touser: str, agent_id: int, i: int) -> dict:
    return {
        "touser": touser,
        "msgtype": "textcard",
        "agentid": agent_id,
        "textcard": {
            "title": "客户等待回复 2 分钟",
            "description": f'<div class="gray">王女士 #{i}</div><div>请问明天能发货吗？比较急</div>',
            "url": f"https://siyu.example.com/conversations/{i}?from=card",
            "btntxt": "查看",
        },
    }


async def measure(send, payloads: list[dict], in_flight: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) to send all payloads, `in_flight` at a time."""
    gate = asyncio.Semaphore(in_flight)

    async def one(payload: dict) -> None:
        async with gate:
            await send(payload)

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(p) for p in payloads))
    return time.process_time() - cpu, time.perf_counter() - wall


async def run(base_url: str, corp: dict, agents: list[str], args) -> dict:
    client = WeComClient(corp["corp_id"], corp["agent_secret"], base_url=base_url)
    token = await client.get_token()
    bare = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16))

    async def via_client(payload: dict) -> None:
        await client.message_send(payload)

    async def via_bare(payload: dict) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        async with bare.post(
            f"{base_url}/cgi-bin/message/send",
            params={"access_token": token},
            data=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        ) as response:
            answer = json.loads(await response.read())
        if answer.get("errcode"):
            raise RuntimeError(f"message/send: {answer}")

    ways = {"client": via_client, "bare": via_bare}
    count = max(args.sends, WARM_UP)
    payloads = [card(agents[i % len(agents)], corp["agent_id"], i) for i in range(count)]
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    try:
        for send in ways.values():  # warm-up: connections, tokens, code paths
            await measure(send, payloads[:WARM_UP], args.in_flight)
        for r in range(args.rounds):
            for name, send in ways.items():
                figures[name].append(await measure(send, payloads[: args.sends], args.in_flight))
            log(
                f"round {r + 1}: "
                + ", ".join(f"{n} {f[-1][0] / args.sends * 1000:.3f} ms" for n, f in figures.items())
            )
    finally:
        await client.aclose()
        await bare.close()
    cpu = {n: statistics.median(c for c, _ in f) / args.sends * 1000 for n, f in figures.items()}
    rate = {n: statistics.median(args.sends / w for _, w in f) for n, f in figures.items()}
    return {
        "sends": args.sends,
        "rounds": args.rounds,
        "in_flight": args.in_flight,
        "client_cpu_ms": round(cpu["client"], 4),
        "bare_cpu_ms": round(cpu["bare"], 4),
        "ratio": round(cpu["client"] / cpu["bare"], 3),
        "client_per_s": round(rate["client"]),
        "bare_per_s": round(rate["bare"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=3000, help="sends per round and way")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--in-flight", type=int, default=10, help="sends in flight at once")
    args = parser.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    emulator = subprocess.Popen(
        [sys.executable, str(HERE / "_archive.py"), "emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/_emulator/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if emulator.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the emulator did not start")
            time.sleep(0.1)
        departments, staff = organisation(100)
        corp = httpx.post(
            f"{base_url}/_emulator/corps",
            json={"name": "基准科技", "departments": departments, "staff": staff},
        ).json()
        httpx.patch(
            f"{base_url}/_emulator/corps/{corp['corp_id']}", json={"rate_limits": {"*": 10**9}}
        ).raise_for_status()
        agents = [s["userid"] for s in staff if s["userid"].startswith("agent")]
        result = asyncio.run(run(base_url, corp, agents, args))
        result["sent"] = 2 * (WARM_UP + args.rounds * args.sends)
        result["received"] = httpx.get(
            f"{base_url}/_bench/corps/{corp['corp_id']}/app_messages_count"
        ).json()["count"]
    finally:
        stop_process(emulator)
    log(
        f"per send: Siyu's client {result['client_cpu_ms']:.3f} ms of CPU, bare aiohttp"
        f" {result['bare_cpu_ms']:.3f} ms (x{result['ratio']})"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

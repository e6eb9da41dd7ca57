"""Archive pull benchmark: WeCom's conversation archive pulled end to end through the finance
SDK path and stored by the puller, against its two halves measured in the same run.

    .venv/bin/python benchmarks/archive_pull.py [--messages N] [--database URL] [--rounds R]
        [--latency-ms MS]

The archive is the ingest benchmark's made-up one (benchmarks/ingest.py), encrypted as WeCom's
is: each message under a random key of its own, that key RSA-encrypted (PKCS#1 v1.5, 2,048
bits) with the tenant's archive public key. It is served by the finance SDK stand-in the tests
compile (tests/support/finance_sdk: GetChatData from a JSON-lines file; DecryptData its own
cheap scheme, in C as the real SDK's is), through `SdkArchiveSource` over ctypes. The real
GetChatData is a call over the network to WeCom's servers: --latency-ms makes each call of
the stand-in wait that long first (default 0: the CPU's part alone). Three
measurements, in turn, in R rounds (default 5), each over the round's next N/R messages:

- fetch: `SdkArchiveSource.fetch` until the archive is drained, nothing stored (GetChatData,
  then per message one RSA decrypt of its random key and one DecryptData);
- store: `tasks.pull` from an in-memory source of the same messages, already decrypted (what
  benchmarks/ingest.py measures), for one tenant;
- pull: `tasks.pull` over the SDK source, for another tenant: both halves, as a worker runs
  them.

serial_per_s = 1 / (1/fetch_per_s + 1/store_per_s) is what the two halves give one after the
other; overlap = pull_per_s / serial_per_s (above 1: they overlap). The process is not pinned
to a core: RSA runs outside Python's GIL, so a puller can use a second core for it. The
database is a fresh SQLite file (default) or a fresh PostgreSQL database on the server that
--database names (sharing the machine's cores). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import string
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(ROOT / "src")):
    if p not in sys.path:
        sys.path.insert(0, p)

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding  # noqa: E402
from tests.support.finance_sdk import build_standin, standin_encrypt  # noqa: E402

from benchmarks._archive import (  # noqa: E402
    log,
    migrated_database,
    new_tenant,
    organisation,
    run_in_workdir,
    store_customers,
    store_organisation,
)
from benchmarks.ingest import AGENTS, MemorySource, make_archive, round_bounds, stored_counts  # noqa: E402
from siyu.config import Settings  # noqa: E402
from siyu.conversations import tasks as conversation_tasks  # noqa: E402
from siyu.db import Database  # noqa: E402
from siyu.jobs.worker import settle_collector  # noqa: E402
from siyu.runtime import Runtime  # noqa: E402
from siyu.wecom.archive import SdkArchiveSource, generate_key_pair  # noqa: E402

BATCH = conversation_tasks.BATCH
CORP, SECRET = "wwbenchmark0001", "archive-secret"


def encrypt_archive(items, public_pem: str, path: Path) -> None:
    """The archive as GetChatData serves it (REFERENCE 11.2), one chatdata item a line."""
    public_key = serialization.load_pem_public_key(public_pem.encode())
    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits
    with path.open("w") as out:
        for item in items:
            key = "".join(rng.choice(alphabet) for _ in range(32))
            chatdata = {
                "seq": item.seq,
                "msgid": item.msgid,
                "publickey_ver": 1,
                "encrypt_random_key": base64.b64encode(
                    public_key.encrypt(key.encode(), padding.PKCS1v15())
                ).decode(),
                "encrypt_chat_msg": standin_encrypt(key, item.raw or json.dumps(item.message)),
            }
            out.write(json.dumps(chatdata) + "\n")


def served(lines: list[str], end: int, path: Path) -> None:
    """The archive as it stood when a round began: its first `end` messages."""
    path.write_text("".join(lines[:end]))


async def fetch_all(source, after: int) -> int:
    fetched = 0
    while True:
        items = await source.fetch(after, BATCH)
        fetched += len(items)
        if len(items) < BATCH:
            return fetched
        after = items[-1].seq


def measure(args, settings: Settings, db: Database, workdir: Path) -> dict:
    rt = Runtime.create(settings, db)
    departments, staff = organisation(AGENTS)
    store_tenant = new_tenant(db, rt.box, "基准存储")
    pull_tenant = new_tenant(db, rt.box, "基准拉取")
    items, customers = make_archive(args.messages)
    known = [c for i, c in enumerate(customers) if i % 10]
    for tid in (store_tenant, pull_tenant):
        with db.tenant_session(tid) as s:
            store_organisation(s, departments, staff)
        store_customers(db, tid, known)

    private_pem, public_pem = generate_key_pair()
    whole = workdir / "chatdata-all.jsonl"
    t = time.perf_counter()
    encrypt_archive(items, public_pem, whole)
    lines = whole.read_text().splitlines(keepends=True)
    chatdata = workdir / "chatdata.jsonl"
    os.environ["SIYU_FAKE_SDK_CHATDATA"] = str(chatdata)
    os.environ["SIYU_FAKE_SDK_LATENCY_MS"] = str(args.latency_ms)
    lib = build_standin()
    made = time.perf_counter() - t
    log(f"{db.engine.dialect.name}: {len(items)} archived messages encrypted in {made:.1f}s")

    conversation_tasks.classifier()
    settle_collector()  # as a worker does at start
    spent = {"fetch": 0.0, "store": 0.0, "pull": 0.0}
    fetched = 0
    for start, end in round_bounds(len(items), args.rounds):
        served(lines, end, chatdata)

        source = SdkArchiveSource(lib, CORP, SECRET, {1: private_pem})
        t0 = time.perf_counter()
        fetched += asyncio.run(fetch_all(source, items[start].seq - 1))
        spent["fetch"] += time.perf_counter() - t0
        asyncio.run(source.aclose())

        t0 = time.perf_counter()
        asyncio.run(conversation_tasks.pull(rt, store_tenant, MemorySource(items[:end])))
        spent["store"] += time.perf_counter() - t0

        source = SdkArchiveSource(lib, CORP, SECRET, {1: private_pem})
        t0 = time.perf_counter()
        asyncio.run(conversation_tasks.pull(rt, pull_tenant, source))
        spent["pull"] += time.perf_counter() - t0
        asyncio.run(source.aclose())

    rates = {k: len(items) / v for k, v in spent.items()}
    serial = 1 / (1 / rates["fetch"] + 1 / rates["store"])
    for k, v in rates.items():
        log(f"  {k}: {len(items)} in {spent[k]:.2f}s: {v:,.0f} messages/s")
    stored, pulled = stored_counts(db, store_tenant), stored_counts(db, pull_tenant)
    log(f"  serial (fetch, then store): {serial:,.0f} messages/s; pull / serial {rates['pull'] / serial:.2f}")
    return {
        "pull_per_s": round(rates["pull"], 1),
        "fetch_per_s": round(rates["fetch"], 1),
        "store_per_s": round(rates["store"], 1),
        "serial_per_s": round(serial, 1),
        "overlap": round(rates["pull"] / serial, 3),
        "database": db.engine.dialect.name,
        "messages": len(items),
        "fetched": fetched,
        "rounds": len(round_bounds(len(items), args.rounds)),
        "latency_ms": args.latency_ms,
        "cpus": os.cpu_count(),
        "same_as_store": pulled == stored,
        "stored": pulled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="archived messages to pull")
    parser.add_argument("--database", default=None, help="PostgreSQL server URL (default: SQLite file)")
    parser.add_argument("--rounds", type=int, default=5, help="the three measured in turn, this many times")
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="each GetChatData call waits this long first (the network)"
    )
    args = parser.parse_args()
    if args.messages < 1:
        parser.error("--messages must be positive")

    def run(workdir: Path) -> dict:
        with migrated_database(args.database, workdir) as (settings, db):
            return measure(args, settings, db, workdir)

    run_in_workdir("siyu-archive-pull-", run)


if __name__ == "__main__":
    main()

"""The benchmarks run end to end at a small size: ingest stores every made-up message and
makes it searchable, measuring both rates in the rounds asked for; the archive pull fetches,
decrypts and stores every message through the finance SDK stand-in, storing what the in-memory
pull stores; the send-cost benchmark delivers every card and measures both costs; the reads
benchmark seeds a tenant and times every page of every role against its baseline. Their
figures are for the README and benchmarks/RESULTS.md, not for asserting here: these
machines are shared and noisy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.finance_sdk import standin_or_skip

ROOT = Path(__file__).resolve().parent.parent


def benchmark(script: str, *args: str, db=None) -> dict:
    """Run benchmarks/<script> (on the test run's PostgreSQL server where `db` is on one) and
    return its last line, the JSON it prints."""
    command = [sys.executable, str(ROOT / "benchmarks" / script), *args]
    if db is not None and db.is_postgres:
        command += ["--database", os.environ["SIYU_TEST_DATABASE_URL"]]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_the_ingest_benchmark_stores_everything_and_reports_both_rates(db):
    result = benchmark("ingest.py", "--messages", "2500", "--rounds", "2", db=db)
    assert result["database"] == ("postgresql" if db.is_postgres else "sqlite")
    assert result["rounds"] == 2 and result["messages"] == 2500
    assert result["ingest_per_s"] > 0 and result["baseline_per_s"] > 0
    assert abs(result["ratio"] - result["ingest_per_s"] / result["baseline_per_s"]) < 1e-3
    stored = result["stored"]
    assert stored["messages"] == 2500 and stored["search_backlog"] == 0
    assert stored["search_rows"] > 0 and stored["waits"] >= stored["waits_open"] > 0


def test_the_archive_pull_benchmark_stores_through_the_sdk_what_the_store_alone_stores(db):
    standin_or_skip()
    result = benchmark("archive_pull.py", "--messages", "2500", "--rounds", "2", "--latency-ms", "20", db=db)
    assert result["messages"] == result["fetched"] == result["stored"]["messages"] == 2500
    assert result["same_as_store"] and result["stored"]["search_backlog"] == 0
    assert result["rounds"] == 2 and result["latency_ms"] == 20
    assert min(result["pull_per_s"], result["fetch_per_s"], result["store_per_s"]) > 0
    serial = 1 / (1 / result["fetch_per_s"] + 1 / result["store_per_s"])
    assert abs(result["serial_per_s"] - serial) < 1
    assert abs(result["overlap"] - result["pull_per_s"] / serial) < 0.01


def test_the_send_cost_benchmark_delivers_every_card_and_reports_both_costs():
    result = benchmark("send_cost.py", "--sends", "200", "--rounds", "2")
    assert result["sent"] == result["received"] == 2 * (300 + 2 * 200)
    assert result["client_cpu_ms"] > 0 and result["bare_cpu_ms"] > 0
    assert abs(result["ratio"] - result["client_cpu_ms"] / result["bare_cpu_ms"]) < 0.01


def test_the_reads_benchmark_opens_every_page_of_every_role_and_reports_the_baseline(db):
    result = benchmark("reads.py", "--conversations", "600", "--rounds", "1", db=db)
    assert result["database"] == ("postgresql" if db.is_postgres else "sqlite")
    assert result["conversations"] == result["stored"]["conversations"] == 600
    assert result["stored"]["group_chats"] > 0 and result["stored"]["waiting"] > 0
    assert result["baseline_p50_ms"] > 0 and result["floor_p50_ms"] > 0
    kinds = {"list", "list_later", "waiting", "search_phrase", "search_char", "chat", "customer"}
    kinds |= {"customers", "customers_api"}
    kinds |= {"board", "board_api", "board_api_next"}
    assert set(result["results"]) == {"wall", "business"}
    for by_kind in result["results"].values():
        assert set(by_kind) == kinds
        for by_role in by_kind.values():
            assert set(by_role) == {"agent", "supervisor", "admin"}
            for figures in by_role.values():
                assert figures["p95_ms"] >= figures["p50_ms"] > 0 and figures["floor_ratio"] > 0
                ratio = figures["p50_ms"] / result["baseline_p50_ms"]
                assert abs(figures["ratio"] - ratio) <= 0.01 * ratio + 0.1


# ---------------------------------------------------------------- bad arguments
# refused at once, in a usage line: an operator reads "parts": -2 or "due": 0 in the JSON line
# as a result, and a crash after minutes of set-up tells nothing


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "benchmarks" / name), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=ROOT)


def _last_json(out: str) -> dict | None:
    lines = out.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else None
    except ValueError:
        return None


@pytest.mark.parametrize("agents", ["0", "-3"])
def test_escalation_refuses_a_corp_without_agents(agents):
    # --agents 0: the conversations go "to the agents in turn" -> i % 0, a ZeroDivisionError
    # traceback after the emulator, the tenant and the staff sync were set up
    run = _script("escalation.py", "--conversations", "10", "--agents", agents, "--spread-s", "1")
    assert run.returncode == 2 and "--agents" in run.stderr and "Traceback" not in run.stderr, (
        run.returncode,
        run.stderr[-600:],
    )


def test_escalation_refuses_a_negative_spread():
    # --spread-s -5: every step is due before the run starts and after its "end" (t_go - 5 s),
    # so none is counted due: the run exits 0 with due 0, fired 0 and NaN lateness
    run = _script("escalation.py", "--conversations", "10", "--spread-s", "-5", "--drain-s", "5")
    result = _last_json(run.stdout)
    assert run.returncode == 2 and "--spread-s" in run.stderr, (run.returncode, result)


@pytest.mark.parametrize("args", [["--parts", "0"], ["--parts", "-2"], ["--rounds", "0"], ["--rounds", "-1"]])
def test_ingest_refuses_parts_and_rounds_below_one(db, args):
    # accepted today: --parts -2 stores in one part and reports "parts": -2 on PostgreSQL;
    # --rounds 0 runs one round (reads.py refuses --rounds 0: "--rounds must be positive")
    where = ["--database", os.environ["SIYU_TEST_DATABASE_URL"]] if db.is_postgres else []
    run = _script("ingest.py", "--messages", "100", "--no-phases", *where, *args)
    result = _last_json(run.stdout)
    assert run.returncode == 2 and args[0] in run.stderr, (
        run.returncode,
        result and {k: result[k] for k in ("rounds", "parts", "messages")},
    )

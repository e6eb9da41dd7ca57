"""Evaluate the needs-reply classifier: precision / recall / F1 of needs_reply, closing-remark
recall, and throughput on one core.

    .venv/bin/python benchmarks/needs_reply_eval.py                  # dev and held-out splits
    .venv/bin/python benchmarks/needs_reply_eval.py --errors 30      # also list mistakes (dev only)
    .venv/bin/python benchmarks/needs_reply_eval.py --input my.jsonl # any {"text","context","label"} JSONL
    .venv/bin/python benchmarks/needs_reply_eval.py --input benchmarks/data/needs_reply/probe.jsonl
        # the probe written in casual customer styles (a development set: tuned on, not held out)
    .venv/bin/python benchmarks/needs_reply_eval.py --input benchmarks/data/needs_reply/cantonese.jsonl
        # Cantonese closings and requests (a development set too)

The labelled set lives in benchmarks/data/needs_reply/ (README.md there says how it was made).
dev.jsonl is what the rules were developed against; heldout.jsonl was never tuned on and is
reported separately. A naive keyword list (an exact match against a few common closing words,
context ignored) is scored on the same rows so the gain is visible.

Throughput: this process pinned to one CPU core, the messages classified in batches of
--batch-size through the public interface, each staff message made unique (a suffix line) so
the context cache never helps; the best of a few timed rounds of at least --seconds each.

Mistakes are listed for the dev split only unless --show-heldout-errors is given (looking at them
is how a held-out set stops being held out). The last line is JSON; the top-level figures are
those of the held-out split (or of --input).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from siyu.insights.needs_reply import clear_caches, default_classifier  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "needs_reply"

# The naive baseline: closing iff the message, stripped of punctuation and spaces, is one of these.
_KEYWORDS = (
    "好的 好 好滴 好嘞 嗯 嗯嗯 恩恩 收到 收到了 谢谢 谢谢你 谢谢您 谢谢亲 感谢 多谢 好的谢谢 好的谢谢亲 "
    "拜拜 再见 ok 知道了 明白了 没有了 不用了 👌 👍 [表情] [微笑] [OK] [抱拳] [强]"
)
KEYWORDS = frozenset(_KEYWORDS.split())
_STRIP = re.compile(r"[\s,.!?~，。！？、…～:;：；]+")


def keyword_baseline(text: str, context: str | None) -> str:
    return (
        "closing"
        if _STRIP.sub("", text) in KEYWORDS or _STRIP.sub("", text).lower() == "ok"
        else "needs_reply"
    )


LABELS = ("needs_reply", "closing")


def load(path: Path) -> list[dict]:
    """The labelled rows, or SystemExit naming the first line that is not one (a BOM is none)."""
    rows = []
    try:
        raw_lines = path.read_bytes().split(b"\n")
    except OSError as exc:
        raise SystemExit(f"{path}: cannot be read ({exc})") from None
    for number, raw in enumerate(raw_lines, 1):
        try:  # line by line, so that bytes of another encoding are named by their line
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise SystemExit(f"{path} line {number}: not UTF-8 text ({exc.reason})") from None
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise SystemExit(f"{path} line {number}: not JSON ({exc})") from None
        except RecursionError:  # [[[[... thousands deep
            raise SystemExit(f"{path} line {number}: not JSON (nested too deeply)") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise SystemExit(f'{path} line {number}: needs a JSON object with a string "text"')
        if not isinstance(row.get("context"), str | None):
            raise SystemExit(f'{path} line {number}: "context" must be a string or null')
        if row.get("label") not in LABELS:
            raise SystemExit(
                f'{path} line {number}: "label" must be needs_reply or closing, not {row.get("label")!r}'
            )
        rows.append(row)
    return rows


def scores(gold: list[str], pred: list[str]) -> dict:
    tp = sum(g == p == "needs_reply" for g, p in zip(gold, pred, strict=True))
    fp = sum(g == "closing" and p == "needs_reply" for g, p in zip(gold, pred, strict=True))
    fn = sum(g == "needs_reply" and p == "closing" for g, p in zip(gold, pred, strict=True))
    tn = sum(g == p == "closing" for g, p in zip(gold, pred, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "n": len(gold),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "closing_recall": round(tn / (tn + fp) if tn + fp else 0.0, 4),
        "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn},
    }


def evaluate(rows: list[dict], batch_size: int) -> tuple[dict, dict, list[str]]:
    clf = default_classifier()
    pairs = [(r["text"], r.get("context")) for r in rows]
    pred: list[str] = []
    for i in range(0, len(pairs), batch_size):
        pred.extend(v.label for v in clf.classify(pairs[i : i + batch_size]))
    gold = [r["label"] for r in rows]
    base = [keyword_baseline(t, c) for t, c in pairs]
    return scores(gold, pred), scores(gold, base), pred


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity here)"


def throughput(rows: list[dict], batch_size: int, seconds: float) -> float:
    """Messages per second inside classify(), best of three rounds. Every staff message is
    made unique (a leading "#n" line, which changes no verdict) and the classifier's caches
    are cleared before each batch: only the repetition within a batch helps, as it helps
    the archive puller's batches (a long-running worker keeps more)."""
    clf = default_classifier()
    serial = 0
    best = 0.0
    for _ in range(3):
        spent, done = 0.0, 0
        while spent < seconds:
            batches = []
            for i in range(0, len(rows), batch_size):
                batch = []
                for r in rows[i : i + batch_size]:
                    serial += 1
                    ctx = r.get("context")
                    batch.append((r["text"], f"#{serial}\n{ctx}" if ctx else None))
                batches.append(batch)
            for batch in batches:
                clear_caches()
                t0 = time.perf_counter()
                clf.classify(batch)
                spent += time.perf_counter() - t0
                done += len(batch)
        best = max(best, done / spent)
    return best


def show(name: str, s: dict) -> None:
    c = s["confusion"]
    print(
        f"  {name:<22} n={s['n']:<5} needs_reply P={s['precision']:.3f} R={s['recall']:.3f} "
        f"F1={s['f1']:.3f}   closing recall={s['closing_recall']:.3f}   "
        f"(tp {c['tp']} fp {c['fp']} fn {c['fn']} tn {c['tn']})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, help="evaluate this JSONL instead of the shipped splits")
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum length of a timing round")
    ap.add_argument("--errors", type=int, default=0, help="list up to N mistakes")
    ap.add_argument("--show-heldout-errors", action="store_true")
    args = ap.parse_args()
    if args.batch_size < 1 or args.seconds <= 0:
        ap.error("--batch-size must be 1 or more and --seconds above 0")

    splits = (
        {"input": load(args.input)}
        if args.input
        else {s: load(DATA / f"{s}.jsonl") for s in ("dev", "heldout")}
    )
    results: dict[str, dict] = {}
    print("needs-reply classifier (positive class: needs_reply)")
    for split, rows in splits.items():
        ours, base, pred = evaluate(rows, args.batch_size)
        results[split] = {**ours, "baseline": base}
        print(f"[{split}]")
        show("rules (shipped)", ours)
        show("keyword baseline", base)
        if args.errors and (split != "heldout" or args.show_heldout_errors):
            wrong = [(r, p) for r, p in zip(rows, pred, strict=True) if r["label"] != p]
            for r, p in wrong[: args.errors]:
                print(f"    gold={r['label']:<11} got={p:<11} {r['text']!r:<30} ctx={r.get('context')!r}")

    all_rows = [r for rows in splits.values() for r in rows]
    where = pin_one_core()
    per_s = (
        throughput(all_rows, args.batch_size, args.seconds) if all_rows else 0.0
    )  # (none: nothing to time)
    print(f"throughput: {per_s:,.0f} messages/s on one core ({where}), batch size {args.batch_size}")

    top = results.get("input") or results["heldout"]
    out = {
        "split": "input" if args.input else "heldout",
        **{k: top[k] for k in ("precision", "recall", "f1", "closing_recall", "n")},
        "per_s": round(per_s),
        "batch_size": args.batch_size,
        "splits": results,
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()

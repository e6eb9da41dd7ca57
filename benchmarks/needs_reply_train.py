"""Train the needs-reply reader (siyu.insights.reader) and choose its threshold.

    .venv/bin/python benchmarks/needs_reply_train.py            # writes src/siyu/insights/reader_weights.json
    .venv/bin/python benchmarks/needs_reply_train.py --check    # cross-validated figures only

Rows: benchmarks/data/needs_reply/content.jsonl (written for this project; see the README
there). Every row the closing grammar leaves to its content trains the reader; the reader is
asked only about those after a staff message that asks nothing of the customer, and the
threshold is chosen on those, from out-of-fold chances (5 folds, by a hash of each row): the highest
that keeps needs-reply recall on them at --recall or more. Deterministic. The last line is
JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import zlib
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from siyu.insights import needs_reply as nr  # noqa: E402
from siyu.insights import reader as rd  # noqa: E402

DATA = ROOT / "benchmarks" / "data" / "needs_reply" / "content.jsonl"
FOLDS = 5


def reader_rows(path: Path) -> tuple[list[tuple[str, str, bool]], list[bool]]:
    """(normalised text, staff message kind, needs a reply) for every row the grammar leaves to
    its content, and for each whether the reader is asked about it (the threshold is chosen on
    those; the others, after a question or with no staff message, still teach it words)."""
    rows, asked = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        found = nr.reader_input(r["text"], r["context"])
        if found is not None:
            text, is_asked = found
            rows.append((text, nr.context_kind(r["context"]), r["label"] == "needs_reply"))
            asked.append(is_asked)
    return rows, asked


def fold_of(text: str, kind: str) -> int:
    """A row's fold, by its own content: rows moving in or out of the reader's care (a grammar
    change) leave every other row in its fold. (By position, one row fewer moved four fifths of
    the rest to another fold, and the threshold from 0.045 to 0.057.)"""
    return zlib.crc32(f"{kind}\t{text}".encode()) % FOLDS


def out_of_fold(rows: list[tuple[str, str, bool]], pool: Executor) -> list[float]:
    """Each row's chance from the reader trained on the other folds (trained at once, one
    process each, as far as the cores go: training is deterministic wherever it runs)."""
    chances = [0.0] * len(rows)
    folds = [fold_of(text, kind) for text, kind, _ in rows]
    trained = pool.map(
        rd.train, ([r for r, f in zip(rows, folds, strict=True) if f != k] for k in range(FOLDS))
    )
    for k, (weights, bias) in enumerate(trained):
        model = rd.Reader(weights, bias, 0.5)
        for i, (text, kind, _) in enumerate(rows):
            if folds[i] == k:
                chances[i] = model.needs_reply_chance(text, kind)
    return chances


def choose_threshold(needs: list[float], recall: float) -> float:
    """From the out-of-fold chances of the reply-needing rows the reader is asked about."""
    needs = sorted(needs)
    allowed = int(len(needs) * (1 - recall))  # needs-reply rows that may fall below it
    # Rounded down, so that the rounded threshold the weights file keeps still holds the recall.
    return math.floor(needs[allowed] * 10_000) / 10_000 if needs else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", type=Path, default=DATA)
    # 0.975 rather than the goal's 0.97: on real JD.com chats (a check set labelled on
    # 2026-12-03) 0.97 let four more reply-needing messages through than 0.975 and caught one
    # more closing; a customer left waiting costs more than a needless reminder.
    ap.add_argument("--recall", type=float, default=0.975, help="out-of-fold needs-reply recall to keep")
    ap.add_argument("--check", action="store_true", help="report only; write nothing")
    ap.add_argument("--output", type=Path, default=rd.WEIGHTS)
    args = ap.parse_args()
    if not 0 < args.recall <= 1:
        ap.error("--recall must be within (0, 1]")

    rows, asked = reader_rows(args.input)
    with ProcessPoolExecutor() as pool:
        shipping = None if args.check else pool.submit(rd.train, rows)  # alongside the folds
        chances = out_of_fold(rows, pool)
        shipped = shipping.result() if shipping else None
    closing = [c for c, (_, _, n), a in zip(chances, rows, asked, strict=True) if a and not n]
    needs = [c for c, (_, _, n), a in zip(chances, rows, asked, strict=True) if a and n]
    threshold = choose_threshold(needs, args.recall)
    report = {
        "rows_trained_on": len(rows),
        "rows_read": len(closing) + len(needs),
        "closing": len(closing),
        "needs_reply": len(needs),
        "threshold": round(threshold, 4),
        "oof_needs_reply_recall": round(sum(c >= threshold for c in needs) / max(len(needs), 1), 4),
        "oof_closing_recall": round(sum(c < threshold for c in closing) / max(len(closing), 1), 4),
    }
    if shipped is not None:
        weights, bias = shipped
        kept = {f: round(w, 4) for f, w in sorted(weights.items()) if abs(w) >= 0.002}
        args.output.write_text(
            json.dumps(
                {"bias": round(bias, 4), "threshold": round(threshold, 4), "weights": kept},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            + "\n",
            encoding="utf-8",
        )
        report["features"] = len(kept)
        report["written"] = str(args.output)
    print(
        f"{report['rows_read']} rows read ({report['closing']} closing); out of fold at threshold "
        f"{report['threshold']}: needs-reply recall {report['oof_needs_reply_recall']}, "
        f"closing recall {report['oof_closing_recall']}"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()

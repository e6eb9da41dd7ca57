"""A small linear model that reads the messages the closing grammar cannot: content of the
customer's own (谢谢 孩子叫我了先不聊了, 按你说的重新插了一下 灯绿了, 师傅手艺真好) against
look-alikes that need a reply (谢谢 杯子裂了一道缝, 谢谢医生 早上量了三十八度五, 放门口就行).

Logistic regression over the message's character 1-3-grams (as normalize() leaves it) and the
kind of staff message it answers. Weights live in reader_weights.json, trained by
`benchmarks/needs_reply_train.py` on `benchmarks/data/needs_reply/content.jsonl`, rows written
for this project (no public data). needs_reply.classify_one asks it only about messages the
grammar would send to "needs a reply" for their content, and only after a staff message that
asks nothing of the customer; a message it is not sure of keeps needing a reply.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

WEIGHTS = Path(__file__).with_name("reader_weights.json")
MAX_N = 3


def grams(text: str) -> list[str]:
    """The message's character 1..MAX_N-grams, with ^ and $ at its ends."""
    padded = f"^{text}$"
    return [padded[i : i + n] for n in range(1, MAX_N + 1) for i in range(len(padded) - n + 1)]


def features(text: str, kind: str) -> list[str]:
    return [*grams(text), f"kind={kind}"]


class Reader:
    def __init__(self, weights: dict[str, float], bias: float, threshold: float) -> None:
        if not 0 <= threshold <= 0.5:  # above 0.5 a "closing" would carry a needs-reply score
            raise ValueError(f"reader threshold must be within 0..0.5, not {threshold}")
        self.weights = weights
        self.bias = bias
        self.threshold = threshold  # below this chance of needing a reply, a message is closing
        self.threshold_logit = math.log(threshold / (1 - threshold)) if threshold > 0 else -math.inf
        # The most any staff message kind can pull towards closing: a message whose text alone
        # stays above the threshold by more needs a reply whatever it answers.
        self.lowest_kind = min([w for f, w in weights.items() if f.startswith("kind=")] + [0.0])

    @classmethod
    def load(cls, path: Path = WEIGHTS) -> Reader:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["weights"], data["bias"], data["threshold"])

    def text_logit(self, text: str) -> float:
        """The bias plus the weights of the message's n-grams (features() without the kind)."""
        # grams() without building its list, added in its order: the same float, sooner.
        padded = f"^{text}$"
        get = self.weights.get
        z = 0
        for n in range(1, MAX_N + 1):
            for i in range(len(padded) - n + 1):
                z += get(padded[i : i + n], 0.0)
        return self.bias + z

    def kind_weight(self, kind: str) -> float:
        return self.weights.get(f"kind={kind}", 0.0)

    def needs_reply_chance(self, text: str, kind: str) -> float:
        return chance(self.text_logit(text) + self.kind_weight(kind))


def chance(logit: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


@lru_cache(maxsize=1)
def reader() -> Reader:
    return Reader.load()


def train(
    rows: Iterable[tuple[str, str, bool]],
    epochs: int = 30,
    rate: float = 0.2,
    l2: float = 1e-3,
    min_rows: int = 2,
) -> tuple[dict[str, float], float]:
    """Fit weights and bias by AdaGrad on (normalised text, staff message kind, needs a reply).
    Features seen in fewer than min_rows rows are left out (they would only learn their row).
    Deterministic: rows are visited in the order given, every epoch."""
    data = [(features(text, kind), 1.0 if needs else 0.0) for text, kind, needs in rows]
    seen: dict[str, int] = {}
    for feats, _ in data:
        for f in set(feats):
            seen[f] = seen.get(f, 0) + 1
    # Each kept feature by a number, in the order first met: lists in place of dicts, the same
    # floats in the same order (the shipped weights are bit for bit what a dict gave), in a
    # half the time.
    number: dict[str, int] = {}
    rows_by_number = [
        ([number.setdefault(f, len(number)) for f in feats if seen[f] >= min_rows], y) for feats, y in data
    ]
    weights = [0.0] * len(number)
    squares = [1e-8] * len(number)
    bias, bias_square = 0.0, 1e-8
    sqrt = math.sqrt
    for _ in range(epochs):
        for feats, y in rows_by_number:
            p = chance(bias + sum([weights[f] for f in feats]))
            g = p - y
            bias_square += g * g
            bias -= rate * g / sqrt(bias_square)
            for f in feats:
                w = weights[f]
                gf = g + l2 * w
                square = squares[f] + gf * gf
                squares[f] = square
                weights[f] = w - rate * gf / sqrt(square)
    return dict(zip(number, weights, strict=True)), bias

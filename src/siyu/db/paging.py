"""One page of a list, as the read sides return it."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Page:
    items: list[dict]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

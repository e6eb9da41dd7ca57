"""What a form was drawn from, as a short token: the hash of the values it edits.

A form carries it; on submit the values stored now are hashed again, and a difference means
someone saved the row meanwhile (optimistic concurrency without a version column: a timestamp
on Siyu's clock can repeat when the clock is held or set back, the values cannot lie). A row
changed and changed back hashes as it was: nothing the submitter saw has been undone."""

from __future__ import annotations

import hashlib
import json
import re

ABSENT = "none"  # the version of a row that does not exist (a department policy to add)
_SHAPE = re.compile(r"[0-9a-f]{20}")


def version_of(values: dict | None) -> str:
    if values is None:
        return ABSENT
    text = json.dumps(values, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def well_formed(token: str) -> bool:
    """Whether `token` could be a version Siyu gave (version_of's shape): one that cannot was
    typed or mangled, and says nothing of who saved the row since."""
    return token == ABSENT or _SHAPE.fullmatch(token) is not None


# A form that carries such a version was not drawn by Siyu (a script, a tampered page): saving
# it would overwrite unseen whatever is stored, and refusing it as stale would blame whoever
# saved last.
FORM_NOT_DRAWN = (
    "这个表单带的版本不是 Siyu 给出的，没有保存：请重新打开本页再改 / the form's version is not one"
    " Siyu gave: nothing was saved; open the page again"
)

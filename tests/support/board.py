"""The SLA board's API answer with every waiting customer, as a client gets it by walking its
pages (a tenant shared by many tests may have more waiting than one page lists)."""

from __future__ import annotations

import httpx


def whole_board(client: httpx.Client, **params) -> dict:
    """GET /api/v1/sla/board with `params`: the first page's answer, its `waiting` those of
    every page."""
    pages = [client.get("/api/v1/sla/board", params={**params, "limit": 200})]
    while pages[-1].status_code == 200 and pages[-1].json()["next"]:
        after = pages[-1].json()["next"]
        pages.append(client.get("/api/v1/sla/board", params={**params, "limit": 200, "after": after}))
    for r in pages:
        assert r.status_code == 200, r.text
    board = pages[0].json()
    board["waiting"] = [row for r in pages for row in r.json()["waiting"]]
    return board

"""`siyu sync customers`: import every existing customer of every staff member.

Pages through `batch/get_by_user` (100 members a call) and upserts page by page, so a
re-run changes only what changed and an interrupted run resumes cheaply. Each page is
counted as written (`Database.wrote`), as archive ingest does: a tenant without 会话存档
gets its customers only from here and from callbacks, and SQLite would otherwise never have
statistics to plan their pages with. The writes run in threads (siyu.db.threads), not on the
event loop: whatever else runs on it must not wait on a database gone silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from siyu.customers import service
from siyu.db.threads import in_tenant


async def sync_customers(rt, tenant_id: int, progress: Callable[[int, int], None] = lambda done, total: None):
    contact = (await rt.clients.get(tenant_id)).contact
    groups = (await contact.get_corp_tag_list()).get("tag_group", [])
    await in_tenant(rt.db, tenant_id, service.mirror_tags, groups)
    userids = (await contact.get_follow_user_list()).get("follow_user", [])
    seen = changed = 0
    page: list[dict] = []

    async def flush() -> None:
        nonlocal changed
        changed += await in_tenant(rt.db, tenant_id, _import_page, page)
        # a follow each, and a customer and its timeline for the new ones; counted once they are
        # committed (it may ANALYZE, which must not wait on the page's own transaction)
        await asyncio.to_thread(rt.db.wrote, len(page))
        page.clear()

    async for item in contact.iter_customers_by_user(userids):
        page.append(item)
        seen += 1
        if len(page) >= 200:
            await flush()
            progress(seen, 0)
    if page:
        await flush()
    progress(seen, seen)
    return {"staff": len(userids), "relations": seen, "new": changed}


def _import_page(s, page: list[dict]) -> int:
    """Store a page of batch/get_by_user's customers; how many were new (a new customer or follow)."""
    pending = service.tags_pending(s)  # (asked once a page, not once a customer)
    return sum(
        service.import_customer(s, item["external_contact"], item["follow_info"], pending) for item in page
    )

"""`siyu sync customers`: import every existing customer of every staff member.

Pages through `batch/get_by_user` (100 members a call) and upserts page by page, so a
re-run changes only what changed and an interrupted run resumes cheaply. Each page is
counted as written (`Database.wrote`), as archive ingest does: a tenant without 会话存档
gets its customers only from here and from callbacks, and SQLite would otherwise never have
statistics to plan their pages with. The writes run in threads, not on the event loop:
whatever else runs on it must not wait on a database gone silent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from siyu.customers import service


async def sync_customers(rt, tenant_id: int, progress: Callable[[int, int], None] = lambda done, total: None):
    contact = (await rt.clients.get(tenant_id)).contact
    groups = (await contact.get_corp_tag_list()).get("tag_group", [])

    def save_tags() -> None:
        with rt.db.tenant_session(tenant_id) as s:
            service.upsert_tags(s, groups)

    await asyncio.to_thread(save_tags)
    userids = (await contact.get_follow_user_list()).get("follow_user", [])
    seen = changed = 0
    page: list[dict] = []

    def flush() -> None:
        nonlocal changed
        with rt.db.tenant_session(tenant_id) as s:
            for item in page:
                changed += service.import_customer(s, item["external_contact"], item["follow_info"])
        rt.db.wrote(len(page))  # a follow each, and a customer and its timeline for the new ones
        page.clear()

    async for item in contact.iter_customers_by_user(userids):
        page.append(item)
        seen += 1
        if len(page) >= 200:
            await asyncio.to_thread(flush)
            progress(seen, 0)
    if page:
        await asyncio.to_thread(flush)
    progress(seen, seen)
    return {"staff": len(userids), "relations": seen, "new": changed}

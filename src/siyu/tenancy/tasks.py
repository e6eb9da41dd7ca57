"""Staff sync: mirror WeCom's departments and members (`siyu sync staff`, and on a schedule).

Its reads and writes run in threads, not on the event loop: the worker's other loops share
it, and the schedule's read every 5 minutes during a database outage (a server gone silent
answers nothing until the connection's limits give up on it) had held back every card and
step due meanwhile."""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import datetime

from sqlalchemy import select

from siyu.db import utcnow
from siyu.db.threads import in_system, in_tenant
from siyu.tenancy import service
from siyu.tenancy.models import MemberRename, Tenant

log = logging.getLogger(__name__)


async def sync_staff(rt, tenant_id: int) -> dict:
    started = utcnow()  # the directory as WeCom had it then (on_directory_changed reads it so)
    departments, users = await service.fetch_directory((await rt.clients.get(tenant_id)).app)

    def save(s) -> dict:
        # the tenant's row held to the commit: two syncs save one after the other, and one whose
        # directory is older than what a sync begun after it saved keeps out of the way (a member
        # deleted meanwhile had come back as active)
        tenant = s.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
        # nor does one that may have read a member under the userid WeCom changed since: saved,
        # it had brought the old one back as a second member who left (the rename's own sync,
        # begun after it was recorded, saves the directory as it is now)
        renamed = select(MemberRename.id).where(MemberRename.recorded_at > started).limit(1)
        if (tenant.staff_synced_at is not None and tenant.staff_synced_at > started) or s.scalar(renamed):
            return {"departments": len(departments), "staff": len(users)}
        counts = service.save_directory(s, departments, users)
        tenant.staff_synced_at = started
        return counts

    return await in_tenant(rt.db, tenant_id, save)


async def sync_due_staff(rt) -> None:
    """Scheduled: every tenant whose directory is older than the interval (0 turns it off).
    A tenant whose sync fails (WeCom refuses its secret or IP, or is down) is logged and
    tried again next round; it must not keep the tenants after it from being synced."""
    if rt.settings.staff_sync_interval_s <= 0:
        return
    now = utcnow()
    tenants = await in_system(rt.db, _synced_at)
    for tenant_id, synced_at in tenants:
        if synced_at is None or (now - synced_at).total_seconds() > rt.settings.staff_sync_interval_s:
            try:
                await sync_staff(rt, tenant_id)
            except Exception as exc:  # noqa: BLE001 - one tenant's trouble must not stop the others
                why = exc.describe() if hasattr(exc, "describe") else f"{type(exc).__name__}: {exc}"
                log.warning("scheduled staff sync of tenant %s failed: %s", tenant_id, why)


async def sync_after(rt, tenant_id: int, changed_at: datetime) -> bool:
    """A change WeCom called back about (change_contact: a member or department created,
    changed or deleted): the directory synced again, unless a sync began after the change (a
    burst of them syncs once). True when it synced. A member deleted in WeCom had kept their
    sign-in, tokens and cards until the next scheduled sync, hours later."""
    # one at a time a tenant in this process: a worker runs a burst's events at once, and each
    # had found no sync after it and fetched the whole directory
    locks = _syncing.setdefault(asyncio.get_running_loop(), {})
    async with locks.setdefault(tenant_id, asyncio.Lock()):
        synced = await in_tenant(rt.db, tenant_id, lambda s: s.get(Tenant, tenant_id).staff_synced_at)
        if synced is not None and synced >= changed_at:
            return False
        await sync_staff(rt, tenant_id)
        return True


_syncing: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # by event loop, then tenant


def _synced_at(s) -> list:
    """Every tenant, with when its directory was last synced."""
    return [(t.id, t.staff_synced_at) for t in s.scalars(select(Tenant))]

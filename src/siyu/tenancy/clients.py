"""WeCom clients per tenant: one for the self-built app's secret, one for 客户联系."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from siyu.db import Database
from siyu.db.crypto import SecretBox
from siyu.tenancy.models import Tenant
from siyu.wecom.client import WeComClient, WeComClients

_GONE = object()  # a tenant the recheck did not find


@dataclass
class TenantWeCom:
    tenant_id: int
    corp_id: str
    agent_id: int
    pair: WeComClients  # both secrets' clients over one connection pool

    @property
    def app(self) -> WeComClient:
        """The app secret: contacts, app messages, OAuth."""
        return self.pair.app

    @property
    def contact(self) -> WeComClient:
        """The 客户联系 secret: external contacts, contact ways, tags, welcome messages."""
        return self.pair.contact


class TenantClients:
    """Clients are kept per tenant and per event loop: a connection pool belongs to the loop
    that opened it (the server's loop, or a CLI command's own). Credentials saved by another
    process (`siyu tenant add`, /setup served by another process than this worker) reach
    this one within RECHECK_S: each save stamps the tenant's `verified_at`."""

    RECHECK_S = 10.0

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        base_url: str,
        rate_limit_pause_s: float = 1.0,
        timeout_s: float = 10.0,
    ):
        self.db = db
        self.box = box
        self.base_url = base_url
        self.rate_limit_pause_s = rate_limit_pause_s
        self.timeout_s = timeout_s
        self._by_key: dict[tuple[int, int], TenantWeCom] = {}
        self._retired: list[tuple[int, TenantWeCom]] = []  # forgotten, to close on their loop
        self._made_from: dict[int, datetime | None] = {}  # tenant id: the verified_at its clients saw
        self._checked = time.monotonic()

    @staticmethod
    def _key(tenant_id: int) -> tuple[int, int]:
        return tenant_id, id(asyncio.get_running_loop())

    def for_tenant(self, tenant: Tenant) -> TenantWeCom:
        found = self._by_key.get(self._key(tenant.id))
        if found is None:
            pair = WeComClients(
                tenant.corp_id,
                self.box.open(tenant.agent_secret_sealed),
                self.box.open(tenant.contact_secret_sealed),
                base_url=self.base_url,
                freq_pause=self.rate_limit_pause_s,
                timeout=self.timeout_s,
            )
            found = TenantWeCom(tenant.id, tenant.corp_id, tenant.agent_id, pair)
            self._by_key[self._key(tenant.id)] = found
            self._made_from[tenant.id] = tenant.verified_at
        return found

    async def get(self, tenant_id: int) -> TenantWeCom:
        """The tenant's clients on the running loop. The database is read in a thread, never
        on the loop (its clients' first use, and the recheck): a read on it during an outage
        (a server gone silent answers nothing) held a worker's every loop, its cards and its
        stop among them, until the connection's limits gave up (80 s by default)."""
        await self._recheck()
        found = self._by_key.get(self._key(tenant_id))
        if found is not None:
            return found
        tenant = await asyncio.to_thread(self._tenant, tenant_id)
        return self.for_tenant(tenant)  # (another caller's, if it made them meanwhile)

    def _tenant(self, tenant_id: int) -> Tenant:
        with self.db.system_session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                raise LookupError(f"tenant {tenant_id} is gone")
            return tenant

    def forget(self, tenant_id: int) -> None:
        """After a tenant's credentials change: new clients from the next call on. The old
        ones may still be in use; they are closed with the rest of their loop's."""
        for key in [k for k in self._by_key if k[0] == tenant_id]:
            self._retired.append((key[1], self._by_key.pop(key)))
        self._made_from.pop(tenant_id, None)

    async def _recheck(self) -> None:
        """Forget the clients whose tenant's credentials were saved since they were made: one
        small read every RECHECK_S at most."""
        if time.monotonic() - self._checked < self.RECHECK_S or not self._made_from:
            return
        self._checked = time.monotonic()
        asked = dict(self._made_from)
        now = await asyncio.to_thread(self._verified_at, list(asked))
        for tenant_id, made_from in asked.items():
            # (clients made anew meanwhile were made from what the read saw, or later)
            if self._made_from.get(tenant_id) is made_from and now.get(tenant_id, _GONE) != made_from:
                self.forget(tenant_id)

    def _verified_at(self, tenant_ids: list[int]) -> dict[int, datetime | None]:
        with self.db.system_session() as s:
            return dict(
                s.execute(select(Tenant.id, Tenant.verified_at).where(Tenant.id.in_(tenant_ids))).all()
            )

    async def aclose(self) -> None:
        """Close the clients of the running loop."""
        loop_id = id(asyncio.get_running_loop())
        closing = [self._by_key.pop(k) for k in [k for k in self._by_key if k[1] == loop_id]]
        closing += [item for loop, item in self._retired if loop == loop_id]
        self._retired = [(loop, item) for loop, item in self._retired if loop != loop_id]
        for item in closing:
            await item.pair.aclose()

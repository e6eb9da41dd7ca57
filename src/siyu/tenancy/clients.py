"""WeCom clients per tenant: one for the self-built app's secret, one for 客户联系."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from siyu.db import Database
from siyu.db.crypto import SecretBox
from siyu.tenancy.models import Tenant
from siyu.wecom.client import WeComClient


@dataclass
class TenantWeCom:
    tenant_id: int
    corp_id: str
    agent_id: int
    app: WeComClient  # app secret: contacts, app messages, OAuth
    contact: WeComClient  # 客户联系 secret: external contacts, contact ways, tags, welcome


class TenantClients:
    """Clients are kept per tenant and per event loop: an httpx connection pool belongs to
    the loop that opened it (the server's loop, or a CLI command's own)."""

    def __init__(self, db: Database, box: SecretBox, base_url: str, rate_limit_pause_s: float = 1.0):
        self.db = db
        self.box = box
        self.base_url = base_url
        self.rate_limit_pause_s = rate_limit_pause_s
        self._by_key: dict[tuple[int, int], TenantWeCom] = {}

    @staticmethod
    def _key(tenant_id: int) -> tuple[int, int]:
        return tenant_id, id(asyncio.get_running_loop())

    def for_tenant(self, tenant: Tenant) -> TenantWeCom:
        found = self._by_key.get(self._key(tenant.id))
        if found is None:
            found = TenantWeCom(
                tenant.id,
                tenant.corp_id,
                tenant.agent_id,
                WeComClient(
                    tenant.corp_id, self.box.open(tenant.agent_secret_sealed), base_url=self.base_url
                ),
                WeComClient(
                    tenant.corp_id, self.box.open(tenant.contact_secret_sealed), base_url=self.base_url
                ),
            )
            self._by_key[self._key(tenant.id)] = found
        return found

    def _client(self, corp_id: str, sealed_secret: str) -> WeComClient:
        return WeComClient(
            corp_id, self.box.open(sealed_secret), base_url=self.base_url, freq_pause=self.rate_limit_pause_s
        )

    def get(self, tenant_id: int) -> TenantWeCom:
        found = self._by_key.get(self._key(tenant_id))
        if found is not None:
            return found
        with self.db.system_session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                raise LookupError(f"tenant {tenant_id} is gone")
            return self.for_tenant(tenant)

    def forget(self, tenant_id: int) -> None:
        """After a tenant's credentials change."""
        for key in [k for k in self._by_key if k[0] == tenant_id]:
            self._by_key.pop(key)

    async def aclose(self) -> None:
        """Close the clients of the running loop."""
        loop_id = id(asyncio.get_running_loop())
        for key in [k for k in self._by_key if k[1] == loop_id]:
            item = self._by_key.pop(key)
            await item.app.aclose()
            await item.contact.aclose()

"""WeCom clients per tenant: one for the self-built app's secret, one for 客户联系."""

from __future__ import annotations

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
    def __init__(self, db: Database, box: SecretBox, base_url: str):
        self.db = db
        self.box = box
        self.base_url = base_url
        self._by_tenant: dict[int, TenantWeCom] = {}

    def for_tenant(self, tenant: Tenant) -> TenantWeCom:
        found = self._by_tenant.get(tenant.id)
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
            self._by_tenant[tenant.id] = found
        return found

    def get(self, tenant_id: int) -> TenantWeCom:
        found = self._by_tenant.get(tenant_id)
        if found is not None:
            return found
        with self.db.system_session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                raise LookupError(f"tenant {tenant_id} is gone")
            return self.for_tenant(tenant)

    def forget(self, tenant_id: int) -> None:
        self._by_tenant.pop(tenant_id, None)

    async def aclose(self) -> None:
        for item in self._by_tenant.values():
            await item.app.aclose()
            await item.contact.aclose()
        self._by_tenant.clear()

"""A WeCom emulator on a real port whose directory the tests change as WeCom's admin console
would (a department deleted, a member's userid changed), Siyu's tenant connected to it, and
optionally Siyu itself served (callbacks flowing, the embedded worker processing them)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import httpx

from siyu.app import create_app
from siyu.emulator.app import create_emulator_app
from siyu.runtime import Runtime
from siyu.tenancy.tasks import sync_staff
from tests.support.servers import free_port, serve
from tests.support.stack import connect_corp, forget_pending


@dataclass
class Directory:
    emu: httpx.Client
    state: object  # the emulator's EmulatorState
    corp: dict
    rt: Runtime
    tenant_id: int
    slug: str
    siyu: str = ""

    @property
    def corp_id(self) -> str:
        return self.corp["corp_id"]

    @property
    def wecom(self):
        """The emulated corp (WeCom's side)."""
        return self.state.corps[self.corp_id]

    def control(self, method: str, path: str, **kw):
        r = self.emu.request(method, f"/_emulator{path}", **kw)
        assert r.status_code < 300, r.text
        return r.json()

    def sync(self) -> dict:
        return asyncio.run(sync_staff(self.rt, self.tenant_id))

    def session(self):
        return self.rt.db.tenant_session(self.tenant_id)


@contextlib.contextmanager
def directory(settings, db, departments, staff, serve_siyu=False):
    emulator_port, siyu_port = free_port(), free_port()
    emu_url = f"http://127.0.0.1:{emulator_port}"
    emu_app = create_emulator_app(public_url=emu_url, retry_delay_s=0.05)
    with serve(emu_app, port=emulator_port), httpx.Client(base_url=emu_url, timeout=30) as emu:
        r = emu.post(
            "/_emulator/corps", json={"name": "示例科技", "departments": departments, "staff": staff}
        )
        assert r.status_code == 201, r.text
        corp = r.json()
        settings = settings.model_copy(
            update={
                "public_url": f"http://127.0.0.1:{siyu_port}",
                "wecom_base_url": emu_url,
                "wecom_oauth_url": emu_url,
                "wecom_login_url": emu_url,
                "embedded_worker": serve_siyu,
            }
        )
        rt = Runtime.create(settings, db)
        tenant_id, slug = connect_corp(rt, corp, "示例科技")
        d = Directory(emu, emu_app.state.emulator.state, corp, rt, tenant_id, slug)
        try:
            if not serve_siyu:
                yield d
                return
            with serve(create_app(settings, rt), port=siyu_port) as siyu_url:
                d.siyu = siyu_url
                r = emu.patch(
                    f"/_emulator/corps/{corp['corp_id']}", json={"callback_url": settings.callback_url(slug)}
                )
                assert r.status_code == 200, r.text
                yield d
        finally:
            forget_pending(db, tenant_id)

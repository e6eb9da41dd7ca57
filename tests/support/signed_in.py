"""A person of a tenant, signed in, calling Siyu's app in the test's own process: the pages and
the API at the runtime's clock (rt.now(), which the test moves), not at the machine's."""

from __future__ import annotations

import asyncio
import secrets

import httpx

from siyu.app import create_app
from siyu.runtime import Runtime
from siyu.tenancy.service import add_person
from siyu.web.auth import SESSION_COOKIE, start_session


class SignedIn:
    """`call(method, path, form=None, **kw)`: a form is posted with the person's CSRF token as
    the page's form carries it; otherwise the token goes in the header, as an API client sends
    it; `kw` (json=, params=) go to httpx."""

    def __init__(self, rt: Runtime, tenant_id: int, role: str = "admin", staff: str | None = None, name=""):
        with rt.db.tenant_session(tenant_id) as s:
            person = add_person(s, "t-" + secrets.token_hex(6), name or "测试", role, staff_userid=staff)
            self.token, row = start_session(s, rt, person)
            self.csrf = row.csrf_token
        self.app = create_app(rt.settings, rt)

    def __call__(self, method: str, path: str, form: dict | None = None, **kw) -> httpx.Response:
        if form is not None:
            kw["data"] = {"csrf_token": self.csrf, **form}
        else:
            kw["headers"] = {"X-CSRF-Token": self.csrf, **kw.get("headers", {})}

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://siyu.test") as client:
                return await client.request(method, path, cookies={SESSION_COOKIE: self.token}, **kw)

        return asyncio.run(go())

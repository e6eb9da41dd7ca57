"""The pending WeCom sign-ins cookie, edited by hand (or by a browser extension, a script):
an expiry of more digits than int() takes answered a 500, not the page 登录已过期."""

from __future__ import annotations

import httpx


def test_a_pending_sign_in_whose_expiry_has_too_many_digits_is_an_expired_sign_in(siyu, world):
    state = "ab" * 16
    edited = f"siyu_oauth={world.a.slug}|{state}|%2F|{'9' * 4400}"
    with httpx.Client(base_url=siyu, timeout=10) as client:
        try:
            r = client.get(
                f"/auth/wecom/{world.a.slug}/callback",
                params={"code": "x", "state": state},
                headers={"Cookie": edited},
            )
            got = f"{r.status_code} {'登录已过期' if '登录已过期' in r.text else r.text[:80]!r}"
        except httpx.TransportError as exc:  # the server gave up on the request
            got = f"no answer ({exc!r})"
    assert got.startswith("400") and "登录已过期" in got, f"an edited siyu_oauth cookie answered {got}"

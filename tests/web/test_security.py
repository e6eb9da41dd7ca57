"""What a browser is told about Siyu's answers, so that another site cannot misuse them."""

from __future__ import annotations

import httpx


def _framing_refused(r: httpx.Response) -> None:
    assert r.headers.get("x-frame-options") == "DENY", (r.url, r.headers)
    assert "frame-ancestors 'none'" in r.headers.get("content-security-policy", ""), r.url
    assert r.headers.get("x-content-type-options") == "nosniff", r.url


def test_no_page_can_be_framed_by_another_site_nor_sniffed(siyu, as_role):
    """Without these any site could show the signed-in setup page in an invisible frame under
    its own button, and have an admin click 停用 or 重新生成 (clickjacking)."""
    admin = as_role("admin")
    for path in ("/", "/setup", "/setup/archive", "/channels", "/conversations", "/sla", "/customers/0"):
        _framing_refused(admin.get(path))
    _framing_refused(admin.get("/api/v1/me"))
    _framing_refused(admin.get("/static/siyu.js"))
    _framing_refused(admin.post("/api/v1/channels", json={}))  # a refusal too (CSRF)
    with httpx.Client(base_url=siyu) as anonymous:
        _framing_refused(anonymous.get("/login"))
        _framing_refused(anonymous.get("/auth/wecom/no-such-tenant"))
        _framing_refused(anonymous.post("/api/v1/channels", content=b"x" * (2 * 1024 * 1024)))  # 413


def test_no_signed_in_answer_is_kept_by_the_browser(siyu, as_role):
    """Pages and the API hold customers' names, numbers and chats: a browser must not keep
    them, so that Back after 退出 on a shared computer shows no customer. Style and script
    are kept (they hold nothing of anyone's)."""
    admin = as_role("admin")
    for path in ("/", "/customers", "/conversations", "/sla", "/customers/0", "/api/v1/customers"):
        r = admin.get(path)
        assert r.headers.get("cache-control") == "no-store", (path, r.headers)
    assert "no-store" not in admin.get("/static/siyu.css").headers.get("cache-control", "")


def test_style_and_script_are_asked_for_by_their_contents_and_kept_while_unchanged(siyu, as_role):
    """Pages name style and script by a digest of what they hold: a browser keeps them as long
    as that address lasts and fetches them anew the moment an upgrade changes them. Named by the
    package version, which stayed 0.1.0 through every change, old style lingered after upgrades."""
    import hashlib
    import re
    from pathlib import Path

    import siyu.web

    static = Path(siyu.web.__file__).parent / "static"
    digest = hashlib.sha256((static / "siyu.css").read_bytes() + (static / "siyu.js").read_bytes())
    admin = as_role("admin")
    page = admin.get("/customers").text
    css = re.search(r'href="(/static/siyu\.css\?v=([0-9a-f]+))"', page)
    assert css and css[2] == digest.hexdigest()[:12], css
    assert f'src="/static/siyu.js?v={css[2]}"' in page
    kept = admin.get(css[1])
    assert kept.status_code == 200 and "max-age=31536000" in kept.headers["cache-control"]
    plain = admin.get("/static/siyu.css")  # no digest, or an old one: asked again each time
    assert plain.headers["cache-control"] == "no-cache" and plain.headers.get("etag")
    assert admin.get("/static/siyu.css?v=0.1.0").headers["cache-control"] == "no-cache"


def test_the_footer_still_names_siyus_version(as_role):
    """The page footer said 私域 Siyu 0.1.0, the version running; once style and script were named
    by their digest it said 私域 Siyu 3f9c2a1b7e4d, the digest, and an operator asked which release
    runs could no longer read it there."""
    from siyu import __version__

    admin = as_role("admin")
    # the form pages pass a `version` of their own (what the form was drawn from): it said
    # 私域 Siyu 7603e046197cfc9757cc on the policy page and 私域 Siyu none on a department's
    for path in ("/customers", "/sla/policy", "/channels/new", "/channels"):
        page = admin.get(path).text
        assert f'<footer class="foot">私域 Siyu {__version__}' in page, path

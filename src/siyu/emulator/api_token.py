"""gettoken (REFERENCE.md 3.1): one token per (corp, secret), the same token while it is valid."""

from __future__ import annotations

from .cgi import Ctx, api
from .errors import WeComError
from .state import Token, rand_id


@api("gettoken", methods=("GET",), needs_token=False)
async def gettoken(ctx: Ctx) -> dict:
    corp = ctx.corp
    if corp is None:
        raise WeComError(40013)
    secret = ctx.query.get("corpsecret", "")
    if secret not in corp.secrets:
        raise WeComError(40001)
    state = ctx.state
    ttl = state.token_ttl(corp)
    now = state.now()
    current = state.tokens.get(state.token_by_secret.get((corp.corp_id, secret), ""))
    if current is not None and current.expires_at > now:
        return {"access_token": current.token, "expires_in": int(current.expires_at - now)}
    token = Token(rand_id(n=64), corp.corp_id, secret, now + ttl)
    state.tokens[token.token] = token
    state.token_by_secret[(corp.corp_id, secret)] = token.token
    return {"access_token": token.token, "expires_in": ttl}

"""The WeCom emulator as an ASGI app: `create_emulator_app()`; `main()` runs it under uvicorn.

    from siyu.emulator import create_emulator_app
    app = create_emulator_app(retry_delay_s=0.05, welcome_code_ttl_s=20)

WeCom's server API is served under /cgi-bin/ (cgi.py, the api_*.py modules and archive.py), the OAuth
browser pages at /connect/oauth2/authorize and /wwlogin/sso/login (oauth.py), and the
control API under /_emulator/ (control.py documents each route).
"""

from __future__ import annotations

import contextlib

from fastapi import FastAPI, Request

# The api_* modules register their handlers with cgi.api when imported.
from . import (  # noqa: F401
    api_contacts,
    api_external,
    api_media,
    api_message,
    api_tags,
    api_token,
    api_ways,
    api_welcome,
    archive,
    cgi,
    control,
    oauth,
    voice,
)
from .delivery import Deliverer
from .faults import Faults
from .state import EmulatorConfig, EmulatorState


class Emulator:
    """Everything one emulator instance holds: state, faults, callback deliveries."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.state = EmulatorState(config)
        self.faults = Faults()
        self.deliverer = Deliverer(config)

    def public_url(self, request: Request) -> str:
        return (self.config.public_url or str(request.base_url)).rstrip("/")


def create_emulator_app(config: EmulatorConfig | None = None, **overrides) -> FastAPI:
    """A fresh emulator. `overrides` set EmulatorConfig fields, e.g. retry_delay_s=0.05."""
    config = config or EmulatorConfig()
    for name, value in overrides.items():
        if not hasattr(config, name):
            raise TypeError(f"unknown emulator setting {name}")
        setattr(config, name, value)
    emu = Emulator(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await archive.close(emu)
        await emu.deliverer.close()

    app = FastAPI(title="WeCom emulator (Siyu)", lifespan=lifespan)
    app.state.emulator = emu
    # WeCom's API first: it takes nearly every request, and routes are tried in order (no
    # other router serves a /cgi-bin path)
    app.include_router(cgi.build_router(emu))
    app.include_router(control.build_router(emu))
    app.include_router(archive.build_router(emu))
    app.include_router(oauth.build_router(emu))
    app.include_router(voice.build_router(emu))
    return app


def main(host: str = "127.0.0.1", port: int = 8081, log_level: str = "info", **overrides) -> None:
    """Run the emulator under uvicorn (`siyu emulator --port`)."""
    import uvicorn

    uvicorn.run(create_emulator_app(**overrides), host=host, port=port, log_level=log_level)


if __name__ == "__main__":  # python -m siyu.emulator.app
    main()

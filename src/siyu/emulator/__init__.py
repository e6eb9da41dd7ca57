"""A WeCom (企业微信) server emulator: same /cgi-bin API, its own in-memory state, encrypted
callbacks, and a control API under /_emulator/. Never imported by Siyu's core."""

from .app import create_emulator_app, main
from .state import EmulatorConfig

__all__ = ["EmulatorConfig", "create_emulator_app", "main"]

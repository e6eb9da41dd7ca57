"""Secrets at rest: tenants' WeCom secrets are stored encrypted (Fernet) with the settings key."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    def __init__(self, key: str):
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest()))
        self._mac_key = hashlib.sha256(b"siyu-mac:" + key.encode()).digest()  # (not the sealing key)

    def sign(self, purpose: str, value: str) -> str:
        """A tag only this server's key makes for `value`, used for `purpose`."""
        mac = hmac.new(self._mac_key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:18]).decode()

    def seal(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("secret cannot be decrypted: SIYU_SECRET_KEY changed?") from exc


def masked(secret: str) -> str:
    """What the UI shows of a secret: enough to recognise it, never enough to use it."""
    if len(secret) <= 8:
        return "••••"
    return f"{secret[:3]}••••{secret[-3:]}"

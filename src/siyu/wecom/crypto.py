"""WeCom callback crypto (the WXBizMsgCrypt scheme, REFERENCE.md section 1.2).

Signature: sha1 hex over the sorted concatenation of token, timestamp, nonce and the
encrypted text. Body: AES-256-CBC with key = b64decode(EncodingAESKey + "="), IV = key[:16],
plaintext = 16 random bytes | uint32 big-endian length | message | receive id, PKCS#7
padded to a multiple of 32 bytes (not AES's 16).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CallbackCryptoError(Exception):
    """A callback that cannot be trusted: bad signature, undecryptable body, wrong corp."""


class InvalidSignature(CallbackCryptoError):
    pass


class DecryptError(CallbackCryptoError):
    pass


class WrongReceiver(CallbackCryptoError):
    pass


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    parts = sorted([token, timestamp, nonce, encrypted])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def _pad(data: bytes) -> bytes:
    n = BLOCK - len(data) % BLOCK
    return data + bytes([n]) * n


def _unpad(data: bytes) -> bytes:
    if not data:
        raise DecryptError("empty plaintext")
    n = data[-1]
    if not 1 <= n <= BLOCK or n > len(data):
        raise DecryptError("bad padding")
    return data[:-n]


def new_encoding_aes_key() -> str:
    """A fresh 43-character EncodingAESKey, as WeCom's console generates one."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    while True:
        key = "".join(secrets.choice(alphabet) for _ in range(43))
        try:
            base64.b64decode(key + "=", validate=True)
            return key
        except binascii.Error:  # pragma: no cover - every 43-char alnum key decodes
            continue


class WeComCrypto:
    """Signs, verifies, encrypts and decrypts callback payloads for one corp."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str):
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            self.key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error as exc:
            raise ValueError("EncodingAESKey is not valid base64") from exc
        self.token = token
        self.receive_id = receive_id
        self._algo = algorithms.AES(self.key)
        self._iv = self.key[:16]

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)

    def check_signature(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        expected = self.sign(timestamp, nonce, encrypted)
        # as bytes: compare_digest refuses non-ASCII str, and anything may come in the query
        given = (msg_signature or "").lower().encode(errors="surrogatepass")
        if not hmac.compare_digest(expected.encode(), given):
            raise InvalidSignature("msg_signature does not match")

    def encrypt(self, message: str | bytes, random_prefix: bytes | None = None) -> str:
        body = message.encode() if isinstance(message, str) else message
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        enc = Cipher(self._algo, modes.CBC(self._iv)).encryptor()
        return base64.b64encode(enc.update(_pad(plain)) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        """The message bytes inside `encrypted`, after checking the receive id."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecryptError("encrypted text is not base64") from exc
        if not raw or len(raw) % 16:
            raise DecryptError("ciphertext length is not a multiple of the AES block")
        dec = Cipher(self._algo, modes.CBC(self._iv)).decryptor()
        plain = _unpad(dec.update(raw) + dec.finalize())
        if len(plain) < 20:
            raise DecryptError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise DecryptError("message length exceeds plaintext")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if receive_id.decode(errors="replace") != self.receive_id:
            raise WrongReceiver("receive id does not match this corp")
        return message

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """The URL-verification answer: the decrypted echostr, exactly."""
        self.check_signature(msg_signature, timestamp, nonce, echostr)
        return self.decrypt(echostr).decode()

    def decrypt_callback(self, encrypted: str, msg_signature: str, timestamp: str, nonce: str) -> bytes:
        self.check_signature(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def encrypt_callback(
        self, inner_xml: str, agent_id: str | int = "", timestamp: str | None = None, nonce: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """The POST body and query parameters WeCom sends to a callback URL."""
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or str(secrets.randbelow(10**10))
        encrypted = self.encrypt(inner_xml)
        body = (
            f"<xml><ToUserName><![CDATA[{self.receive_id}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
        )
        params = {
            "msg_signature": self.sign(timestamp, nonce, encrypted),
            "timestamp": timestamp,
            "nonce": nonce,
        }
        return body, params

"""Which is to blame when one message of a key version fails: the key, or the message."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from siyu.wecom.archive import ChatDataPipeline, generate_key_pair
from siyu.wecom.finance_sdk import ArchiveError


def _item(seq: int, public_pem: str, damaged: bool = False) -> dict:
    key = serialization.load_pem_public_key(public_pem.encode())
    random_key = f"randomkey{seq:023d}"
    cipher = bytearray(key.encrypt(random_key.encode(), padding.PKCS1v15()))
    if damaged:
        cipher[10] ^= 0xFF
    message = {
        "msgid": f"m{seq}",
        "action": "send",
        "from": "wmCUSTOMER",
        "tolist": ["zhangsan"],
        "roomid": "",
        "msgtime": 1764036000000 + seq,
        "msgtype": "text",
        "text": {"content": f"第{seq}条"},
    }
    return {
        "seq": seq,
        "msgid": f"m{seq}",
        "publickey_ver": 1,
        "encrypt_random_key": base64.b64encode(bytes(cipher)).decode(),
        "encrypt_chat_msg": json.dumps({"k": random_key, "m": message}),
    }


def _decrypt(random_key: str, chat_msg: str) -> str:  # the SDK's DecryptData at its boundary
    sealed = json.loads(chat_msg)
    if sealed["k"] != random_key:
        raise ArchiveError(10006, "decrypt failed")
    return json.dumps(sealed["m"], ensure_ascii=False)


def test_a_damaged_first_message_of_a_new_key_is_not_blamed_on_the_key():
    """The admin generated key pair 1 and pasted its public half into WeCom. The first message
    WeCom sealed with it has a damaged encrypt_random_key; the 999 after it decrypt with the same
    key. The pull says the key pair is wrong (upload that key pair), so the admin removes the right
    key (it has decrypted nothing yet, so the page lets them) and makes a new one, which can decrypt
    nothing WeCom sealed before: README says a message whose key decrypts others is called damaged."""
    private_pem, public_pem = generate_key_pair()
    items = [_item(1, public_pem, damaged=True)] + [_item(s, public_pem) for s in range(2, 6)]
    pipeline = ChatDataPipeline(lambda after, limit: items, _decrypt, {1: private_pem})
    with pytest.raises(ArchiveError) as err:
        asyncio.run(pipeline.fetch(0, 1000))
    assert err.value.seq == 1
    assert "damaged" in str(err.value) and "upload that key pair" not in str(err.value), (
        f"a damaged message is blamed on a key that decrypts the rest of the batch: {err.value}"
    )

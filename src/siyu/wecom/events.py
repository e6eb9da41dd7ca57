"""Callback XML: the encrypted envelope and the decrypted event (REFERENCE.md sections 1.4, 2)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring


class MalformedXML(ValueError):
    """A body that is not the XML WeCom sends."""


def _parse(xml: str | bytes):
    try:
        root = fromstring(xml)
    except (ParseError, DefusedXmlException) as exc:
        raise MalformedXML(f"not well-formed XML: {exc}") from exc
    except (ValueError, LookupError) as exc:  # a declared encoding expat cannot read (GBK, made up)
        raise MalformedXML(f"XML in an encoding WeCom does not send (UTF-8 only): {exc}") from exc
    if root.tag != "xml":
        raise MalformedXML("root element is not <xml>")
    return root


# WeCom's envelope, exactly as it sends it: read with one regular expression instead of an
# XML parser on the hot path. Anything else goes through defusedxml. The Encrypt text is
# covered by the signature, and the decrypted event is always parsed with defusedxml. The
# expression looks for the element alone (the <xml> around it is checked as plain bytes):
# one that also spanned the rest of the body took time growing with the square of its size,
# seconds of the event loop for an unsigned 256 KB body of repeated elements.
_ENCRYPT = re.compile(rb"<Encrypt><!\[CDATA\[([A-Za-z0-9+/=]+)\]\]></Encrypt>")


def envelope_encrypt(body: str | bytes) -> str:
    """The `Encrypt` text of a POSTed callback envelope."""
    raw = body.encode() if isinstance(body, str) else body
    whole = raw.strip()
    match = _ENCRYPT.search(whole) if whole.startswith(b"<xml>") and whole.endswith(b"</xml>") else None
    if match:
        return match.group(1).decode()
    node = _parse(raw).find("Encrypt")
    if node is None or not (node.text or "").strip():
        raise MalformedXML("envelope has no Encrypt element")
    return node.text.strip()


@dataclass(frozen=True)
class CallbackEvent:
    """One decrypted callback. `fields` keeps every element, so nothing WeCom adds is lost."""

    fields: dict[str, str] = field(default_factory=dict)
    digest: str = ""

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    @property
    def event(self) -> str:
        return self.get("Event")

    @property
    def change_type(self) -> str:
        return self.get("ChangeType")

    @property
    def create_time(self) -> int:
        try:
            return int(self.get("CreateTime", "0"))
        except ValueError:
            return 0

    @property
    def kind(self) -> str:
        """`event/change_type` for an event, e.g. `change_external_contact/add_external_contact`;
        `message/<MsgType>` for what a member wrote to the app (so that a message can never be
        taken for an event: MsgType msgaudit_notify with no Event is not WeCom's notify)."""
        msgtype = self.get("MsgType")
        if msgtype and msgtype != "event":
            return f"message/{msgtype}"
        return f"{self.event}/{self.change_type}" if self.change_type else self.event or msgtype


def parse_event(inner_xml: bytes | str) -> CallbackEvent:
    """Parse the decrypted inner XML. The digest (sha256 of the exact bytes) is the
    idempotency key: WeCom's retries resend identical XML, two customers never do."""
    raw = inner_xml.encode() if isinstance(inner_xml, str) else inner_xml
    root = _parse(raw)
    fields: dict[str, str] = {}
    for child in root:
        if len(child):
            fields[child.tag] = "|".join((item.text or "").strip() for item in child)
        else:
            fields[child.tag] = (child.text or "").strip()
    if not fields.get("MsgType") and not fields.get("Event"):
        raise MalformedXML("event has neither MsgType nor Event")
    return CallbackEvent(fields=fields, digest=hashlib.sha256(raw).hexdigest())


def event_xml(fields: dict[str, str | int | list[str]]) -> str:
    """Inner event XML in WeCom's style: CDATA for text, bare integers for numbers, a list as
    its <Item>s (MemChangeList)."""
    parts = ["<xml>"]
    for name, value in fields.items():
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{item}]]></Item>" for item in value)
            parts.append(f"<{name}>{items}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    parts.append("</xml>")
    return "".join(parts)

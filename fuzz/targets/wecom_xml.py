"""The XML parsers behind the WeCom callback, on arbitrary bytes.

Contract of :func:`check`: ``bot.crypto.parse_xml``, ``parse_wecom_envelope`` and the
decrypted-message normaliser ``bot.wecom.normalise`` raise only ``CallbackRejected`` and
return within 2 s; entity declarations (billion laughs, quadratic blow-up, external
entities) are refused, so a parsed tree never holds more text than the input had;
``bot.wecom.parse_chat_record`` on any message text never raises.

Input: the XML document, as bytes (the envelope) and, when it is UTF-8, as text (the
decrypted message, which the crypto layer hands over as ``str``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree.ElementTree import Element

from bot.crypto import CallbackRejected, parse_wecom_envelope, parse_xml
from bot.wecom import normalise, parse_chat_record
from fuzz.framing import ContractViolation, within

NOW = datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
AGENT_ID = 1000002


def tree_chars(root: Element) -> int:
    """Characters held by a parsed tree: tags, attributes, text and tails."""
    total = 0
    for node in root.iter():
        total += len(str(node.tag)) + len(node.text or "") + len(node.tail or "")
        total += sum(len(k) + len(v) for k, v in node.attrib.items())
    return total


def _parsed(document: bytes | str) -> Element | None:
    try:
        root = parse_xml(document)
    except CallbackRejected:
        return None
    # Character references (&#x10FFFF;) and the predefined entities only ever shrink the
    # text, so more characters than the input had means an entity was expanded.
    if tree_chars(root) > len(document):
        raise ContractViolation(f"parsed tree holds {tree_chars(root)} characters from a {len(document)}-byte input")
    return root


def _check(data: bytes) -> None:
    _parsed(data)
    try:
        parse_wecom_envelope(data)
    except CallbackRejected:
        pass
    try:
        document = data.decode("utf-8")
    except UnicodeDecodeError:
        return
    root = _parsed(document)
    if root is not None and "<!ENTITY" in document:
        raise ContractViolation("a document declaring entities was parsed")
    try:
        parsed = normalise(document, NOW, AGENT_ID)
    except CallbackRejected:
        pass
    else:
        if parsed.key is not None and len(parsed.key) > 255:
            raise ContractViolation(f"inbox key of {len(parsed.key)} characters (the column holds 255)")
    if root is not None:
        for node in root.iter():
            parse_chat_record(node.text or "")


def check(data: bytes) -> None:
    """The contract in the module docstring, for one input."""
    with within(2.0, "wecom xml"):
        _check(data)

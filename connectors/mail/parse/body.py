"""Body text: transfer-encoding decoding (lenient base64, uuencode), format=flowed, HTML to text."""

from __future__ import annotations

import binascii
import re

import nh3
from inscriptis import get_text

from connectors.mail.parse.headers import _B64_JUNK_RE, _b64_lenient

# --------------------------------------------------------- transfer-encoding decoding


def _uudecode(data: bytes) -> tuple[bytes, str]:
    """Decode uuencoded data; returns (payload, file name from the 'begin' line)."""
    out = bytearray()
    name = ""
    started = False
    for line in data.splitlines():
        if not started:
            if line.startswith(b"begin"):
                parts = line.split(None, 2)
                if len(parts) == 3:
                    name = parts[2].decode("utf-8", "replace").strip()
                started = True
            continue
        if line.strip() in (b"end", b"`"):
            if line.strip() == b"end":
                break
            continue
        if not line:
            continue
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            # Same repair as the stdlib uu module: trust the length byte.
            length = (((line[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(line[:length])
            except binascii.Error:
                continue
    return bytes(out), name


_B64_ALPHABET_RE = re.compile(rb"[A-Za-z0-9+/=]")


def _decode_transfer(
    data: bytes, cte: str, *, is_text: bool, where: str, defects: list[str]
) -> bytes:
    cte = cte.strip().lower()
    if cte in ("", "7bit", "8bit", "binary"):
        return data
    if cte == "base64":
        compact = b"".join(data.split())
        unpadded = compact.rstrip(b"=")
        if len(unpadded) % 4 != 1 and not _B64_JUNK_RE.search(unpadded):
            # Clean base64, at most missing its padding (common and harmless).
            try:
                return binascii.a2b_base64(unpadded + b"=" * (-len(unpadded) % 4))
            except (binascii.Error, ValueError):
                pass
        junk = len(compact) - len(_B64_ALPHABET_RE.findall(compact))
        if is_text and compact and (junk * 20 > len(compact) or len(unpadded) % 4 == 1):
            defects.append(f"{where}: declared base64 but is not; read as literal text")
            return data
        defects.append(f"{where}: damaged base64 decoded leniently")
        return _b64_lenient(compact)
    if cte in ("quoted-printable", "quotedprintable"):
        return binascii.a2b_qp(data)
    if cte in ("x-uuencode", "uuencode", "x-uue", "uue"):
        payload, _name = _uudecode(data)
        return payload
    defects.append(f"{where}: unknown Content-Transfer-Encoding {cte!r}; read as is")
    return data


# ------------------------------------------------------------------------ body text

_TAG_RE = re.compile(r"<[^>]*>")
_CID_RE = re.compile(r"""cid:([^"'\s>)]+)""", re.IGNORECASE)
# cid: stays so the web inbox can show inline images; the document head (title, style,
# scripts) is dropped with its content rather than leaking into the text.
_CLEANER = nh3.Cleaner(
    url_schemes=set(nh3.ALLOWED_URL_SCHEMES) | {"cid"},
    clean_content_tags={"script", "style", "title", "head"},
)


def _normalise_newlines(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.lstrip("\ufeff")


def _unflow(text: str, delsp: bool) -> str:
    """Join RFC 3676 format=flowed soft line breaks."""
    out: list[str] = []
    buffer: str | None = None
    buffer_depth = 0

    def flush() -> None:
        nonlocal buffer
        if buffer is not None:
            prefix = ">" * buffer_depth + (" " if buffer_depth else "")
            out.append(prefix + buffer)
            buffer = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        if buffer is not None and depth != buffer_depth:
            flush()
        if content == "-- ":
            flush()
            out.append(">" * depth + content)
            continue
        buffer = content if buffer is None else buffer + content
        buffer_depth = depth
        if content.endswith(" "):
            if delsp:
                buffer = buffer[:-1]
            continue
        flush()
    flush()
    return "\n".join(out)


def _html_to_text(html: str) -> str:
    if not html.strip():
        return ""
    try:
        text = str(get_text(html))
    except Exception:  # inscriptis/lxml on hostile markup: fall back to tag stripping
        text = _TAG_RE.sub(" ", html)
    return text


def _strip_enriched(text: str) -> str:
    return _TAG_RE.sub("", text).replace("<<", "<")

"""Where a customer is, guessed the way a rep would, with the source of the guess.

In order of trust: the form's own country field; the international prefix of
the phone number (``+49 …`` → DE); the country-code domain of the address
(``.com.mx`` → MX, ``.co.uk`` → GB; nothing for ``.com`` or for ccTLDs used as
generic ones, like ``.io`` or ``.co``); a country named in the signature
(``Berlin, Germany`` / ``Country: Mexico``). Pure, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ITU-T E.164 country calling codes (longest prefix wins). +1 is shared by the NANP
# countries; US is the likely sender of a B2B inquiry from +1, CA is told by area code.
_CALLING: dict[str, str] = {
    "1": "US", "7": "RU", "20": "EG", "27": "ZA", "30": "GR", "31": "NL", "32": "BE",
    "33": "FR", "34": "ES", "36": "HU", "39": "IT", "40": "RO", "41": "CH", "43": "AT",
    "44": "GB", "45": "DK", "46": "SE", "47": "NO", "48": "PL", "49": "DE", "51": "PE",
    "52": "MX", "53": "CU", "54": "AR", "55": "BR", "56": "CL", "57": "CO", "58": "VE",
    "60": "MY", "61": "AU", "62": "ID", "63": "PH", "64": "NZ", "65": "SG", "66": "TH",
    "81": "JP", "82": "KR", "84": "VN", "86": "CN", "90": "TR", "91": "IN", "92": "PK",
    "93": "AF", "94": "LK", "95": "MM", "98": "IR", "211": "SS", "212": "MA", "213": "DZ",
    "216": "TN", "218": "LY", "220": "GM", "221": "SN", "225": "CI", "233": "GH",
    "234": "NG", "237": "CM", "244": "AO", "249": "SD", "251": "ET", "254": "KE",
    "255": "TZ", "256": "UG", "260": "ZM", "263": "ZW", "351": "PT", "352": "LU",
    "353": "IE", "354": "IS", "355": "AL", "356": "MT", "357": "CY", "358": "FI",
    "359": "BG", "370": "LT", "371": "LV", "372": "EE", "373": "MD", "374": "AM",
    "375": "BY", "380": "UA", "381": "RS", "385": "HR", "386": "SI", "387": "BA",
    "420": "CZ", "421": "SK", "502": "GT", "503": "SV", "504": "HN", "505": "NI",
    "506": "CR", "507": "PA", "591": "BO", "593": "EC", "595": "PY", "598": "UY",
    "852": "HK", "853": "MO", "855": "KH", "856": "LA", "880": "BD", "886": "TW",
    "960": "MV", "961": "LB", "962": "JO", "963": "SY", "964": "IQ", "965": "KW",
    "966": "SA", "967": "YE", "968": "OM", "970": "PS", "971": "AE", "972": "IL",
    "973": "BH", "974": "QA", "976": "MN", "977": "NP", "992": "TJ", "993": "TM",
    "994": "AZ", "995": "GE", "996": "KG", "998": "UZ",
}  # fmt: skip
# Canadian area codes under +1 (the common ones).
_CA_AREAS = frozenset(
    [
        "204",
        "226",
        "236",
        "249",
        "250",
        "289",
        "306",
        "343",
        "365",
        "403",
        "416",
        "418",
        "431",
        "437",
        "438",
        "450",
        "506",
        "514",
        "519",
        "548",
        "579",
        "581",
        "587",
        "604",
        "613",
        "639",
        "647",
        "672",
        "705",
        "709",
        "778",
        "780",
        "782",
        "807",
        "819",
        "825",
        "867",
        "873",
        "902",
        "905",
    ]
)
# ccTLDs that are mostly bought as generic names: they say nothing about a country.
_GENERIC_CC = frozenset(
    [
        "io",
        "co",
        "me",
        "tv",
        "ai",
        "ly",
        "fm",
        "am",
        "to",
        "ws",
        "cc",
        "gg",
        "la",
        "nu",
        "sh",
        "ac",
        "app",
        "dev",
        "eu",
        "asia",
        "info",
        "biz",
    ]
)
_TLD_COUNTRY = {"uk": "GB", "su": "RU"}
_COUNTRY_NAMES: dict[str, str] = {
    "united states": "US", "usa": "US", "u.s.a.": "US", "canada": "CA", "mexico": "MX",
    "méxico": "MX", "brazil": "BR", "brasil": "BR", "argentina": "AR", "chile": "CL",
    "colombia": "CO", "peru": "PE", "perú": "PE", "united kingdom": "GB", "uk": "GB",
    "england": "GB", "scotland": "GB", "ireland": "IE", "germany": "DE", "deutschland": "DE",
    "france": "FR", "spain": "ES", "españa": "ES", "portugal": "PT", "italy": "IT",
    "italia": "IT", "netherlands": "NL", "the netherlands": "NL", "nederland": "NL",
    "belgium": "BE", "switzerland": "CH", "schweiz": "CH", "austria": "AT",
    "österreich": "AT", "poland": "PL", "polska": "PL", "czech republic": "CZ",
    "czechia": "CZ", "sweden": "SE", "norway": "NO", "denmark": "DK", "finland": "FI",
    "greece": "GR", "turkey": "TR", "türkiye": "TR", "russia": "RU", "россия": "RU",
    "ukraine": "UA", "україна": "UA", "israel": "IL", "saudi arabia": "SA",
    "united arab emirates": "AE", "uae": "AE", "qatar": "QA", "kuwait": "KW", "egypt": "EG",
    "south africa": "ZA", "nigeria": "NG", "kenya": "KE", "morocco": "MA", "india": "IN",
    "pakistan": "PK", "bangladesh": "BD", "china": "CN", "中国": "CN", "hong kong": "HK",
    "taiwan": "TW", "japan": "JP", "日本": "JP", "south korea": "KR", "korea": "KR",
    "대한민국": "KR", "vietnam": "VN", "viet nam": "VN", "thailand": "TH", "malaysia": "MY",
    "singapore": "SG", "indonesia": "ID", "philippines": "PH", "australia": "AU",
    "new zealand": "NZ",
}  # fmt: skip
_PHONE = re.compile(r"^\s*(?:\+|00)\s*(\d[\d\s().-]{5,})")
_SIGNATURE_FIELD = re.compile(
    r"^\s*(?:country|land|país|pays|страна|国家)\s*[:：]\s*(.+?)\s*$", re.I
)


@dataclass(frozen=True)
class CountryGuess:
    """An ISO 3166 alpha-2 code (empty: unknown) and where it came from."""

    code: str = ""
    source: str = ""  # "form", "phone", "domain", "signature", "" (unknown)
    detail: str = ""  # what was read: "+49 …", "acme.com.mx", "Berlin, Germany"


def _from_name(text: str) -> str:
    value = text.strip().strip(".").casefold()
    if len(value) == 2 and value.isalpha() and value.isascii():
        return value.upper()
    return _COUNTRY_NAMES.get(value, "")


def from_phone(phone: str) -> str:
    """Country of an international number (``+49 30 …``, ``0086 …``); empty when national."""
    match = _PHONE.match(phone)
    if not match:
        return ""
    digits = re.sub(r"\D", "", match.group(1))
    for length in (3, 2, 1):
        code = _CALLING.get(digits[:length])
        if code:
            if code == "US" and digits[1:4] in _CA_AREAS:
                return "CA"
            return code
    return ""


def from_domain(address: str) -> str:
    """Country of the address's country-code domain; empty for generic ones."""
    domain = address.rpartition("@")[2].strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2:
        return ""
    tld = labels[-1]
    if tld in _TLD_COUNTRY:
        return _TLD_COUNTRY[tld]
    if len(tld) != 2 or not tld.isalpha() or tld in _GENERIC_CC:
        return ""
    return tld.upper()


def from_signature(text: str) -> tuple[str, str]:
    """(code, line) for a country named on one of the last lines of ``text``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()][-8:]
    for line in reversed(lines):
        if len(line) > 80:
            continue
        field = _SIGNATURE_FIELD.match(line)
        if field:
            code = _from_name(field.group(1))
            if code:
                return code, line
            continue
        last = re.split(r"[,，|·]", line)[-1]
        code = _COUNTRY_NAMES.get(last.strip().strip(".").casefold(), "")
        if code and (last != line or len(line.split()) <= 3):
            return code, line
    return "", ""


def guess_country(
    *, given: str = "", phone: str = "", email: str = "", text: str = ""
) -> CountryGuess:
    """The best guess and its source; ``CountryGuess()`` when nothing says."""
    if given:
        code = _from_name(given)
        if code:
            return CountryGuess(code, "form", given)
    if phone:
        code = from_phone(phone)
        if code:
            return CountryGuess(code, "phone", phone)
    if email:
        code = from_domain(email)
        if code:
            return CountryGuess(code, "domain", email.rpartition("@")[2])
    if text:
        code, line = from_signature(text)
        if code:
            return CountryGuess(code, "signature", line)
    return CountryGuess()

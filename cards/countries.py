"""Country flags and a representative time zone, to show the customer's local time on a card.

The zone is the country's most populous one: good enough to tell a rep it is
3 a.m. for the buyer. Unknown countries simply show no local time.
"""

from __future__ import annotations

_ZONES: dict[str, str] = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "CO": "America/Bogota",
    "PE": "America/Lima",
    "GB": "Europe/London",
    "IE": "Europe/Dublin",
    "DE": "Europe/Berlin",
    "FR": "Europe/Paris",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "IT": "Europe/Rome",
    "NL": "Europe/Amsterdam",
    "BE": "Europe/Brussels",
    "CH": "Europe/Zurich",
    "AT": "Europe/Vienna",
    "PL": "Europe/Warsaw",
    "CZ": "Europe/Prague",
    "SE": "Europe/Stockholm",
    "NO": "Europe/Oslo",
    "DK": "Europe/Copenhagen",
    "FI": "Europe/Helsinki",
    "GR": "Europe/Athens",
    "TR": "Europe/Istanbul",
    "RU": "Europe/Moscow",
    "UA": "Europe/Kyiv",
    "RO": "Europe/Bucharest",
    "IL": "Asia/Jerusalem",
    "AE": "Asia/Dubai",
    "SA": "Asia/Riyadh",
    "QA": "Asia/Qatar",
    "EG": "Africa/Cairo",
    "NG": "Africa/Lagos",
    "KE": "Africa/Nairobi",
    "ZA": "Africa/Johannesburg",
    "MA": "Africa/Casablanca",
    "IN": "Asia/Kolkata",
    "PK": "Asia/Karachi",
    "BD": "Asia/Dhaka",
    "CN": "Asia/Shanghai",
    "HK": "Asia/Hong_Kong",
    "TW": "Asia/Taipei",
    "JP": "Asia/Tokyo",
    "KR": "Asia/Seoul",
    "SG": "Asia/Singapore",
    "MY": "Asia/Kuala_Lumpur",
    "TH": "Asia/Bangkok",
    "VN": "Asia/Ho_Chi_Minh",
    "ID": "Asia/Jakarta",
    "PH": "Asia/Manila",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "KZ": "Asia/Almaty",
    "IR": "Asia/Tehran",
    "IQ": "Asia/Baghdad",
}


def flag(country: str) -> str:
    """The flag emoji of an ISO 3166-1 alpha-2 code ("" when it is not one)."""
    code = country.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code)


def zone_of(country: str) -> str:
    return _ZONES.get(country.strip().upper(), "")

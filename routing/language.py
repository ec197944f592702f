"""Language of an inquiry's text: scripts first (CJK, Cyrillic, Arabic ...), then py3langid.

Script detection is exact where a script belongs to one language (kana ->
Japanese, Hangul -> Korean, Han without kana -> Chinese); py3langid (a small
offline model shipped in its wheel, no download) decides among Latin and
Cyrillic languages. Short or empty text gives "" rather than a guess.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from typing import Any

_loading = threading.Lock()  # one load, whether the server's warm-up or a first request

_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_ARABIC = re.compile(r"[\u0600-\u06ff]")
_THAI = re.compile(r"[\u0e00-\u0e7f]")
_LETTERS = re.compile(r"\w", re.UNICODE)

#: Languages a B2B export inbox sees; restricting the model makes short texts far more accurate.
CANDIDATES = (
    "en",
    "es",
    "pt",
    "fr",
    "de",
    "it",
    "nl",
    "pl",
    "ru",
    "tr",
    "ar",
    "vi",
    "id",
    "ms",
    "zh",
    "ja",
    "ko",
    "th",
    "he",
    "cs",
    "ro",
    "sv",
)


def _model() -> Any:
    with _loading:
        return _load_model()


def warm_up() -> None:
    """Load the model now (about a second of CPU), so the first inquiry does not wait for it;
    the server calls this in a thread as it starts."""
    _model()


@lru_cache(maxsize=1)
def _load_model() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(CANDIDATES))
    # The identifier keeps the full 97-language model to allow another set_languages; we
    # never call it again, so let the full tables go (about 75 MB of a server's RSS).
    if hasattr(identifier, "_full_model"):
        identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    return identifier


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text`` ("" when too short to tell)."""
    sample = text[:2000]
    if _KANA.search(sample):
        return "ja"
    if _HANGUL.search(sample):
        return "ko"
    letters = len(_LETTERS.findall(sample))
    if letters == 0:
        return ""
    han = len(_HAN.findall(sample))
    if han and han / letters > 0.2:
        return "zh"
    if _THAI.search(sample):
        return "th"
    if len(_ARABIC.findall(sample)) / letters > 0.3:
        return "ar"
    if letters < 12:
        return ""
    lang, _prob = _model().classify(sample)
    return str(lang)

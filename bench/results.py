"""Where the benchmarks write their numbers: one JSON file, each bench under its own key.

``merge_into`` keeps what other benches wrote (a missing or unreadable file starts
empty), so ``make bench`` fills ``bench/results.json`` one bench at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def merge_into(path: Path | str, results: Mapping[str, Any]) -> None:
    """Write ``results`` (key -> figures) into the JSON file at ``path``, keeping other keys."""
    out = Path(path)
    merged: dict[str, Any] = {}
    if out.exists():
        try:
            loaded = json.loads(out.read_text(encoding="utf-8") or "{}")
        except ValueError:
            loaded = {}
        if isinstance(loaded, dict):
            merged = loaded
    merged.update(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(merged, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

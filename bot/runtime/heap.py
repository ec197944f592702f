"""A serving process's start-up heap, kept out of the garbage collector's full passes.

After start-up a claimdesk process holds ~150,000 long-lived objects (modules, SQLAlchemy's
mapped classes and compiled statements, the routing rules, the templates) that live as
long as the process. CPython's collector walks all of them in every full (oldest
generation) pass: measured on a 2-core machine, one pass took ~110 ms in a fresh process
and 145 ms during a webhook burst, a stall of the whole event loop in which no card click
is answered (bench/README.md, eighth pass). ``gc.freeze`` moves every object alive at
that moment into a permanent generation that the collector no longer visits, as large
Python services do after start-up; later objects are collected as before. Garbage made
before the freeze is collected first, so nothing that is already garbage is kept.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect, then freeze every object alive now; return how many are frozen."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("start-up heap frozen: %d objects", frozen)
    return frozen

"""The garbage collector's settings for a long-running ``serve`` process.

CPython's cyclic collector runs a young-generation pass every 700 net allocations and, every
ten of those, an older one; a full pass walks every tracked object.  After start-up a
``serve`` process holds ~200,000 long-lived objects (modules, SQLAlchemy's compiled caches,
the FastAPI app, pydantic models) that those passes keep re-walking, while a delivery or an
accepted message allocates a few thousand short-lived ones — so collections ran every few
messages (a worker measured 3–6 % of its CPU in ``gc_collect_main``).  Reference counting frees
almost all of it anyway; the collector is only for cycles.

So, once the roles have started: everything alive is moved out of the collector's sight
(``gc.freeze``: it is never freed, which is what start-up state is for), and young passes run
every ``YOUNG_THRESHOLD`` allocations.  Cycles are still collected, just in fewer, larger passes
(a pass's cost grows with what it finds, so the total is about the same for garbage and far
lower for the long-lived objects it no longer walks).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["YOUNG_THRESHOLD", "settle"]

YOUNG_THRESHOLD: Final = 20_000


def settle() -> None:
    """Freeze start-up state and space collections out (see the module docstring)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)

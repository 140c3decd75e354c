"""Garbage-collector settings for the two hot processes.

Each batch allocates thousands of short-lived dicts (events, probabilities) that reference
counting frees on its own; the cyclic collector, run every 700 allocations by default, mostly
rescans objects that live for the whole run (the model, modules). Freezing what exists at
start-up and collecting the young generation less often keeps its cost off the per-event path.
"""

import gc

YOUNG_GENERATION_THRESHOLD = 20_000


def tune_for_streaming() -> None:
    """Freeze start-up objects and make young collections rarer (call once, after start-up)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)

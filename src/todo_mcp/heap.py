"""What a server process does with its heap once it has started."""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Move everything start-up allocated (modules, the SDK, schemas, models) out of the
    garbage collector's reach.

    Those objects live as long as the process, yet every full collection walked them all
    again: under load that was a pause of tens of milliseconds every few seconds, which set
    the p99 latency (87 ms against 40 ms without, one worker at concurrency 16). Objects made
    while serving are collected as before.
    """
    gc.collect()
    gc.freeze()

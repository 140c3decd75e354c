"""Process-level settings of the learner's processes: CPU priority, garbage collector, parent death.

River holds the GIL for all of its time, so the model process must win its core: the gateway is
lowered, the collector is kept off the per-event path, and every child dies with its parent.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal

__all__ = ["die_with_parent", "lower_priority", "tune_for_streaming"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
YOUNG_GENERATION_THRESHOLD = 20_000


def tune_for_streaming() -> None:
    """Freeze start-up objects and make young collections rarer (call once, after start-up).

    Each batch allocates thousands of short-lived dicts (events, probabilities) that reference
    counting frees on its own; the cyclic collector, run every 700 allocations by default, mostly
    rescans objects that live for the whole run (the model, modules).
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (no-op elsewhere)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        log.debug("PR_SET_PDEATHSIG unavailable")


def lower_priority(priority: str) -> None:
    """Let the model process win the CPU: it is the bottleneck, and River holds the GIL throughout.

    Threads started afterwards (librdkafka's, the pipe threads) inherit the policy. "low" (nice 10,
    the default) loses a contested CPU to the model but still gets a share of one that other work
    keeps busy. "idle" (``SCHED_IDLE``) is stronger: besides never preempting the model, Linux
    counts a CPU that runs only idle-policy work as free when it places a waking thread, so other
    processes' wake-ups land on the gateway's CPU instead of the model's (measured: the model
    waited for a CPU 2-7% of the time at nice 10, under 1% with idle; 2% of throughput, within
    the machine's noise). Its cost decided the default: where the CPUs are all busy with other
    work, an idle gateway gets almost nothing (a test under two busy loops stalled the stream for
    minutes), so "idle" is for dedicated hosts, and for challengers (:attr:`learner.runtime.roles.Role.yields`).
    Inside a container, the policy only ranks the gateway within its own cgroup.
    """
    if priority == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError):  # not Linux: the next best
            priority = "low"
    if priority == "low":
        try:
            os.nice(10)
        except OSError:
            pass

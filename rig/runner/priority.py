"""Raise the loop's scheduling priority for real-time sessions (what Psychtoolbox's Priority() does).

`loop_priority` in the rig config: `normal` leaves the process alone; `high` lowers its nice value; `realtime`
asks Linux for SCHED_FIFO on the loop's thread. Both need privileges (root or CAP_SYS_NICE); without them the
session still runs, at normal priority, and says so in the log and the session header.
"""

from __future__ import annotations

import logging
import os
from typing import Literal

log = logging.getLogger(__name__)

Priority = Literal["normal", "high", "realtime"]

HIGH_NICE = -10
# Below the kernel's own threaded IRQ handlers (50), so device interrupts still get served; the kernel's
# RT throttling keeps a runaway loop from starving the machine completely.
FIFO_PRIORITY = 40


def raise_priority(priority: Priority) -> str:
    """Apply the priority to the calling thread; returns what was actually obtained (for the header)."""
    if priority == "normal":
        return "normal"
    try:
        if priority == "realtime":
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(FIFO_PRIORITY))
            return f"realtime (SCHED_FIFO {FIFO_PRIORITY})"
        os.setpriority(os.PRIO_PROCESS, 0, HIGH_NICE)
        return f"high (nice {HIGH_NICE})"
    except (PermissionError, OSError, AttributeError) as e:
        log.warning("could not raise the loop's priority to %s (%s); running at normal priority", priority, e)
        return f"normal ({priority} refused: {e})"

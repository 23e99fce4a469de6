"""Hardware limits of NI X-series devices that the config is checked against (sources: docs/nidaq.md).

- Watchdog timer: "configurable up to (2^32 - 1) x 8 ns (approximately 34 seconds)" (X Series User
  Manual, Digital I/O chapter, "Watchdog Timer"). The manual-line watchdog's timeout is max_open_ms,
  so max_open_ms may not exceed it.
- Counters are 32 bits wide and count one of the internal timebases (100 MHz, 20 MHz, 100 kHz). A
  counter-output pulse's high time is a tick count of the timebase DAQmx picks for it: with the
  100 MHz timebase (10 ns steps) at most (2^32 - 1) x 10 ns = 42.9 s. The watchdog limit is lower, so a
  max_open_ms that passes it fits any timebase.
"""

from __future__ import annotations

COUNTER_BITS = 32
COUNTER_MAX_TICKS = (1 << COUNTER_BITS) - 1

WATCHDOG_TICK_S = 8e-9
WATCHDOG_MAX_S = COUNTER_MAX_TICKS * WATCHDOG_TICK_S  # 34.3597 s
WATCHDOG_MAX_MS = WATCHDOG_MAX_S * 1000.0

# Internal counter timebases, by terminal name (lower case, as DAQmx terminal names are case-blind).
TIMEBASE_HZ = {"100mhztimebase": 100e6, "20mhztimebase": 20e6, "100khztimebase": 100e3}
TIMEBASE_TERMINALS = {"100MHz": "100MHzTimebase", "20MHz": "20MHzTimebase"}

PULSE_MAX_S_100MHZ = COUNTER_MAX_TICKS / 100e6  # 42.95 s: the longest counter pulse on the fastest timebase

"""Session facts for tests that write session folders directly (without running a session)."""

from __future__ import annotations

from typing import Any

from rig.datalog.header import SessionFacts

_DEFAULTS: dict[str, Any] = {
    "protocol": {"name": "test", "kind": "task"},
    "protocol_yaml": "",
    "protocol_sha256": "",
    "config": {},
    "seed": 0,
    "fast": False,
    "frame_rate_hz": 60.0,
}


def facts(animal: str = "M1", **fields: Any) -> SessionFacts:
    """Valid facts with the given fields replacing the defaults."""
    return SessionFacts(animal=animal, **{**_DEFAULTS, **fields})

"""The app's connection to one running session: telemetry in, commands out, polled from the Qt event loop.

Nothing here blocks: sockets are read with NOBLOCK from a QTimer, and every command has a deadline after
which its callback gets a timeout reply. On attach the plots are backfilled from the session folder (the
runner flushes it every 100 ms), then telemetry continues from there without gaps or duplicates.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Any

from PyQt5 import QtCore

from gui.live_data import LiveData
from rig.control.client import CommandClient, TelemetrySubscriber
from rig.control.credentials import ClientCredential
from rig.control.server import ControlError
from rig.datalog.reader import Session, SessionError

log = logging.getLogger(__name__)

POLL_MS = 30
COMMAND_TIMEOUT_S = 3.0
HEARTBEAT_TIMEOUT_S = 3.0
BACKFILL_DELAY_S = 0.25  # wait past one runner flush after the first telemetry, so the file covers the gap


class SessionLink(QtCore.QObject):
    attached = QtCore.pyqtSignal(dict)  # the session's hello: protocol, corridors, session folder, ...
    status = QtCore.pyqtSignal(dict)
    fault = QtCore.pyqtSignal(dict)
    ended = QtCore.pyqtSignal(dict)
    lost = QtCore.pyqtSignal(float)  # seconds without telemetry
    reply = QtCore.pyqtSignal(dict)  # every command reply (including timeouts), for the operator's log

    def __init__(self, info: dict[str, Any], parent: QtCore.QObject | None = None, capacity: int = 60 * 600) -> None:
        super().__init__(parent)
        self.info = dict(info)
        self.capacity = capacity
        self.live: LiveData | None = None
        self.hello: dict[str, Any] | None = None
        self.last_status: dict[str, Any] = {}
        self.finished: dict[str, Any] | None = None
        cred = ClientCredential.load(info["credential"])
        self._sub = TelemetrySubscriber(info["telemetry"], cred)
        self._cmd = CommandClient(info["commands"], cred, label=f"app pid {os.getpid()}")
        self._pending: dict[str, tuple[float, Callable[[dict], None] | None, str]] = {}
        self._buffer: list[tuple[str, dict]] = []
        self._first_msg_at: float | None = None
        self._last_msg_at = time.monotonic()
        self._lost_reported = False
        self._hello_id = self.send("hello", callback=self._on_hello)
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(POLL_MS)

    # ---- commands ----------------------------------------------------------------------------------

    def send(self, action: str, callback: Callable[[dict], None] | None = None, **params: Any) -> str | None:
        try:
            rid = self._cmd.send(action, **params)
        except ControlError as e:
            reply = {"id": None, "ok": False, "action": action, "error": str(e)}
            self.reply.emit(reply)
            if callback is not None:
                callback(reply)
            return None
        self._pending[rid] = (time.monotonic() + COMMAND_TIMEOUT_S, callback, action)
        return rid

    def _on_hello(self, reply: dict) -> None:
        if not reply.get("ok"):
            return  # a timeout: poll() resends hello while unattached
        self.hello = reply
        if not reply.get("controller"):
            self.send("take_control")  # this window commands the session (issue 15 refines who may)
        self.info.update({k: reply[k] for k in ("session", "protocol", "animal") if k in reply})

    # ---- polling -----------------------------------------------------------------------------------

    def poll(self) -> None:
        now = time.monotonic()
        for reply in self._cmd.poll_replies():
            entry = self._pending.pop(reply.get("id"), None)
            self._deliver(reply, entry)
        for rid, entry in list(self._pending.items()):
            if now > entry[0]:
                del self._pending[rid]
                self._deliver({"id": rid, "ok": False, "action": entry[2],
                               "error": f"no reply within {COMMAND_TIMEOUT_S:g} s (is the runner alive?)"}, entry)
        if self.hello is None and self._hello_id not in self._pending:
            self._hello_id = self.send("hello", callback=self._on_hello)

        msgs = self._sub.poll(max_messages=5000)
        if msgs:
            self._last_msg_at = now
            self._lost_reported = False
            if self._first_msg_at is None:
                self._first_msg_at = now
        elif self.finished is None and now - self._last_msg_at > HEARTBEAT_TIMEOUT_S and not self._lost_reported:
            self._lost_reported = True
            self.lost.emit(now - self._last_msg_at)
        if self.live is None:
            self._buffer.extend(msgs)
            first = self._first_msg_at
            if self.hello is not None and first is not None and now - first > BACKFILL_DELAY_S:
                self._backfill()
            return
        self._dispatch(msgs)

    def _deliver(self, reply: dict, entry) -> None:
        self.reply.emit(reply)
        if entry is not None and entry[1] is not None:
            entry[1](reply)

    def _backfill(self) -> None:
        assert self.hello is not None
        self.live = LiveData(list(self.hello.get("corridors", [])), capacity=self.capacity)
        folder = self.hello.get("session")
        if folder:
            try:
                self.live.load_session(Session.open(folder))
            except SessionError as e:
                log.warning("cannot backfill from %s: %s", folder, e)
        self.attached.emit(self.hello)
        buffered, self._buffer = self._buffer, []
        self._dispatch(buffered)

    def _dispatch(self, msgs: list[tuple[str, dict]]) -> None:
        live = self.live
        assert live is not None
        for topic, body in msgs:
            if topic == "state":
                live.add_frames(body)
            elif topic == "event":
                live.add_telemetry_event(body)
            elif topic == "status":
                self.last_status = body
                self.status.emit(body)
            elif topic == "fault":
                self.fault.emit(body)
            elif topic == "end":
                self.finished = body
                self.ended.emit(body)

    def close(self) -> None:
        """Stop listening. The session itself is not touched: it runs on in its own process."""
        self._timer.stop()
        self._sub.close()
        self._cmd.close()

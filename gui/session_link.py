"""The app's connection to one running session: telemetry in, commands out, the session folder followed,
all polled from the Qt event loop. This module (with gui.launcher) is the app's only user of the control
channel, so a change of that channel (authentication, new commands) is a change here.

Nothing here blocks: sockets are read with NOBLOCK from a QTimer, and every command has a deadline after
which its callback gets a timeout reply. Every message is checked by gui.wire's bounded decoder first;
a bad one is counted (`bad_messages`, `last_bad`) and dropped, never trusted, never fatal.

Where things come from:
- frames (plots): telemetry `state`, after a backfill from the folder's frames.bin on attach (the
  runner flushes every 100 ms), without gaps or duplicates (frames carry their loop iteration);
- events (raster, water, stages) and every count: the session folder (gui.folder_tail), the record,
  so the counts are `rig info`'s;
- loop health, valve, faults, the end: telemetry; the runner's pid is watched too, so a runner that
  dies without a word is noticed within a second.

When the session is over (an `end` message and the process gone or its footer written, or the process
gone without one) `over` carries the gui.session_state.Outcome read from the folder.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import zmq
from PyQt5 import QtCore

from gui.folder_tail import Counts, FolderTail
from gui.live_data import LiveData
from gui.session_state import Outcome, outcome
from gui.wire import (
    ControlChange,
    End,
    Fault,
    Hello,
    Reply,
    StateBatch,
    Status,
    WireError,
    decode_hello,
    decode_json,
    decode_reply,
    decode_telemetry,
)
from rig.control.credentials import ClientCredential
from rig.datalog.reader import SessionError

log = logging.getLogger(__name__)

POLL_MS = 30
TAIL_EVERY_S = 0.2  # the folder is flushed every 100 ms
PID_EVERY_S = 0.25
COMMAND_TIMEOUT_S = 3.0
STALL_AFTER_S = 3.0  # status comes at 2 Hz: six missing in a row
CONTROL_REASK_S = 0.5  # at most one hello per half second when control changes hands
BACKFILL_DELAY_S = 0.25  # wait past one runner flush after the first telemetry, so the file covers the gap
END_WAIT_S = 10.0  # after `end`, how long to wait for the footer before judging the folder as it is
MAX_MESSAGES_PER_POLL = 5000
MAX_PENDING = 256  # commands awaiting a reply; more are refused at once (a flood must not grow memory)
I_SLACK = 600  # loop iterations a state batch may run ahead of what the frame rate allows since the last one


def pid_alive(pid: int | None) -> bool:
    """True while the process exists and is not a zombie (a zombie is a dead runner not yet reaped)."""
    if pid is None:
        return True  # unknown: rely on telemetry and the lock
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): existence is all we know
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


class _Channel:
    """The two sockets of one session's control channel: CURVE clients with the session's credential (the
    0600 file the rig lock info names, rig.control.credentials). The app keeps its own sockets so that
    everything received goes through its own bounded decoder (gui.wire) first."""

    def __init__(self, info: dict[str, Any], context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        ctx = context or zmq.Context.instance()
        cred = ClientCredential.load(str(info["credential"]))
        self.sub = ctx.socket(zmq.SUB)
        self.dealer = ctx.socket(zmq.DEALER)
        for s in (self.sub, self.dealer):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, 4 << 20)  # larger ones are dropped by ZeroMQ before they reach us
            cred.apply(s)
        self.sub.setsockopt(zmq.RCVHWM, 10_000)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.dealer.setsockopt(zmq.SNDHWM, MAX_PENDING)
        self.sub.connect(str(info["telemetry"]))
        self.dealer.connect(str(info["commands"]))
        self._ids = 0
        self._prefix = f"{os.getpid()}-{id(self):x}-"
        self.client = secrets.token_hex(8)  # names this window to the runner (who controls the session)
        self.label = f"app pid {os.getpid()}"

    def send(self, action: str, params: dict[str, Any]) -> str:
        import json

        self._ids += 1
        rid = f"{self._prefix}{self._ids}"
        try:
            body = {"id": rid, "action": action, "client": self.client, **params}
            if action in ("hello", "take_control"):
                body.setdefault("label", self.label)
            self.dealer.send_multipart([b"", json.dumps(body).encode()], zmq.NOBLOCK)
        except zmq.Again:
            raise WireError(f"cannot send {action!r}: the session is not reachable") from None
        return rid

    def replies(self, limit: int) -> list[list[bytes]]:
        return self._recv(self.dealer, limit)

    def telemetry(self, limit: int) -> list[list[bytes]]:
        return self._recv(self.sub, limit)

    @staticmethod
    def _recv(sock: zmq.Socket[bytes], limit: int) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        for _ in range(limit):
            try:
                out.append(sock.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
        return out

    def close(self) -> None:
        self.sub.close()
        self.dealer.close()


class SessionLink(QtCore.QObject):
    attached = QtCore.pyqtSignal(object)  # Hello: the plots can be set up, live data exists
    status = QtCore.pyqtSignal(object)  # Status
    fault = QtCore.pyqtSignal(object)  # Fault
    ended = QtCore.pyqtSignal(object)  # End: the runner said goodbye (the outcome follows with `over`)
    over = QtCore.pyqtSignal(object)  # Outcome, once, from the folder
    stalled = QtCore.pyqtSignal(float)  # seconds without telemetry while the runner lives
    resumed = QtCore.pyqtSignal()  # telemetry is back after a stall
    reply = QtCore.pyqtSignal(object)  # Reply: every command reply (timeouts included), for the operator's log
    control = QtCore.pyqtSignal(bool, object)  # (this window controls the session, who does otherwise)

    def __init__(self, info: dict[str, Any], parent: QtCore.QObject | None = None, capacity: int = 60 * 600,
                 context: zmq.Context[zmq.Socket[bytes]] | None = None) -> None:
        super().__init__(parent)
        self.info = dict(info)
        self.capacity = capacity
        self.live: LiveData | None = None
        self.tail: FolderTail | None = None
        self.hello: Hello | None = None
        self.last_status: Status | None = None
        self.finished: End | None = None
        self.result: Outcome | None = None
        self.bad_messages = 0
        self._control_asked_at = -1e9
        self.last_bad = ""
        self.is_stalled = False
        self._pid = info.get("pid") if isinstance(info.get("pid"), int) else None
        self._chan = _Channel(info, context)
        self._pending: dict[str, tuple[float, Callable[[Reply], None] | None, str]] = {}
        self._buffer: list[StateBatch] = []
        self._first_msg_at: float | None = None
        self._last_msg_at = time.monotonic()
        self._next_tail = 0.0
        self._next_pid = 0.0
        self._ended_at: float | None = None
        self._i_seen: tuple[int, float] | None = None  # (last loop iteration accepted, when)
        self._closed = False
        self._hello_id = self.send("hello", callback=self._on_hello)
        self._timer = QtCore.QTimer(self)
        self._timer.timeout.connect(self.poll)
        self._timer.start(POLL_MS)

    # ---- commands ----------------------------------------------------------------------------------

    @property
    def controller(self) -> bool:
        """Whether this window may command the session (the runner decides; until it reports, yes)."""
        return self.hello is None or self.hello.controller

    def send(self, action: str, callback: Callable[[Reply], None] | None = None, **params: Any) -> str | None:
        if len(self._pending) >= MAX_PENDING:
            self._refuse(action, f"{MAX_PENDING} requests are waiting for the runner already", callback)
            return None
        try:
            rid = self._chan.send(action, params)
        except WireError as e:
            self._refuse(action, str(e), callback)
            return None
        self._pending[rid] = (time.monotonic() + COMMAND_TIMEOUT_S, callback, action)
        return rid

    def _refuse(self, action: str, error: str, callback: Callable[[Reply], None] | None) -> None:
        r = Reply(id=None, ok=False, action=action, error=error, body={})
        self.reply.emit(r)
        if callback is not None:
            callback(r)

    def take_control(self, callback: Callable[[Reply], None] | None = None) -> None:
        def done(r: Reply) -> None:
            if r.ok:
                self.send("hello", callback=self._on_hello)
            if callback is not None:
                callback(r)

        self.send("take_control", callback=done)

    def note(self, text: str, callback: Callable[[Reply], None] | None = None) -> None:
        self.send("note", callback=callback, text=text)

    def _on_hello(self, reply: Reply) -> None:
        if not reply.ok:
            return  # a timeout: poll() asks again while unattached
        try:
            hello = decode_hello(reply.body)
        except WireError as e:
            self._bad(f"hello: {e}")
            return
        first = self.hello is None
        was = self.controller
        self.hello = hello
        self.info.update(session=hello.session or self.info.get("session"), protocol=hello.protocol,
                         animal=hello.animal)
        if hello.pid is not None:
            self._pid = hello.pid
        st = reply.body.get("status")
        if self._i_seen is None and isinstance(st, dict) and type(st.get("i")) is int and st["i"] >= 0:
            self._i_seen = (st["i"], time.monotonic())
        if first or was != hello.controller:
            self.control.emit(hello.controller, hello.controlled_by)
        if first and not hello.controller and hello.controlled_by is None:
            self.take_control()  # nobody controls the session (started from the command line): this window does

    # ---- polling -----------------------------------------------------------------------------------

    def _bad(self, why: str) -> None:
        self.bad_messages += 1
        self.last_bad = why
        if self.bad_messages in (1, 10, 100, 1000) or self.bad_messages % 10_000 == 0:
            log.warning("telemetry message dropped (%d so far): %s", self.bad_messages, why)

    def poll(self) -> None:
        if self._closed:
            return
        now = time.monotonic()
        self._poll_replies(now)
        if self.hello is None and self._hello_id not in self._pending:
            self._hello_id = self.send("hello", callback=self._on_hello)
        self._poll_telemetry(now)
        if self.live is not None and now >= self._next_tail:
            self._next_tail = now + TAIL_EVERY_S
            self._poll_folder()
        if now >= self._next_pid:
            self._next_pid = now + PID_EVERY_S
            self._check_over(now)

    def _poll_replies(self, now: float) -> None:
        for frames in self._chan.replies(MAX_MESSAGES_PER_POLL):
            try:
                reply = decode_reply(decode_json(frames[-1]))
            except WireError as e:
                self._bad(f"reply: {e}")
                continue
            entry = self._pending.pop(reply.id, None) if reply.id is not None else None
            self._deliver(reply, entry)
        for rid, entry in list(self._pending.items()):
            if now > entry[0]:
                del self._pending[rid]
                self._deliver(Reply(id=rid, ok=False, action=entry[2], body={},
                                    error=f"no reply within {COMMAND_TIMEOUT_S:g} s (is the runner alive?)"), entry)

    def _deliver(self, reply: Reply, entry: tuple[float, Callable[[Reply], None] | None, str] | None) -> None:
        if entry is not None and not reply.action:
            reply = Reply(reply.id, reply.ok, entry[2], reply.error, reply.body)
        self.reply.emit(reply)
        if entry is not None and entry[1] is not None:
            entry[1](reply)

    def _poll_telemetry(self, now: float) -> None:
        raw = self._chan.telemetry(MAX_MESSAGES_PER_POLL)
        if raw:
            self._last_msg_at = now
            if self._first_msg_at is None:
                self._first_msg_at = now
            if self.is_stalled:
                self.is_stalled = False
                self.resumed.emit()
        elif (self.finished is None and not self.is_stalled and now - self._last_msg_at > STALL_AFTER_S
              and pid_alive(self._pid)):
            self.is_stalled = True
            self.stalled.emit(now - self._last_msg_at)
        n_corridors = len(self.hello.corridors) if self.hello is not None and self.hello.corridors else None
        for frames in raw:
            try:
                topic, msg = decode_telemetry(frames, n_corridors)
            except WireError as e:
                self._bad(str(e))
                continue
            self._dispatch(topic, msg)
        if self.live is None:
            first = self._first_msg_at
            if self.hello is not None and first is not None and now - first > BACKFILL_DELAY_S:
                self._backfill()

    def _dispatch(self, topic: str, msg: object) -> None:
        if isinstance(msg, StateBatch):
            if not self._plausible(msg):
                return
            if self.live is None:
                self._buffer.append(msg)
                del self._buffer[:-2000]  # bounded while waiting for the hello
            else:
                self.live.add_batch(msg)
        elif isinstance(msg, Status):
            self.last_status = msg
            self.status.emit(msg)
        elif isinstance(msg, Fault):
            self.fault.emit(msg)
        elif isinstance(msg, ControlChange):
            # Someone took control: ask again whether this window still has it (the hello says, per client).
            now = time.monotonic()
            if now - self._control_asked_at >= CONTROL_REASK_S:
                self._control_asked_at = now
                self.send("hello", callback=self._on_hello)
        elif isinstance(msg, End) and self.finished is None:
            self.finished = msg
            self._ended_at = time.monotonic()
            self.ended.emit(msg)

    def _plausible(self, batch: StateBatch) -> bool:
        """A batch's loop iterations cannot run ahead of the frame rate (a hostile i = 10**12 would otherwise
        make every later frame look old)."""
        if not len(batch):
            return True
        now = time.monotonic()
        last = int(batch.columns["i"][-1])
        if self._i_seen is not None:
            rate = self.hello.frame_rate_hz if self.hello is not None and self.hello.frame_rate_hz else 60.0
            limit = self._i_seen[0] + 2 * rate * (now - self._i_seen[1]) + I_SLACK
            if last > limit:
                self._bad(f"state.i jumps to {last}, beyond the {int(limit)} the frame rate allows")
                return False
        self._i_seen = (max(last, self._i_seen[0]) if self._i_seen is not None else last, now)
        return True

    def _backfill(self) -> None:
        hello = self.hello
        assert hello is not None
        folder = hello.session or self.info.get("session")
        update = None
        if folder:
            try:
                self.tail = FolderTail(folder, frames=True)
                update = self.tail.poll()
                self.tail.follow_frames(False)  # frames come from telemetry from now on
            except (SessionError, OSError) as e:
                log.warning("cannot follow the session folder %s: %s", folder, e)
                self.tail = None
        protocol = self.tail.header.protocol if self.tail is not None else None
        live = LiveData(list(hello.corridors), capacity=self.capacity, protocol=protocol)
        if update is not None:
            if update.frames is not None:
                live.add_session_frames(update.frames)
            live.add_events(update.events)
        self.live = live
        self.attached.emit(hello)
        buffered, self._buffer = self._buffer, []
        for batch in buffered:
            live.add_batch(batch)

    def _poll_folder(self) -> None:
        if self.tail is None or self.live is None:
            return
        try:
            update = self.tail.poll()
        except OSError as e:
            log.warning("cannot read %s: %s", self.tail.folder, e)
            return
        if update.events:
            self.live.add_events(update.events)

    @property
    def counts(self) -> Counts | None:
        return self.tail.counts if self.tail is not None else None

    def _check_over(self, now: float) -> None:
        if self.result is not None:
            return
        gone = not pid_alive(self._pid)
        if self.finished is None and not gone:
            return
        if self.finished is not None and not gone:
            folder = self._folder()
            footer = folder is not None and (folder / "footer.json").exists()
            waited = self._ended_at is not None and now - self._ended_at > END_WAIT_S
            if not (footer or waited):
                return
        self._poll_folder()  # the last lines the runner flushed
        self.result = outcome(self._folder(), self.finished, gone)
        self.over.emit(self.result)

    def _folder(self) -> Path | None:
        folder = (self.hello.session if self.hello is not None else None) or self.info.get("session")
        return Path(folder) if folder else None

    def close(self) -> None:
        """Stop listening. The session itself is not touched: it runs on in its own process."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        self._chan.close()

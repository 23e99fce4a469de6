"""A stand-in for a runner's control channel, on real ZeroMQ sockets on 127.0.0.1: a PUB for telemetry and a
ROUTER for commands, served from a thread. It speaks the runner's control protocol
(`controller` / `controlled_by` in the hello, `take_control`, `note`, stage fields in the status), so the
app's side of those can be driven into states a live session reaches only slowly (or never: a refusal to
hand over control). It answers from a real session folder.

Raw messages (any bytes) can be published with `publish_raw`: the fuzz tests use that.
"""

from __future__ import annotations

import json
import os
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from rig.control.credentials import SessionKeys


class FakeRunner:
    def __init__(self, session: Path, corridors: list[str], controller: bool = True,
                 controlled_by: str | None = None, hello_extra: dict[str, Any] | None = None) -> None:
        self.session = Path(session)
        self.corridors = corridors
        self.controller = controller
        self.controlled_by = controlled_by
        self.hello_extra = dict(hello_extra or {})
        self.requests: list[dict[str, Any]] = []
        self.grant_control = True
        self._out: queue.Queue[list[bytes]] = queue.Queue()
        # CURVE like the real runner (rig.control.credentials): the app finds the credential in the lock info.
        self.keys = SessionKeys.generate()
        self._cred_dir = Path(tempfile.mkdtemp(prefix="fake-runner-"))
        self.credential = self.keys.write_client(self._cred_dir / "session.cred")
        self._ctx = zmq.Context()
        self._pub = self._ctx.socket(zmq.PUB)
        self._router = self._ctx.socket(zmq.ROUTER)
        for s in (self._pub, self._router):
            s.setsockopt(zmq.LINGER, 0)
            self.keys.apply_server(s)  # no ZAP handler here: any client with the server's key gets in
        self._pub.bind("tcp://127.0.0.1:*")
        self._router.bind("tcp://127.0.0.1:*")
        self.telemetry = self._pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.commands = self._router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-runner", daemon=True)
        self._thread.start()

    @property
    def info(self) -> dict[str, Any]:
        """What a rig lock info file says about this session."""
        return {"rig": "sim", "pid": os.getpid(), "telemetry": self.telemetry, "commands": self.commands,
                "session": str(self.session), "animal": "F1", "protocol": "demo", "credential": str(self.credential)}

    def hello(self) -> dict[str, Any]:
        return {"session": str(self.session), "protocol": "demo", "animal": "F1", "rig": "sim", "pid": os.getpid(),
                "corridors": self.corridors, "rewarded": [k == 0 for k in range(len(self.corridors))],
                "lengths_cm": [600.0] * len(self.corridors), "frame_rate_hz": 60.0,
                "controller": self.controller, "controlled_by": self.controlled_by,
                "telemetry": self.telemetry, "commands": self.commands, **self.hello_extra}

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        self._out.put([topic.encode(), json.dumps(body).encode()])

    def publish_raw(self, frames: list[bytes]) -> None:
        self._out.put(list(frames))

    def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        rid, action = req.get("id"), req.get("action")
        if action == "hello":
            return {"id": rid, "ok": True, "action": action, "i": 0, **self.hello()}
        if action == "take_control":
            if not self.grant_control:
                return {"id": rid, "ok": False, "action": action, "error": "the controlling window refused"}
            self.controller, self.controlled_by = True, None
            return {"id": rid, "ok": True, "action": action, "i": 0}
        if action == "note":
            return {"id": rid, "ok": True, "action": action, "i": 0}
        if not self.controller:
            return {"id": rid, "ok": False, "action": action, "error": "view only: another window controls"}
        return {"id": rid, "ok": True, "action": action, "i": 0}

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        while not self._stop.is_set():
            while True:
                try:
                    frames = self._out.get_nowait()
                except queue.Empty:
                    break
                self._pub.send_multipart(frames)
            if dict(poller.poll(5)).get(self._router):
                ident, *_, body = self._router.recv_multipart()
                try:
                    req = json.loads(body)
                except ValueError:
                    continue
                self.requests.append(req)
                self._router.send_multipart([ident, b"", json.dumps(self._answer(req)).encode()])

    def wait_request(self, action: str, timeout_s: float = 5.0) -> dict[str, Any]:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for r in self.requests:
                if r.get("action") == action:
                    return r
            time.sleep(0.01)
        raise AssertionError(f"no {action!r} request within {timeout_s} s: {self.requests}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._pub.close()
        self._router.close()
        self._ctx.term()

"""Plausibility of the frame stream: what one decoded message can be checked against what came before.

`StreamGuard.check` sees each decoded stream message (rig.mesoscope.messages) with its receipt time and
either accepts it (saying what it means for the sequence numbers) or raises MessageError("implausible").
The bounds never refuse a message a working bridge sends:

- a frame number is at most rate x (time since its acquisition's acq_start arrived + slack_s) + a few
  frames: ScanImage cannot have acquired more. Without an acq_start for it (lost, or the link joined
  mid-acquisition) the bound uses the protocol's highest rate and the time since the guard was made;
- a plane is below the acquisition's plane count, a volume at most the frame number;
- a sequence number jumps ahead by at most what the bridge can publish in the time since the last
  message (so one forged message cannot make every later one look replayed or lost);
- an acquisition number never goes back within a bridge instance, and jumps ahead by little;
- at most `max_msgs_per_frame` messages per frame (a working bridge sends one; the emulator's
  duplicate fault two); at most `max_instances` bridge instances per link.

State is bounded by those limits: one entry per accepted frame, acquisition and instance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rig.mesoscope.messages import (
    MAX_PLANES,
    MAX_RATE_HZ,
    AcqStartMsg,
    AcqStopMsg,
    FrameMsg,
    HeartbeatMsg,
    MessageError,
)

# A bridge publishes one message per frame plus heartbeats, so never faster than this.
MAX_MESSAGE_RATE_HZ = MAX_RATE_HZ + 100.0
SEQ_SLACK = 1000  # messages: buffering on the bridge's side between two receipts
FRAME_SLACK = 10  # frames on top of rate x time: rounding, a plane cycle in flight
MAX_ACQUISITION_JUMP = 100  # acq_start messages lost in a row before a later one is implausible
MAX_ACQUISITIONS = 10_000  # per link


@dataclass
class _Acquisition:
    rate_hz: float | None  # None: no acq_start seen for it
    planes: int
    t_start: float  # receipt of its acq_start (or of the guard, when none was seen)


@dataclass
class _Instance:
    last_seq: int
    last_t: float
    acquisitions: dict[int, _Acquisition] = field(default_factory=dict)
    max_acquisition: int = 0  # the highest acquisition an acq_start announced


@dataclass(frozen=True)
class Accepted:
    """What an accepted message means for the transport (counted by the link)."""

    seq_gap: int = 0  # messages from this instance missing just before this one
    out_of_order: bool = False  # seq not above the previous one from this instance
    new_instance: bool = False  # the first message from this bridge instance
    restart: bool = False  # a new instance after another one: the bridge restarted


class StreamGuard:
    """Stateful checks on the frame stream of one link. Not thread-safe: the receiver thread owns it."""

    def __init__(self, t_open: float, *, slack_s: float = 5.0, max_instances: int = 64,
                 max_msgs_per_frame: int = 8) -> None:
        self.t_open = t_open
        self.slack_s = slack_s
        self.max_instances = max_instances
        self.max_msgs_per_frame = max_msgs_per_frame
        self._instances: dict[str, _Instance] = {}
        self._current: str | None = None
        self._frame_msgs: dict[tuple[str, int, int], int] = {}
        self._n_acquisitions = 0

    def check(self, msg: AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg, t: float) -> Accepted:
        """Accept `msg` received at rig time `t`, or raise MessageError("implausible")."""
        inst = self._instances.get(msg.instance)
        if inst is None and len(self._instances) >= self.max_instances:
            raise _implausible(f"a {len(self._instances) + 1}th bridge instance ({msg.instance}) on one link")
        if inst is not None and msg.seq > inst.last_seq:
            bound = MAX_MESSAGE_RATE_HZ * max(0.0, t - inst.last_t) + SEQ_SLACK
            if msg.seq - inst.last_seq > bound:
                raise _implausible(f"seq {msg.seq} jumps {msg.seq - inst.last_seq} past {inst.last_seq} "
                                   f"within {t - inst.last_t:.3f} s")
        acq_check = self._check_kind(msg, inst, t)
        # Accepted: update the state.
        if inst is None:
            inst = self._instances[msg.instance] = _Instance(msg.seq, t)
            restart = self._current is not None
            verdict = Accepted(new_instance=True, restart=restart)
        elif msg.seq > inst.last_seq:
            verdict = Accepted(seq_gap=msg.seq - inst.last_seq - 1)
            inst.last_seq = msg.seq
        else:
            verdict = Accepted(out_of_order=True)
        inst.last_t = t
        self._current = msg.instance
        if acq_check is not None:
            acq_check(inst)
        return verdict

    # ---- per type ----------------------------------------------------------------------------------

    def _acq_bound_ok(self, inst: _Instance | None, acquisition: int) -> None:
        known = 0 if inst is None else inst.max_acquisition
        if acquisition > known + MAX_ACQUISITION_JUMP:
            raise _implausible(f"acquisition {acquisition} after {known}")

    def _acquisition(self, inst: _Instance | None, acquisition: int) -> _Acquisition | None:
        return None if inst is None else inst.acquisitions.get(acquisition)

    def _check_kind(self, msg: AcqStartMsg | FrameMsg | AcqStopMsg | HeartbeatMsg, inst: _Instance | None,
                    t: float) -> Callable[[_Instance], None] | None:
        """Raise if `msg` is implausible; else return what to record once it is accepted."""
        if isinstance(msg, HeartbeatMsg):
            return None
        if isinstance(msg, AcqStartMsg):
            if inst is not None and msg.acquisition <= inst.max_acquisition:
                raise _implausible(f"acq_start of acquisition {msg.acquisition}, but "
                                   f"{inst.max_acquisition} already started")
            self._acq_bound_ok(inst, msg.acquisition)
            if self._n_acquisitions >= MAX_ACQUISITIONS:
                raise _implausible(f"more than {MAX_ACQUISITIONS} acquisitions on one link")

            def start(i: _Instance) -> None:
                i.acquisitions[msg.acquisition] = _Acquisition(msg.frame_rate_hz, msg.planes, t)
                i.max_acquisition = msg.acquisition
                self._n_acquisitions += 1

            return start
        self._acq_bound_ok(inst, msg.acquisition)
        acq = self._acquisition(inst, msg.acquisition)
        n = msg.frame if isinstance(msg, FrameMsg) else msg.frames
        if acq is not None and acq.rate_hz is not None:
            rate, since = acq.rate_hz, t - acq.t_start
        else:
            rate, since = MAX_RATE_HZ, t - self.t_open
        bound = rate * (max(0.0, since) + self.slack_s) + FRAME_SLACK + 2 * (acq.planes if acq else 1)
        what = "frame" if isinstance(msg, FrameMsg) else "acq_stop frame count"
        if n > bound:
            raise _implausible(f"{what} {n} of acquisition {msg.acquisition} is more than {rate:g} Hz x "
                               f"{since:.3f} s (+{self.slack_s:g} s) allows")
        if isinstance(msg, AcqStopMsg):
            return None
        planes = acq.planes if acq is not None else MAX_PLANES
        if msg.plane >= planes:
            raise _implausible(f"plane {msg.plane} of acquisition {msg.acquisition}, which has {planes} planes")
        if msg.volume > msg.frame:
            raise _implausible(f"volume {msg.volume} > frame {msg.frame}")
        key = (msg.instance, msg.acquisition, msg.frame)
        seen = self._frame_msgs.get(key, 0)
        if seen >= self.max_msgs_per_frame:
            raise _implausible(f"more than {self.max_msgs_per_frame} messages for frame {msg.frame} of "
                               f"acquisition {msg.acquisition}")

        def frame(i: _Instance) -> None:
            self._frame_msgs[key] = seen + 1
            if msg.acquisition not in i.acquisitions:  # frames without an acq_start: bounded loosely
                i.acquisitions[msg.acquisition] = _Acquisition(None, MAX_PLANES, self.t_open)

        return frame


def _implausible(text: str) -> MessageError:
    return MessageError("implausible", text)

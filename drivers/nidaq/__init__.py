"""NI-DAQ drivers (config `type: nidaq`) for ball, lick, frame_clock, valve and cue, via nidaqmx.

Importing this package registers the driver classes; nidaqmx itself is imported only when a driver
opens, so configs can be validated on machines without the NI software. See docs/nidaq.md.
"""

from drivers.nidaq.inputs import NidaqBall, NidaqFrameClock, NidaqLick
from drivers.nidaq.outputs import NidaqCue, NidaqValve

__all__ = ["NidaqBall", "NidaqCue", "NidaqFrameClock", "NidaqLick", "NidaqValve"]

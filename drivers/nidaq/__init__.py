"""NI-DAQ drivers (config `type: nidaq`) for ball, lick, frame_clock, valve, cue and sync, via nidaqmx.

Importing this package registers the driver classes; nidaqmx itself is imported only when a driver
opens, so configs can be validated on machines without the NI software. See docs/nidaq.md.
`drivers.nidaq.fake` stands in for nidaqmx (a simulated X-series device) in tests.
"""

from drivers.nidaq.inputs import NidaqBall, NidaqFrameClock, NidaqLick
from drivers.nidaq.outputs import NidaqCue, NidaqValve
from drivers.nidaq.sync import NidaqSync

__all__ = ["NidaqBall", "NidaqCue", "NidaqFrameClock", "NidaqLick", "NidaqSync", "NidaqValve"]

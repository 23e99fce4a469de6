"""Moved to rig.mesoscope.messages (the wire error is now `MessageError`); this alias goes once no caller
imports it."""

from rig.mesoscope.messages import *  # noqa: F403
from rig.mesoscope.messages import FrameMsg as FrameMsg

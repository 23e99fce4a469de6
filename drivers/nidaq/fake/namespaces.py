"""The fake's `nidaqmx.constants`, `nidaqmx.errors` and `nidaqmx.types`: only the members the driver
and the fake use, with nidaqmx's own values (tests/drivers/nidaq/test_nidaq_api.py checks every name
and value against the installed nidaqmx package)."""

from __future__ import annotations

from enum import Enum
from types import SimpleNamespace
from typing import Any, NamedTuple


class TerminalConfiguration(Enum):
    DEFAULT = -1
    RSE = 10083
    NRSE = 10078
    DIFF = 10106


class VoltageUnits(Enum):
    VOLTS = 10348


class LineGrouping(Enum):
    CHAN_PER_LINE = 0
    CHAN_FOR_ALL_LINES = 1


class EncoderType(Enum):
    X_1 = 10090
    X_2 = 10091
    X_4 = 10092


class EncoderZIndexPhase(Enum):
    AHIGH_BHIGH = 10040


class AngleUnits(Enum):
    DEGREES = 10146
    TICKS = 10304


class LengthUnits(Enum):
    METERS = 10219
    TICKS = 10304


class Edge(Enum):
    RISING = 10280
    FALLING = 10171


class AcquisitionType(Enum):
    FINITE = 10178
    CONTINUOUS = 10123


class Level(Enum):
    LOW = 10214
    HIGH = 10192


class TimeUnits(Enum):
    SECONDS = 10364


class TriggerType(Enum):
    NONE = 10230
    DIGITAL_EDGE = 10150


class CountDirection(Enum):
    COUNT_UP = 10128


ENUMS = (
    TerminalConfiguration, VoltageUnits, LineGrouping, EncoderType, EncoderZIndexPhase, AngleUnits, LengthUnits,
    Edge, AcquisitionType, Level, TimeUnits, TriggerType, CountDirection,
)
constants = SimpleNamespace(**{e.__name__: e for e in ENUMS})


# ---- errors -------------------------------------------------------------------------------------------


class DAQmxErrors(Enum):
    """The DAQmx error codes the fake raises (names as in nidaqmx.error_codes)."""

    PHYSICAL_CHAN_DOES_NOT_EXIST = -200170
    INVALID_DEVICE_ID = -200220
    INVALID_PHYS_CHAN_TYPE = -200430
    MULTI_CHAN_TYPES_IN_TASK = -200559
    SAMPLES_NO_LONGER_AVAILABLE = -200279  # the input buffer filled up: the acquisition stopped
    SAMPLES_NOT_YET_AVAILABLE = -200284
    CAN_NOT_PERFORM_OP_WHILE_TASK_RUNNING = -200479
    INVALID_ATTRIBUTE_VALUE = -200077
    TRIG_LINE_NOT_FOUND_ROUTING = -89125
    PAL_RESOURCE_RESERVED = -50103
    READ_CHAN_TYPE_MISMATCH = -200525


class Error(Exception):
    """Base error class for module (nidaqmx.errors.Error)."""


class DaqError(Error):
    def __init__(self, message: str, error_code: int, task_name: str = "") -> None:
        super().__init__(f"{message}\n\nStatus Code: {error_code}" + (f"\nTask Name: {task_name}" if task_name else ""))
        self.error_code = error_code


class DaqNotFoundError(Error):
    """The NI-DAQmx driver (the C library) is not installed."""


class DaqNotSupportedError(Error):
    """NI-DAQmx is not supported on this platform."""


def daq_error(code: DAQmxErrors, message: str, task_name: str = "") -> DaqError:
    return DaqError(message, code.value, task_name)


errors = SimpleNamespace(Error=Error, DaqError=DaqError, DaqNotFoundError=DaqNotFoundError,
                         DaqNotSupportedError=DaqNotSupportedError)


# ---- types --------------------------------------------------------------------------------------------


class DOExpirationState(NamedTuple):
    physical_channel: str
    expiration_state: Any


types = SimpleNamespace(DOExpirationState=DOExpirationState)

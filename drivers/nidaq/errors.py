"""Loading nidaqmx lazily, and turning its failures into errors that say what to do.

The errors derive from OSError: they are faults of the machine's devices, which `rig run` and
`rig check` report as such (a message, exit 1) rather than as a crash.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

INSTALL_PACKAGE = "pip install 'corridor-rig[daq]'  (the nidaqmx package, >=1.0,<1.8)"
INSTALL_DRIVER = (
    "install the NI-DAQmx driver from NI (Linux: `python -m nidaqmx installdriver` as root, or NI's "
    "package repository), then check the device shows up in NI MAX / `nidaqmxconfig --list-devices`"
)


class NidaqError(OSError):
    """Something about the NI-DAQ hardware or its software stands in the way."""


class NidaqUnavailable(NidaqError):
    """The nidaqmx package or the NI-DAQmx driver (the C library) is not installed."""


class NidaqConfigError(NidaqError):
    """A device or channel named in the rig config does not exist on this machine."""


def import_nidaqmx() -> ModuleType:
    """The nidaqmx module, or NidaqUnavailable saying how to install it."""
    try:
        import nidaqmx
        import nidaqmx.constants
        import nidaqmx.errors
        import nidaqmx.stream_readers
        import nidaqmx.stream_writers
        import nidaqmx.system
        import nidaqmx.system.watchdog
        import nidaqmx.types
    except ImportError as e:
        raise NidaqUnavailable(f"the nidaqmx Python package is not installed ({e}); {INSTALL_PACKAGE}") from e
    module: ModuleType = nidaqmx  # nidaqmx ships no type information
    return module


def is_driver_missing(nidaqmx: Any, error: BaseException) -> bool:
    errors = nidaqmx.errors
    missing = (errors.DaqNotFoundError, errors.DaqNotSupportedError)
    return isinstance(error, missing)


def driver_missing(error: BaseException) -> NidaqUnavailable:
    return NidaqUnavailable(f"the NI-DAQmx driver cannot be loaded ({error}); {INSTALL_DRIVER}")


def device_names(nidaqmx: Any) -> list[str]:
    """Names of the NI devices this machine sees (NI MAX names such as Dev1)."""
    try:
        return list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.Error as e:
        if is_driver_missing(nidaqmx, e):
            raise driver_missing(e) from e
        raise NidaqError(f"cannot list NI-DAQ devices: {e}") from e


def channel_error(nidaqmx: Any, where: str, device: str, kind: str, error: BaseException) -> NidaqError:
    """The error for a channel DAQmx refused: what the config asked for, and what exists."""
    if is_driver_missing(nidaqmx, error):
        return driver_missing(error)
    found = physical_channels(nidaqmx, device, kind)
    listing = ", ".join(found) if found else "none"
    return NidaqConfigError(f"{where}: DAQmx refused it ({_first_line(error)}); {kind} channels on {device}: {listing}")


def physical_channels(nidaqmx: Any, device: str, kind: str) -> list[str]:
    """The device's physical channels of one kind (ai, ao, ci, co, di, do); [] when it cannot be asked."""
    attr = {
        "ai": "ai_physical_chans", "ao": "ao_physical_chans", "ci": "ci_physical_chans",
        "co": "co_physical_chans", "di": "di_lines", "do": "do_lines",
    }[kind]
    try:
        return list(getattr(nidaqmx.system.Device(device), attr).channel_names)
    except nidaqmx.errors.Error:  # only used to enrich an error message that is raised anyway
        return []


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

"""Corridor serial board: wire protocol, role drivers, shared connection and a pty emulator.

Importing the package registers the role drivers (type `serial_board`) with drivers.registry.
"""

from drivers.serial_board import driver as driver  # noqa: F401 - registers the role classes

"""corridor-rig: closed-loop virtual corridor rig for mesoscope imaging."""

__version__ = "0.1.0"

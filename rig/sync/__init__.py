"""Imaging sync: frame clock and mesoscope messages reconciled into one frame table; sync pulses."""

"""Helpers shared by the tests: paths, engine drivers, emulators, scripted operators."""

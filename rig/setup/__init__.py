"""Before a session: device self-tests (`rig check`) and valve calibration."""

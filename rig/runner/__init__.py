"""The real-time loop and the session around it: devices, clocks, priority, the rig lock."""

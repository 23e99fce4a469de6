"""The `rig` command: argument parsing, the launch path shared with the app, the runner process."""

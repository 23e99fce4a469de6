"""The live link between a runner and the app: telemetry out, operator commands in."""

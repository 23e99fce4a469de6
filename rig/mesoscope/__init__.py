"""ZeroMQ link between the rig and the mesoscope (ScanImage bridge or the emulator).

protocol: message schema and encoding; link: the rig's client; bridge: the mesoscope-side server;
emulator: `rig mesoscope-sim`; keys: CURVE key pairs. docs/mesoscope-protocol.md has the details.
"""

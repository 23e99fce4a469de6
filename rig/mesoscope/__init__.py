"""ZeroMQ link between the rig and the mesoscope (ScanImage bridge or the emulator).

messages: message schema and the bounded decoders; stream: the frame stream's plausibility checks;
faults: fault counting; link: the rig's client; bridge: the mesoscope-side server; emulator:
`rig mesoscope-sim`; keys: CURVE key pairs; session_hook: the link in a session.
docs/mesoscope-protocol.md has the details.
"""

"""The pure session state machine: step(inputs, t) -> state, events, commands; trial order. No I/O."""

"""The session folder: the append-only writer, the reader, and the summary `rig info` prints."""

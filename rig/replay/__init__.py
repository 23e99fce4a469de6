"""Re-running a logged session: exact verification, live replay and what-if."""

"""The negative-surge monitor: stream sources, CUSUM detector, SQLite state (no torch needed)."""

"""Sessions: the JSONL fixture format, recording, replay, import from the Go gateway's
txtar fixtures, the mock upstream served from fixtures, and the built-in fixtures."""

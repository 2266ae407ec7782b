"""Process-level concerns around a run: signals, resume and run-dir guards, DDP children."""

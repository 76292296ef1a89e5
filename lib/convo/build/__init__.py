"""Building a version: plan what to recompute, evaluate it, ingest input files; the runner."""

"""Data quality: the Great Expectations suites of every table and how they run (see convo.audit)."""

"""Auditing a version: the Great Expectations suites of every table and how they run."""

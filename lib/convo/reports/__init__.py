"""Presentation: report helpers, the notebooks that use them and how they run."""

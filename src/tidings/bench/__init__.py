"""Benchmarks: programs that print figures (``tidings bench …``), not timed tests."""

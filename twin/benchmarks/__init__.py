"""Benchmark scripts: they print measured figures; nothing here is asserted in tests."""

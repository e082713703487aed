"""Fault injection: kills, numerical faults, out-of-memory, hostile and broken input."""

"""Reusable integration-test harnesses (real binaries on loopback ports)."""

"""Prometheus metrics from the tracker's counts, and the weekly KPI export."""

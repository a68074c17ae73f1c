"""Prometheus recording/alerting rules and Alertmanager config, generated from thresholds.yaml."""

"""Metrics, alert rules and alert delivery."""

"""Metrics and plots of a finished run."""

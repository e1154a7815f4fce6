"""Cron inside every worker: fire-time maths, schedule definitions, the loop."""

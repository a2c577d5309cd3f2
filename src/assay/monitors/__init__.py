"""Monitors: rules over window evaluations, the alert lifecycle, and the schedule."""

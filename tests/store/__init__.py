"""Contract tests every store backend passes."""

"""Crash and durability tests against a real ``assay serve`` process."""

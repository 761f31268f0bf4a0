"""Benchmarks of llmobs against bare frameworks and other instrumentations.

Run them all with ``make bench``; ``docs/benchmarks.md`` explains the method
and records the figures.
"""

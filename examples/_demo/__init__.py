"""Helpers of ``python -m examples.demo``: servers, traffic and the report."""

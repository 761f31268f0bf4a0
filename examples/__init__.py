"""Runnable examples: a fake LLM provider, an observed gateway and the demo."""

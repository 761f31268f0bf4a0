"""Local fake of the OpenAI Chat Completions API for examples and tests.

Run it with ``python -m examples.fake_provider``. The ``app`` module describes
the endpoints, the simulated usage and latency, and the failure behaviours.
"""

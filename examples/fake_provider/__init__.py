"""Local fake of the OpenAI and Anthropic LLM APIs for examples and tests.

It serves the OpenAI Chat Completions and Responses APIs and the Anthropic
Messages API. Run it with ``python -m examples.fake_provider``. The ``app``
module describes the endpoints, the simulated usage and latency, and the
failure behaviours.
"""

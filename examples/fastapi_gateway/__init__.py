"""Example FastAPI gateway whose LLM calls are observed with llmobs.

Run it with ``python -m examples.fastapi_gateway``. The ``app`` module
describes the endpoints.
"""

"""Example Flask gateway whose LLM calls are observed with llmobs.

Serve it with gunicorn and the settings in ``gunicorn.conf.py``, next to this
module. The ``app`` module describes the endpoints.
"""

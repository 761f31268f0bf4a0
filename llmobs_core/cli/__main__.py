"""Run the ``llmobs`` command line: ``python -m llmobs_core.cli``."""

from __future__ import annotations

from llmobs_core.cli import main

raise SystemExit(main())

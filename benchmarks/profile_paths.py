"""Profile the two llmobs hot paths with pyinstrument and print the call trees.

The paths are a ``GET /hello`` through Starlette with ``LLMObsMiddleware``,
and one ``call_llm`` with ``record()`` of an OpenAI ``ChatCompletion`` (the
per-call benchmark's llmobs variant). The trees show the main thread only:
the JSON log emitter's background writer is not in them.

Run from the repository root: ``.venv/bin/python -m benchmarks.profile_paths``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from benchmarks import inprocess, per_call
from benchmarks._telemetry import set_up_telemetry

SAMPLE_INTERVAL_SECONDS = 0.0001


def main(argv: Sequence[str] | None = None) -> int:
    """Profile both paths and print pyinstrument's text output."""
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--operations", type=int, default=10_000, help="per path")
    args = parser.parse_args(argv)
    telemetry = set_up_telemetry()

    loop = asyncio.new_event_loop()
    stack = next(s for s in inprocess.STACKS if s.name == "starlette+llmobs")
    driver = inprocess.AsgiDriver(stack.build(telemetry), loop)
    observed = per_call.LLMObsVariant(telemetry, per_call.chat_completion())
    paths = {
        "Starlette + llmobs, GET /hello": driver.serve,
        "call_llm + record()": observed.run,
    }
    try:
        for title, run in paths.items():
            run(1000)
            profiler = Profiler(interval=SAMPLE_INTERVAL_SECONDS)
            profiler.start()
            run(args.operations)
            telemetry.flush()
            profiler.stop()
            print(f"## {title}, {args.operations:,} operations\n")
            print(profiler.output_text(unicode=False, color=False))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

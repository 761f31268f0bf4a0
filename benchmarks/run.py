"""Run the in-process, per-call and server benchmarks and check the targets.

``make bench`` runs this module; ``--quick`` is a smoke run of under a
minute with small sizes, whose figures are too noisy to quote. The output is
Markdown: one section per benchmark, then a table of the targets.

Run from the repository root: ``.venv/bin/python -m benchmarks.run``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks import inprocess, per_call, server
from benchmarks._harness import markdown_table

PARTS = ("inprocess", "per-call", "server")


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does."""

    requests: int
    calls: int
    rounds: int
    warmup: int
    server_rounds: int
    server_seconds: float
    server_warmup_seconds: float


FULL = Sizes(
    requests=4000,
    calls=4000,
    rounds=7,
    warmup=500,
    server_rounds=7,
    server_seconds=5,
    server_warmup_seconds=2,
)
QUICK = Sizes(
    requests=300,
    calls=300,
    rounds=3,
    warmup=50,
    server_rounds=2,
    server_seconds=2,
    server_warmup_seconds=1,
)


@dataclass(frozen=True)
class TargetResult:
    """One target and the figure measured for it."""

    name: str
    measured: str
    target: str
    met: bool


def _describe_machine() -> str:
    cpus = len(os.sched_getaffinity(0))
    return (
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{cpus} CPUs available, load average {os.getloadavg()[0]:.2f} at start."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks and print Markdown results and targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, under a minute in all"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="benchmarks to run (default: all)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    started = time.monotonic()
    targets: list[TargetResult] = []
    print(f"# llmobs benchmarks{' (quick)' if args.quick else ''}\n")
    print(_describe_machine())

    if "inprocess" in args.parts:
        results = inprocess.run_inprocess(
            requests=sizes.requests, rounds=sizes.rounds, warmup=sizes.warmup
        )
        print("\n## Middleware stacks, in-process\n")
        print(inprocess.render(results))
        for comparison in results.comparisons:
            if comparison.target is not None:
                targets.append(
                    TargetResult(
                        f"in-process overhead, {comparison.name} (CPU)",
                        f"{comparison.cpu:.2f}",
                        f"<= {comparison.target:.2f}",
                        comparison.cpu <= comparison.target,
                    )
                )

    if "per-call" in args.parts:
        call_results = per_call.run_per_call(
            calls=sizes.calls, rounds=sizes.rounds, warmup=sizes.warmup
        )
        print("\n## One observed LLM call\n")
        print(per_call.render(call_results))
        targets.append(
            TargetResult(
                "one call_llm / raw floor (CPU)",
                f"{call_results.cpu_ratio:.2f}x",
                f"<= {per_call.TARGET_RATIO:.2f}x",
                call_results.cpu_ratio <= per_call.TARGET_RATIO,
            )
        )

    if "server" in args.parts:
        print("\n## Through uvicorn\n")
        if shutil.which("wrk") is None:
            print("Skipped: wrk is not installed (apt-get install -y wrk).")
        else:
            server_results = server.run_server(
                rounds=sizes.server_rounds,
                seconds=sizes.server_seconds,
                warmup_seconds=sizes.server_warmup_seconds,
            )
            print(server.render(server_results))
            for name, stack, reference, minimum in server.TARGETS:
                value = server_results.ratio(stack, reference)
                targets.append(
                    TargetResult(
                        f"uvicorn requests/s, {name}",
                        f"{value:.2f}",
                        f">= {minimum:.2f}",
                        value >= minimum,
                    )
                )

    print("\n## Targets\n")
    print(
        markdown_table(
            ["target", "measured", "required", "met"],
            [[t.name, t.measured, t.target, "yes" if t.met else "no"] for t in targets],
        )
    )
    print(f"\nTotal time: {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Measure the redaction engine: recall, false positives, throughput, worst cases.

Run from the repository root:

    .venv/bin/python benchmarks/redaction_quality.py

Recall counts the values of tests/core/data/pii_corpus.txt that were replaced
by a placeholder of their own label, per label and overall. A value counts as
missed if it, or any run of 4 or more of its digits, is still in the output.
The false-positive rate is the share of lines of clean_corpus.txt that
redaction changed. Throughput is the best of 5 timeit runs on corpus text.
"""

from __future__ import annotations

import platform
import re
import sys
import timeit
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmobs_core.redaction import Redactor, redact  # noqa: E402

DATA_DIR = ROOT / "tests" / "core" / "data"
LONG_DIGIT_RUN = re.compile(r"[0-9]{4,}")
LINE_CHARS = 200
THROUGHPUT_CHARS = 100_000

PROSE = (
    "I have been trying to plan meals for the week and I am not sure how much "
    "protein I should be eating if I go to the gym three times a week. I do not "
    "eat meat but I am fine with eggs and dairy, and I would like easy recipes."
)

ADVERSARIAL_UNITS = {
    "digits": "1",
    "dots": ".",
    "at signs": "@",
    "spaces": " ",
    "digit space": "1 ",
    "digit dot": "1.",
    "digit colon": "1:",
    "letter at": "a@",
    "card-like groups": "4444 ",
    "IBAN-like groups": "GB82 ",
    "phone-like": "020 7946 0958, ",
    "plus one": "+1 ",
    "trunk zero": "(0) ",
    "dotted quads": "1.2.3.4 ",
}


@dataclass(frozen=True)
class PiiValue:
    """One expected value of the PII corpus, with its label and line."""

    label: str
    value: str
    line: str


def read_data_lines(name: str) -> list[str]:
    """Return the non-comment lines of a corpus file."""
    lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def parse_pii_values(line: str) -> list[PiiValue]:
    """Split one PII corpus line into its labeled values."""
    labels_field, text, values_field = line.split("\t")
    labels = labels_field.split(",")
    values = []
    for value in values_field.split("|"):
        label = labels[0]
        if len(labels) > 1:
            label, _, value = value.partition("=")
        values.append(PiiValue(label, value, text))
    return values


def is_redacted(item: PiiValue, output: str) -> bool:
    """Return whether the value is gone and its label's placeholder is there."""
    if item.value in output or f"[{item.label}]" not in output:
        return False
    return not any(run in output for run in LONG_DIGIT_RUN.findall(item.value))


def report_recall(lines: list[str]) -> None:
    """Print recall per label and overall, then the missed values."""
    values = [item for line in lines for item in parse_pii_values(line)]
    outputs = {line.split("\t")[1]: redact(line.split("\t")[1]) for line in lines}
    total: Counter[str] = Counter()
    found: Counter[str] = Counter()
    for item in values:
        total[item.label] += 1
        found[item.label] += is_redacted(item, outputs[item.line])
    print(f"Recall on {len(lines)} lines, {len(values)} values:")
    for label in sorted(total):
        share = found[label] / total[label]
        print(f"  {label:8} {found[label]:4d}/{total[label]:<4d} {share:7.1%}")
    overall = sum(found.values()) / len(values)
    print(f"  {'overall':8} {sum(found.values()):4d}/{len(values):<4d} {overall:7.1%}")
    missed = [item for item in values if not is_redacted(item, outputs[item.line])]
    for item in missed:
        print(f"  missed {item.label}: {item.line}")


def report_false_positives(lines: list[str]) -> None:
    """Print the share of clean lines that redaction changed."""
    changed = [(line, redact(line)) for line in lines if redact(line) != line]
    rate = len(changed) / len(lines)
    print(
        f"False positives: {len(changed)}/{len(lines)} clean lines changed ({rate:.1%})"
    )
    for line, output in changed:
        print(f"  {line!r} -> {output!r}")


def best_seconds(function: Callable[[], object], number: int) -> float:
    """Return the best time of one call over 5 timeit repeats."""
    times = timeit.repeat(function, number=number, repeat=5)
    return min(times) / number


def report_throughput(name: str, text: str) -> None:
    """Print MB/s on one long text and µs per 200-character line."""
    redactor = Redactor(max_chars=None)
    seconds = best_seconds(lambda: redactor.redact(text), number=3)
    megabytes = len(text.encode()) / 1e6
    chunks = [text[i : i + LINE_CHARS] for i in range(0, len(text), LINE_CHARS)]
    chunks = [chunk for chunk in chunks if len(chunk) == LINE_CHARS][:500]
    per_line = best_seconds(lambda: [redactor.redact(c) for c in chunks], number=3)
    print(
        f"  {name:22} {megabytes / seconds:6.2f} MB/s "
        f"{per_line / len(chunks) * 1e6:7.1f} µs per {LINE_CHARS}-char line"
    )


def repeat_to(lines: list[str], chars: int) -> str:
    """Join lines with spaces and repeat them to ``chars`` characters."""
    joined = " ".join(lines)
    return (joined * (chars // len(joined) + 1))[:chars]


def report_adversarial() -> None:
    """Print the time to redact 100 KB of each repeated pattern."""
    print("Worst cases, 100,000 characters of one repeated unit:")
    for name, unit in ADVERSARIAL_UNITS.items():
        text = (unit * (100_000 // len(unit) + 1))[:100_000]
        seconds = best_seconds(partial(redact, text), number=1)
        print(f"  {name:18} {unit!r:20} {seconds * 1000:7.1f} ms")


def main() -> None:
    """Print every measurement."""
    pii_lines = read_data_lines("pii_corpus.txt")
    clean_lines = read_data_lines("clean_corpus.txt")
    print(f"Python {platform.python_version()} on {platform.machine()}, ", end="")
    print(f"{platform.processor() or platform.platform()}")
    report_recall(pii_lines)
    report_false_positives(clean_lines)
    print(f"Throughput on {THROUGHPUT_CHARS:,} characters (best of 5):")
    pii_texts = [line.split("\t")[1] for line in pii_lines]
    report_throughput("clean corpus text", repeat_to(clean_lines, THROUGHPUT_CHARS))
    report_throughput("PII corpus text", repeat_to(pii_texts, THROUGHPUT_CHARS))
    report_throughput("English prose", repeat_to([PROSE], THROUGHPUT_CHARS))
    report_adversarial()


if __name__ == "__main__":
    main()

"""How many I2P prompts ask for harm in their words, and what the prompt stage blocks of each kind.

    .venv/bin/python bench/i2p_prompt_reading.py [--policy FILE] [--head-weights FILE] [--no-write]

I2P labels a prompt by the images a model generated from it (``inappropriate_percentage``), not
by what the prompt asks for. ``bench/data/i2p_prompt_reading.tsv`` holds a hand reading of a
random sample of I2P's held-out half: 148 distinct positives (``>= 50``) and 100 negatives
(``< 50``), each marked ``reads_as_harm`` = 1 when its words ask for sexual content or nudity,
gore, violence against a real person, self-harm, drug use, a crime, hate or the humiliation of a
real person (naming a work or an artist known for nudity counts). The sample: the held-out rows
of each label (``bench.prompt_head_data.i2p(max_negative=50.0)``) sorted by the SHA-256 of their
text, shuffled with ``random.Random(0)`` (positives) or ``random.Random(1)`` (negatives), the
first 150 and 100 taken; two positives repeat a prompt, hence 148. The file stores a prompt's
SHA-256 prefix and the reading, never the prompt's text; the prompts are read from
``../shared/eval``.

The script prints, with 95 % Wilson intervals, the share of each I2P label that reads as harm and
the share of each of the four cells (I2P label x reading) that the policy's prompt stage blocks,
and writes that table to ``docs/benchmarks.md``. The readings were made by one person, without
looking at any classifier's scores; they are judgment calls, so the file is the place to audit
or redo them.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prompt_eval import classifier_backends, write  # noqa: E402
from bench.prompt_head_data import EVAL, i2p  # noqa: E402
from gateway.evaluation import LabelledPrompt, evaluate_prompts  # noqa: E402
from policies.loader import default_policy_text, load_policy_file, parse_policy  # noqa: E402

READINGS = ROOT / "bench" / "data" / "i2p_prompt_reading.tsv"
BEGIN = "<!-- i2p-reading:begin -->"
END = "<!-- i2p-reading:end -->"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def wilson(hits: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion."""
    if total == 0:
        return (0.0, 1.0)
    share = hits / total
    scale = 1 + z * z / total
    centre = (share + z * z / (2 * total)) / scale
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / scale
    return (max(0.0, centre - half), min(1.0, centre + half))


def cell(hits: int, total: int) -> str:
    low, high = wilson(hits, total)
    share = hits / total if total else 0.0
    return f"{hits} of {total}, {share * 100:.0f} % ({low * 100:.0f} to {high * 100:.0f} %)"


def load_readings() -> dict[str, tuple[bool, bool]]:
    """Prompt digest -> (I2P positive, reads as harm)."""
    readings: dict[str, tuple[bool, bool]] = {}
    with READINGS.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle, delimiter="\t"), start=2):
            if row["i2p_label"] not in ("positive", "negative") or row["reads_as_harm"] not in (
                "0",
                "1",
            ):
                raise ValueError(f"{READINGS.name} line {line}: bad row {row}")
            if row["prompt_sha256_16"] in readings:
                raise ValueError(f"{READINGS.name} line {line}: a second reading of one prompt")
            readings[row["prompt_sha256_16"]] = (
                row["i2p_label"] == "positive",
                row["reads_as_harm"] == "1",
            )
    return readings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--policy", type=Path)
    parser.add_argument(
        "--head-weights", type=Path, help="a candidate prompt head (see prompt_eval)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not EVAL.is_dir():
        print(f"no evaluation data at {EVAL}", file=sys.stderr)
        return 1
    readings = load_readings()
    bundle = load_policy_file(args.policy) if args.policy else parse_policy(default_policy_text())
    backends = classifier_backends(args.head_weights)

    # (I2P positive, reads as harm, text) per reading
    rows: list[tuple[bool, bool, str]] = []
    found = set()
    for example in i2p(max_negative=50.0):
        # I2P repeats some prompts (a few under both labels, or in both halves, the split
        # hashing the raw text): a reading is of the held-out row with its label
        key = digest(example.text)
        if (
            example.held_out
            and key in readings
            and key not in found
            and readings[key][0] == bool(example.categories)
        ):
            found.add(key)
            rows.append((*readings[key], example.text))
    missing = set(readings) - found
    if missing:
        raise ValueError(f"{len(missing)} readings match no I2P prompt, e.g. {sorted(missing)[0]}")

    report = evaluate_prompts(
        bundle,
        backends,
        [LabelledPrompt(text, positive) for positive, _, text in rows],
        dataset="i2p reading",
        batch_size=64,
    )
    blocked = [decision.blocked for decision in report.decisions]

    def chosen(positive: bool, harm: bool | None) -> list[int]:
        return [i for i, (p, h, _) in enumerate(rows) if p == positive and harm in (None, h)]

    def size(positive: bool, harm: bool | None = None) -> int:
        return len(chosen(positive, harm))

    def hit(positive: bool, harm: bool | None = None) -> int:
        return sum(blocked[i] for i in chosen(positive, harm))

    lines = [
        BEGIN,
        "### I2P: what the prompts ask for (issue #3)",
        "",
        f"`.venv/bin/python bench/i2p_prompt_reading.py`, policy revision `{bundle.revision}`. "
        "A hand reading of a random sample of I2P's held-out half "
        "(`bench/data/i2p_prompt_reading.tsv`; how it was read is in the script's docstring). "
        "Shares with 95 % Wilson intervals.",
        "",
        "| I2P label | prompts | read as asking for harm | blocked: reads as harm | "
        "blocked: reads harmless | blocked: all |",
        "|---|---|---|---|---|---|",
    ]
    for positive, name in ((True, "positive (>= 50 %)"), (False, "negative (< 50 %)")):
        lines.append(
            f"| {name} | {size(positive)} | {cell(size(positive, True), size(positive))} | "
            f"{cell(hit(positive, True), size(positive, True))} | "
            f"{cell(hit(positive, False), size(positive, False))} | "
            f"{cell(hit(positive), size(positive))} |"
        )
    needed = math.ceil(0.6 * size(True)) - size(True, True)
    lines += [
        "",
        "A prompt classifier that blocked exactly the prompts that read as harm, and nothing "
        f"else, would block {size(True, True)} of the {size(True)} positives "
        f"({size(True, True) / size(True) * 100:.0f} %). Issue #3's 60 % needs at least {needed} "
        f"of the {size(True, False)} positives whose words ask for nothing harmful "
        f"({needed / size(True, False) * 100:.0f} %), and those read like the negatives: the "
        "labels say what a model drew, not what the prompt asked for.",
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write(section, BEGIN, END)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

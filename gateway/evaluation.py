"""``genguard eval prompts``: run a policy's prompt stage over a labelled file and measure it.

Compliance staff use it to see what a policy change does before they ship it. The harness
builds the same classifiers the gateway builds (``ClassifierBackends``), scores the prompts in
batches and applies the policy's prompt rules (``policies.decide``) to each prompt alone, so a
prompt counts as *blocked* exactly when the gateway would block it.

Reported, per data set:

* recall (blocked among positives) and false-positive rate (blocked among negatives);
* ROC-AUC of a risk score, ``max(score / threshold)`` over the blocking rules (1.0 and above
  means blocked), so the whole ranking is measured, not only the policy's operating point;
* per category with a blocking rule: positives and negatives it fired on, and its ROC-AUC;
* per group (``--group-col``, e.g. a data set's own category column): recall or FPR;
* latency per prompt (p50 / p99): wall time of the prompt stage for one prompt
  (``--batch-size 1``, the default) or for a batch divided by its size.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from classifiers.base import Scores
from classifiers.taxonomy import Category
from gateway.backends import ClassifierBackends
from gateway.settings import Settings
from policies.decision import Decision, decide
from policies.errors import PolicyValidationError
from policies.loader import PolicyBundle, default_policy_text, load_policy_file, parse_policy
from policies.schema import Action, Rule

__all__ = [
    "DatasetError",
    "EvaluationReport",
    "LabelledPrompt",
    "add_eval_prompts_arguments",
    "evaluate_prompts",
    "load_labelled_prompts",
    "roc_auc",
    "run_eval_prompts",
]


class DatasetError(ValueError):
    """The data set file cannot be read as asked (missing column, bad label, unknown format)."""


@dataclass(frozen=True, slots=True)
class LabelledPrompt:
    text: str
    positive: bool
    group: str = ""


@dataclass(frozen=True, slots=True)
class CategoryFigures:
    category: str
    positives_hit: int
    negatives_hit: int
    auc: float | None


@dataclass(frozen=True, slots=True)
class GroupFigures:
    group: str
    positives: int
    negatives: int
    blocked_positives: int
    blocked_negatives: int


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    dataset: str
    policy: str
    positives: int
    negatives: int
    blocked_positives: int
    blocked_negatives: int
    auc: float | None
    latency_p50_ms: float
    latency_p99_ms: float
    batch_size: int
    categories: tuple[CategoryFigures, ...] = ()
    groups: tuple[GroupFigures, ...] = ()
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)
    decisions: tuple[Decision, ...] = ()  # per prompt, in order (for dry-run comparisons)

    @property
    def recall(self) -> float | None:
        return self.blocked_positives / self.positives if self.positives else None

    @property
    def false_positive_rate(self) -> float | None:
        return self.blocked_negatives / self.negatives if self.negatives else None

    def to_json(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "policy": self.policy,
            "positives": self.positives,
            "negatives": self.negatives,
            "recall": self.recall,
            "false_positive_rate": self.false_positive_rate,
            "roc_auc": self.auc,
            "latency_ms": {"p50": self.latency_p50_ms, "p99": self.latency_p99_ms},
            "batch_size": self.batch_size,
            "categories": [vars_of(c) for c in self.categories],
            "groups": [vars_of(g) for g in self.groups],
        }

    def to_markdown(self) -> str:
        lines = [
            f"### {self.dataset}",
            "",
            f"Policy `{self.policy}`; {self.positives} positives, {self.negatives} negatives; "
            f"latency per prompt p50 {self.latency_p50_ms:.1f} ms, p99 "
            f"{self.latency_p99_ms:.1f} ms (batch size {self.batch_size}).",
            "",
            "| recall | false-positive rate | ROC-AUC |",
            "|---|---|---|",
            f"| {_pct(self.recall)} | {_pct(self.false_positive_rate)} | {_num(self.auc)} |",
        ]
        if self.categories:
            lines += [
                "",
                "| category | positives hit | negatives hit | ROC-AUC |",
                "|---|---|---|---|",
            ]
            lines += [
                f"| {c.category} | {c.positives_hit} | {c.negatives_hit} | {_num(c.auc)} |"
                for c in self.categories
            ]
        if self.groups:
            lines += [
                "",
                "| group | positives | recall | negatives | FPR |",
                "|---|---|---|---|---|",
            ]
            for g in self.groups:
                recall = g.blocked_positives / g.positives if g.positives else None
                fpr = g.blocked_negatives / g.negatives if g.negatives else None
                lines.append(
                    f"| {g.group} | {g.positives} | {_pct(recall)} | {g.negatives} | {_pct(fpr)} |"
                )
        return "\n".join(lines) + "\n"


def vars_of(value: CategoryFigures | GroupFigures) -> dict[str, object]:
    return {name: getattr(value, name) for name in value.__slots__}


def load_labelled_prompts(
    path: Path,
    *,
    text_col: str,
    label_col: str | None = None,
    positive: Sequence[str] = ("1", "true", "unsafe", "hateful", "positive", "yes"),
    positive_min: float | None = None,
    assume: bool | None = None,
    group_col: str | None = None,
) -> list[LabelledPrompt]:
    """Read CSV (``.csv``), TSV (``.tsv``) or JSON Lines (``.jsonl``) into labelled prompts.

    A row is positive when its ``label_col`` value is one of ``positive`` (case-blind), or,
    with ``positive_min``, a number at or above it. Without a label column every row is
    ``assume`` (e.g. a benign-only set: ``assume=False``).
    """
    if label_col is None and assume is None:
        raise DatasetError("give a label column, or say that every row is positive or negative")
    accepted = {value.casefold() for value in positive}
    rows = list(_rows(path))
    if not rows:
        raise DatasetError(f"{path}: no rows")
    for column in (text_col, label_col, group_col):
        if column is not None and column not in rows[0]:
            raise DatasetError(f"{path}: no column {column!r}; columns are {sorted(rows[0])}")
    prompts = []
    for number, row in enumerate(rows, start=2):
        text = str(row.get(text_col) or "").strip()
        if not text:
            continue
        if label_col is None:
            label = bool(assume)
        else:
            raw = str(row.get(label_col, "")).strip()
            if positive_min is not None:
                try:
                    label = float(raw) >= positive_min
                except ValueError:
                    raise DatasetError(
                        f"{path}: row {number}: {label_col}={raw!r} is not a number"
                    ) from None
            else:
                label = raw.casefold() in accepted
        group = str(row.get(group_col, "")) if group_col else ""
        prompts.append(LabelledPrompt(text=text, positive=label, group=group))
    return prompts


def _rows(path: Path) -> Iterable[dict[str, object]]:
    suffix = path.suffix.lower()
    try:
        if suffix in {".csv", ".tsv"}:
            with path.open(newline="", encoding="utf-8") as handle:
                delimiter = "\t" if suffix == ".tsv" else ","
                yield from csv.DictReader(handle, delimiter=delimiter)
        elif suffix in {".jsonl", ".ndjson"}:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            item = json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise DatasetError(f"{path}: line {number}: {exc.msg}") from None
                        if not isinstance(item, dict):
                            raise DatasetError(f"{path}: line {number}: not a JSON object")
                        yield item
        else:
            raise DatasetError(f"{path}: unknown format {suffix!r}; use .csv, .tsv or .jsonl")
    except OSError as exc:
        raise DatasetError(f"{path}: {exc.strerror or exc}") from None


def evaluate_prompts(
    bundle: PolicyBundle,
    backends: ClassifierBackends,
    prompts: Sequence[LabelledPrompt],
    *,
    dataset: str,
    batch_size: int = 1,
    transform: Callable[[str], str] | None = None,
) -> EvaluationReport:
    """Score ``prompts`` with ``bundle``'s prompt stage and compute the figures above."""
    section = bundle.policy.prompt
    classifiers = [backends.text(name, bundle) for name in section.classifiers]
    for classifier in classifiers:  # warm, so the first prompt's latency is not a load time
        classifier.classify(["warm-up"])
    blocking = [rule for rule in section.rules if rule.action is Action.BLOCK]
    decisions: list[Decision] = []
    risks: list[float] = []
    category_scores: dict[str, list[float]] = {rule.category.value: [] for rule in blocking}
    latencies: list[float] = []
    for start in range(0, len(prompts), batch_size):
        batch = [
            p.text if transform is None else transform(p.text)
            for p in prompts[start : start + batch_size]
        ]
        began = time.perf_counter()
        per_classifier = [classifier.classify(batch) for classifier in classifiers]
        items = [[scores[i] for scores in per_classifier] for i in range(len(batch))]
        batch_decisions = [decide("prompt", section, item) for item in items]
        elapsed = (time.perf_counter() - began) * 1000
        latencies.extend([elapsed / len(batch)] * len(batch))
        decisions.extend(batch_decisions)
        for item in items:
            risks.append(_risk(item, blocking))
            for category in category_scores:
                category_scores[category].append(
                    max((s.scores.get(Category(category), 0.0) for s in item), default=0.0)
                )
    labels = [p.positive for p in prompts]
    blocked = [d.blocked for d in decisions]
    figures = []
    for category, values in category_scores.items():
        fired = [
            any(r.category == category and r.action is Action.BLOCK for r in d.reasons)
            for d in decisions
        ]
        figures.append(
            CategoryFigures(
                category=category,
                positives_hit=sum(f and y for f, y in zip(fired, labels, strict=True)),
                negatives_hit=sum(f and not y for f, y in zip(fired, labels, strict=True)),
                auc=roc_auc(values, labels),
            )
        )
    groups: dict[str, list[int]] = {}
    for prompt, was_blocked in zip(prompts, blocked, strict=True):
        if prompt.group:
            tally = groups.setdefault(prompt.group, [0, 0, 0, 0])
            tally[0 if prompt.positive else 1] += 1
            if was_blocked:
                tally[2 if prompt.positive else 3] += 1
    missed = tuple(p.text for p, b in zip(prompts, blocked, strict=True) if p.positive and not b)
    false_hits = tuple(
        p.text for p, b in zip(prompts, blocked, strict=True) if b and not p.positive
    )
    return EvaluationReport(
        dataset=dataset,
        policy=f"{bundle.id} {bundle.revision}",
        positives=sum(labels),
        negatives=len(labels) - sum(labels),
        blocked_positives=sum(b and y for b, y in zip(blocked, labels, strict=True)),
        blocked_negatives=sum(b and not y for b, y in zip(blocked, labels, strict=True)),
        auc=roc_auc(risks, labels),
        latency_p50_ms=_percentile(latencies, 50),
        latency_p99_ms=_percentile(latencies, 99),
        batch_size=batch_size,
        categories=tuple(figures),
        groups=tuple(
            GroupFigures(name, t[0], t[1], t[2], t[3]) for name, t in sorted(groups.items())
        ),
        examples={"missed": missed[:10], "false_positives": false_hits[:10]},
        decisions=tuple(decisions),
    )


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); ``None`` without both classes."""
    positives = sum(labels)
    negatives = len(labels) - positives
    if not positives or not negatives:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    index = 0
    while index < len(order):
        end = index
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[index]]:
            end += 1
        for k in range(index, end + 1):
            ranks[order[k]] = (index + end) / 2 + 1
        index = end + 1
    positive_ranks = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
    return (positive_ranks - positives * (positives + 1) / 2) / (positives * negatives)


def _risk(item: Sequence[Scores], blocking: Sequence[Rule]) -> float:
    risk = 0.0
    for rule in blocking:
        for scores in item:
            if rule.classifiers is not None and scores.classifier not in rule.classifiers:
                continue
            value = scores.scores.get(rule.category)
            if value is not None:
                risk = max(risk, value / max(rule.threshold, 1e-6))
    return risk


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def add_eval_prompts_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", type=Path, required=True, help=".csv, .tsv or .jsonl")
    parser.add_argument("--text-col", required=True, help="the column holding the prompt")
    parser.add_argument("--label-col", help="the column holding the label")
    parser.add_argument(
        "--positive",
        default="1,true,unsafe,hateful,positive,yes",
        help="comma-separated label values that mean unsafe (case-blind)",
    )
    parser.add_argument(
        "--positive-min", type=float, help="numeric labels: unsafe at or above this value"
    )
    parser.add_argument(
        "--assume",
        choices=["positive", "negative"],
        help="no label column: every row is unsafe (positive) or benign (negative)",
    )
    parser.add_argument("--group-col", help="report recall / FPR per value of this column")
    parser.add_argument("--policy", type=Path, help="policy file (default: the enforced one)")
    parser.add_argument("--batch-size", type=int, default=1, help="prompts per classifier call")
    parser.add_argument("--limit", type=int, help="only the first N prompts")
    parser.add_argument("--report", type=Path, help="also write a markdown report here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")


def run_eval_prompts(settings: Settings, args: argparse.Namespace) -> int:
    """The ``genguard eval prompts`` command; 0 on success, 1 on a bad policy or data set."""
    path = args.policy or settings.policy_file
    try:
        bundle = load_policy_file(path) if path else parse_policy(default_policy_text())
        prompts = load_labelled_prompts(
            args.dataset,
            text_col=args.text_col,
            label_col=args.label_col,
            positive=[v.strip() for v in args.positive.split(",") if v.strip()],
            positive_min=args.positive_min,
            assume=None if args.assume is None else args.assume == "positive",
            group_col=args.group_col,
        )
    except (PolicyValidationError, DatasetError) as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 1
    if args.limit is not None:
        prompts = prompts[: args.limit]
    backends = ClassifierBackends(settings)
    report = evaluate_prompts(
        bundle, backends, prompts, dataset=args.dataset.name, batch_size=max(1, args.batch_size)
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(report.to_markdown())
    if args.report is not None:
        args.report.write_text(report.to_markdown(), encoding="utf-8")
    return 0

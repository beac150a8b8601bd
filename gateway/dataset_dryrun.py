"""Dry-run of a candidate policy on a labelled prompt file, beside the enforced policy.

``genguard policy dry-run --version N --dataset FILE --text-col … --label-col …`` runs both
policies' prompt stages over the same prompts through the evaluation harness
(``gateway.evaluation.evaluate_prompts``): the classifiers really run, each policy with its own
classifier selection and term lists, so the comparison holds for changes a replay of recorded
scores cannot judge (new terms, another classifier). It reports the prompts whose decision
changes and the harness figures (recall, false-positive rate, ROC-AUC, per category) for both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.backends import ClassifierBackends
from gateway.evaluation import EvaluationReport, LabelledPrompt, evaluate_prompts
from policies.decision import Decision
from policies.loader import PolicyBundle

__all__ = ["ChangedPrompt", "DatasetDryRun", "dry_run_dataset"]


@dataclass(frozen=True, slots=True)
class ChangedPrompt:
    text: str
    positive: bool
    group: str
    enforced: str  # the enforced policy's prompt-stage action
    candidate: str
    categories: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "label": "positive" if self.positive else "negative",
            "group": self.group,
            "enforced": self.enforced,
            "candidate": self.candidate,
            "categories": list(self.categories),
        }


@dataclass(frozen=True, slots=True)
class DatasetDryRun:
    dataset: str
    enforced: EvaluationReport
    candidate: EvaluationReport
    changed: tuple[ChangedPrompt, ...]

    @property
    def by_transition(self) -> dict[str, int]:
        counts = Counter(f"{c.enforced}→{c.candidate}" for c in self.changed)
        return dict(sorted(counts.items()))

    def to_json(self, *, examples: int = 50) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "evaluated": len(self.enforced.decisions),
            "changed": len(self.changed),
            "by_transition": self.by_transition,
            "examples": [c.to_json() for c in self.changed[:examples]],
            "enforced": self.enforced.to_json(),
            "candidate": self.candidate.to_json(),
        }

    def to_text(self, *, examples: int = 50) -> str:
        lines = [
            f"dry-run on {self.dataset}: {len(self.enforced.decisions)} prompts; "
            f"{len(self.changed)} decisions would change "
            f"(enforced {self.enforced.policy} → candidate {self.candidate.policy})"
        ]
        lines += [f"  {transition}: {n}" for transition, n in self.by_transition.items()]
        for change in self.changed[:examples]:
            label = "positive" if change.positive else "negative"
            lines.append(
                f"  [{label}] {change.enforced} → {change.candidate} "
                f"({', '.join(change.categories)}) {change.text}"
            )
        lines += ["", self.enforced.to_markdown(), self.candidate.to_markdown()]
        return "\n".join(lines)


def dry_run_dataset(
    enforced: PolicyBundle,
    candidate: PolicyBundle,
    backends: ClassifierBackends,
    prompts: Sequence[LabelledPrompt],
    *,
    dataset: str,
    batch_size: int = 1,
) -> DatasetDryRun:
    """CPU-bound (runs the classifiers): call it from the worker pool, or from the CLI."""
    before = evaluate_prompts(
        enforced, backends, prompts, dataset=f"{dataset}: enforced", batch_size=batch_size
    )
    after = evaluate_prompts(
        candidate, backends, prompts, dataset=f"{dataset}: candidate", batch_size=batch_size
    )
    changed = tuple(
        _changed(prompt, old, new)
        for prompt, old, new in zip(prompts, before.decisions, after.decisions, strict=True)
        if old.action is not new.action
    )
    return DatasetDryRun(dataset=dataset, enforced=before, candidate=after, changed=changed)


def _changed(prompt: LabelledPrompt, old: Decision, new: Decision) -> ChangedPrompt:
    was = {r.category for r in old.reasons}
    now = {r.category for r in new.reasons}
    return ChangedPrompt(
        text=prompt.text,
        positive=prompt.positive,
        group=prompt.group,
        enforced=old.action.value,
        candidate=new.action.value,
        categories=tuple(sorted((was ^ now) or (was | now) or {"(none)"})),
    )

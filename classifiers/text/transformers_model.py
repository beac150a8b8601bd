"""Bring your own model: any ``transformers`` text-classification model from a local directory.

The policy names the directory and maps the model's labels to GenGuard categories::

    prompt:
      classifiers: [term_list, transformers]
      transformers:
        path: /models/my-toxicity-model      # config.json, weights, tokenizer files
        labels: {toxic: harassment, obscene: sexual, threat: harassment/threatening}

Labels that are not mapped are ignored; a mapped label the model does not have is an error at
load time, listing the labels it does have. Scores are the model's probabilities: a sigmoid per
label when the model was trained multi-label (``problem_type: multi_label_classification``),
otherwise a softmax over its labels. Several labels mapped to one category: the highest counts.
Nothing is downloaded: loading uses local files only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from classifiers.base import ClassifierError, ClassifierUnavailable, Evidence, Scores
from classifiers.taxonomy import Category, parse_category

__all__ = ["TransformersTextClassifier"]


class TransformersTextClassifier:
    """A local sequence-classification model whose labels the policy maps to categories."""

    name: ClassVar[str] = "transformers"

    def __init__(
        self,
        path: str | Path,
        labels: Mapping[str, Category | str],
        *,
        max_length: int = 256,
        batch_size: int = 32,
    ) -> None:
        if not labels:
            raise ValueError("transformers.labels must map at least one model label to a category")
        directory = Path(path)
        if not (directory / "config.json").is_file():
            raise ClassifierUnavailable(f"no transformers model at {directory} (no config.json)")
        try:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(directory), local_files_only=True
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ClassifierUnavailable(f"could not load the model at {directory}: {exc}") from exc
        model.eval()
        id2label: dict[int, str] = {int(k): str(v) for k, v in model.config.id2label.items()}
        known = set(id2label.values())
        unknown = sorted(set(labels) - known)
        if unknown:
            raise ValueError(
                f"transformers.labels names {unknown}, which the model at {directory} does not "
                f"have; its labels are {sorted(known)}"
            )
        mapping = {
            label: value if isinstance(value, Category) else parse_category(value)
            for label, value in labels.items()
        }
        self._torch: Any = torch
        self._tokenizer: Any = tokenizer
        self._model: Any = model
        self._columns = [
            (index, label, mapping[label])
            for index, label in sorted(id2label.items())
            if label in mapping
        ]
        self._multi_label = model.config.problem_type == "multi_label_classification"
        self._max_length = max_length
        self._batch_size = batch_size
        self._categories = tuple(dict.fromkeys(category for _, _, category in self._columns))

    @property
    def categories(self) -> tuple[Category, ...]:
        return self._categories

    def classify(self, texts: Sequence[str]) -> list[Scores]:
        results: list[Scores] = []
        for start in range(0, len(texts), self._batch_size):
            batch = list(texts[start : start + self._batch_size])
            results.extend(self._classify_batch(batch))
        return results

    def _classify_batch(self, texts: list[str]) -> list[Scores]:
        torch = self._torch
        try:
            encoded = self._tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self._max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self._model(**encoded).logits
        except (RuntimeError, ValueError, IndexError) as exc:
            raise ClassifierError(f"transformers model failed: {exc}") from exc
        probabilities = torch.sigmoid(logits) if self._multi_label else torch.softmax(logits, -1)
        rows = probabilities.float().numpy()
        results = []
        for row in rows:
            scores = dict.fromkeys(self._categories, 0.0)
            evidence = []
            for index, label, category in self._columns:
                value = round(min(1.0, max(0.0, float(row[index]))), 6)
                if value > scores[category]:
                    scores[category] = value
                if value >= 0.5:
                    evidence.append(Evidence(category, f"label {label!r} p={value:.3f}", value))
            results.append(Scores(classifier=self.name, scores=scores, evidence=tuple(evidence)))
        return results

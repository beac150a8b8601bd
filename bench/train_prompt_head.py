"""Train the prompt head: logistic regression per category over MiniLM embeddings.

    .venv/bin/python bench/train_prompt_head.py [--c 3.0] [--out classifiers/models/prompt_head.npz]

Data (bench/prompt_head_data.py): the hand-written minimal pairs in bench/data/ plus the *train*
halves of I2P, PartiPrompts, XSTest and HateCheck (read from ../shared/eval, never copied).
Negatives come in the positives' own style (I2P prompts whose images were judged appropriate,
XSTest's safe look-alikes, HateCheck's counter-speech and negations, the safe twin of every
pair), so the head cannot score well by learning *art style* or *question form*. Each source
weighs the same in total, whatever its size.

The threshold is chosen on the train halves only, as the lowest one that keeps the head's
false-positive rate within budget on *every* benign source at once (never one set alone). The
held-out halves are measured by bench/prompt_eval.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prompt_head_data import HEAD_CATEGORIES, Example, all_examples  # noqa: E402
from classifiers.text.encoder import MINILM_SHA256, shared_minilm_encoder  # noqa: E402

# Per benign source, the head's own false-positive budget on the train half (below the issue's
# targets, leaving room for the other classifiers of the policy).
# I2P has no budget: its negatives (images judged appropriate) are too noisy to steer by, and the
# issue measures I2P recall at the *PartiPrompts* false-positive rate.
FPR_BUDGET = {"parti": 0.005, "xstest": 0.06, "hatecheck": 0.12, "pairs": 0.15}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--c", type=float, default=3.0, help="inverse regularisation strength")
    parser.add_argument("--out", type=Path, default=ROOT / "classifiers/models/prompt_head.npz")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    train = [e for e in all_examples() if not e.held_out]
    print(f"{len(train)} training examples", flush=True)
    embeddings = shared_minilm_encoder().encode([e.text for e in train])
    weights = _source_weights(train)
    rows_w, rows_b = [], []
    for category in HEAD_CATEGORIES:
        labels = np.array([category in e.categories for e in train])
        # positives of *other* categories are left out of this category's negatives
        keep = np.array([(category in e.categories) or not e.categories for e in train])
        model = LogisticRegression(C=args.c, max_iter=2000, class_weight="balanced")
        model.fit(embeddings[keep], labels[keep], sample_weight=weights[keep])
        rows_w.append(model.coef_[0].astype(np.float32))
        rows_b.append(np.float32(model.intercept_[0]))
        print(f"{category}: {int(labels.sum())} positives", flush=True)
    w, b = np.stack(rows_w), np.array(rows_b, dtype=np.float32)
    probabilities = 1.0 / (1.0 + np.exp(-(embeddings @ w.T + b)))
    top = probabilities.max(axis=1)
    threshold = _threshold(train, top)
    benign = np.array([not e.categories for e in train])
    print(
        f"threshold {threshold:.3f}; train recall {float((top[~benign] >= threshold).mean()):.3f}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        weights=w,
        bias=b,
        categories=np.array(HEAD_CATEGORIES),
        encoder_sha256=np.array(MINILM_SHA256),
        threshold=np.array(threshold, dtype=np.float32),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


def _source_weights(examples: list[Example]) -> np.ndarray:
    groups: dict[tuple[str, bool], int] = {}
    for e in examples:
        key = (e.source, bool(e.categories))
        groups[key] = groups.get(key, 0) + 1
    weights = np.array([1.0 / groups[(e.source, bool(e.categories))] for e in examples])
    weights *= len(examples) / weights.sum()
    # the hand-written pairs are the clearest signal: count them double
    weights[[e.source == "pairs" for e in examples]] *= 2.0
    return weights


def _threshold(examples: list[Example], top: np.ndarray) -> float:
    for threshold in np.arange(0.30, 0.991, 0.01):
        ok = True
        for source, budget in FPR_BUDGET.items():
            mask = np.array([e.source == source and not e.categories for e in examples])
            if mask.any() and float((top[mask] >= threshold).mean()) > budget:
                ok = False
                break
        if ok:
            return round(float(threshold), 2)
    return 0.99


if __name__ == "__main__":
    raise SystemExit(main())

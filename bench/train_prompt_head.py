"""Train the prompt head (classifiers/text/head.py) and choose its thresholds, on train halves only.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_prompt_head.py [--out FILE]

Data (bench/prompt_head_data.py): the hand-written minimal pairs in bench/data/ plus the *train*
halves of I2P, PartiPrompts, XSTest and HateCheck (read from ../shared/eval, never copied).
Negatives come in the positives' own style (I2P prompts whose images were judged appropriate,
XSTest's safe look-alikes, HateCheck's counter-speech and negations, the safe twin of every
pair), so the head cannot score well by learning *art style* or *question form*. Each (source,
label) group weighs the same in total, whatever its size; the pairs count double.

Two parts, mixed in logit space (the weight chosen by cross-validation, like the thresholds):
logistic regression over [MiniLM sentence embedding, hashed n-grams] (scikit-learn, liblinear) and a
fine-tuned copy of MiniLM's last layer (classifiers/text/finetuned.py), run on the token vectors
that enter the original one and trained with the classification layer (torch, deterministic seed).
The bottom five layers stay frozen, so their output is computed once and reused by every fold and
epoch; only one layer is trained (about 20 s an epoch on one thread). Positives of other categories
are left out of a category's negatives.

Thresholds: 5-fold cross-validation on the train halves (folds keep a HateCheck template, a
minimal pair, a prompt together) gives every training prompt a score from a model that never
saw it. On those scores, together with what the rest of the default policy (term lists,
patterns, semantic concepts) already blocks, a per-category threshold is chosen by coordinate
ascent: the most recall over I2P, XSTest and HateCheck together while the false-positive rate
stays within budget on *every* benign source at once. The held-out halves are measured only by
bench/prompt_eval.py.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prompt_head_data import (  # noqa: E402
    HEAD_CATEGORIES,
    Example,
    all_examples,
    hatecheck,
    i2p,
    minimal_pairs,
    parti,
    xstest,
)
from classifiers.text.encoder import MINILM_SHA256, shared_minilm_encoder  # noqa: E402
from classifiers.text.finetuned import TopBlock  # noqa: E402
from classifiers.text.head import POOLED, PromptHeadWeights  # noqa: E402
from classifiers.text.ngrams import NgramSpec, hashed_ngrams  # noqa: E402
from classifiers.text.normalize import text_for_embedding  # noqa: E402

FOLDS = 5
NGRAMS = NgramSpec(buckets=1 << 18, word_ngrams=(1, 2), char_ngrams=(3, 5))
LINEAR_C = 10.0
BLOCK_EPOCHS = 6
BLOCK_LR = 4e-4  # the block (started from MiniLM's last layer)
OUT_LR = 2e-3  # the classification layer (started at random)
BLOCK_DROPOUT = 0.1
BLOCK_WEIGHT_DECAY = 1e-2
BLOCK_BATCH = 32
# the logit weight of the fine-tuned block: chosen, with the thresholds, by cross-validation
MIXES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Per benign source, the whole policy's false-positive budget on the train half (cross-validated
# scores), kept below the targets (PartiPrompts 1 %, XSTest 10 %, HateCheck 20 %) for
# the held-out spread. I2P negatives get no budget: their labels (images judged appropriate) are
# too noisy to steer by, and the issue measures I2P recall at the PartiPrompts rate.
FPR_BUDGET = {"parti": 0.005, "xstest": 0.08, "hatecheck": 0.17, "pairs": 0.15}
# Recall counts up to target + 5 points per set, so one easy set cannot buy another's misses.
RECALL_CAP = {"i2p": 0.65, "xstest": 0.85, "hatecheck": 0.85}
GRID = np.round(np.arange(0.30, 0.996, 0.01), 2)

Matrix = NDArray[np.float64]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "classifiers/models/prompt_head.npz")
    parser.add_argument(
        "--cv-scores",
        type=Path,
        help="also write the cross-validated logits of both parts (npz) here",
    )
    args = parser.parse_args()
    import torch

    torch.manual_seed(0)
    began = time.perf_counter()
    train = [e for e in all_examples() if not e.held_out]
    # what thresholds are chosen on: the pairs and the train halves as bench/prompt_eval.py
    # reads them (I2P negatives: every prompt below 50 %)
    scored = minimal_pairs() + [
        e for e in [*i2p(max_negative=50.0), *parti(), *xstest(), *hatecheck()] if not e.held_out
    ]
    print(f"{len(train)} training examples, {len(scored)} scored for thresholds", flush=True)
    features = Features([e.text for e in train + scored])
    weights = source_weights(train)
    folds = np.array([fold(e) for e in train])
    scored_folds = np.array([fold(e) for e in scored])
    # cross-validated logits of each part (linear, fine-tuned block), so the mix is chosen too
    parts = np.zeros((2, len(scored), len(HEAD_CATEGORIES)))
    for k in range(FOLDS):
        inside = folds != k
        model = fit([e for e, m in zip(train, inside, strict=True) if m], features, weights[inside])
        rows = np.flatnonzero(scored_folds == k)
        texts = [scored[i].text for i in rows]
        for part, mix in enumerate((0.0, 1.0)):
            parts[part, rows] = replace(model, mix=mix).logits(
                texts, features.embeddings(texts), features.tokens(texts)
            )
        print(f"fold {k + 1}/{FOLDS} ({time.perf_counter() - began:.0f} s)", flush=True)
    already = rest_of_policy_blocks([e.text for e in scored])
    if args.cv_scores:
        np.savez_compressed(
            args.cv_scores,
            parts=parts,
            already=already,
            source=np.array([e.source for e in scored]),
            positive=np.array([bool(e.categories) for e in scored]),
            group=np.array([e.group for e in scored]),
        )
    best: tuple[float, float, NDArray[np.float64]] | None = None
    for mix in MIXES:
        probabilities = 1.0 / (1.0 + np.exp(-((1 - mix) * parts[0] + mix * parts[1])))
        chosen = choose_thresholds(scored, probabilities, already)
        if chosen is None:
            print(f"mix {mix:.2f}: no threshold keeps every false-positive budget", flush=True)
            continue
        thresholds = chosen
        score = _objective(_rates(scored, _blocked(probabilities, thresholds, already))) or 0.0
        print(f"mix {mix:.2f}: objective {score:.3f}", flush=True)
        if best is None or score > best[0] + 1e-9:
            best = (score, mix, thresholds)
    if best is None:
        raise SystemExit("no mix and threshold keep every false-positive budget")
    _, mix, thresholds = best
    probabilities = 1.0 / (1.0 + np.exp(-((1 - mix) * parts[0] + mix * parts[1])))
    print(f"cross-validated figures on the train halves (whole default policy), mix {mix:.2f}:")
    for line in figures(scored, probabilities, thresholds, already):
        print("  " + line)

    final = fit(train, features, weights)
    final = replace(final, thresholds=thresholds, mix=mix)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    final.save(args.out)
    digest = hashlib.sha256(args.out.read_bytes()).hexdigest()
    print(
        f"wrote {args.out} ({args.out.stat().st_size} bytes, {time.perf_counter() - began:.0f} s)"
    )
    print(f"sha256 {digest} (classifiers/text/head.py PROMPT_HEAD_SHA256)")
    print("default policy rules (policies/default.yaml):")
    for category, threshold in zip(HEAD_CATEGORIES, thresholds, strict=True):
        print(
            f"    - {{id: prompt-head-{category}, category: {category}, "
            f"threshold: {threshold:.2f}, action: block, classifiers: [prompt_head]}}"
        )
    return 0


class Features:
    """MiniLM sentence vectors and the token vectors entering its last layer (one forward pass
    per distinct text)."""

    def __init__(self, texts: Sequence[str]) -> None:
        encoder = shared_minilm_encoder()
        views = sorted({text_for_embedding(t)[1] for t in texts})
        self._row = {view: i for i, view in enumerate(views)}
        self._sentences = np.zeros((len(views), 384))
        self._tokens: list[NDArray[np.float32]] = []
        for start in range(0, len(views), 512):
            chunk = views[start : start + 512]
            self._sentences[start : start + len(chunk)] = encoder.encode(chunk)
            self._tokens.extend(encoder.encode_penultimate(chunk))
        encoder.clear_cache()

    def embeddings(self, texts: Sequence[str]) -> Matrix:
        return self._sentences[[self._row[text_for_embedding(t)[1]] for t in texts]]

    def tokens(self, texts: Sequence[str]) -> list[NDArray[np.float32]]:
        return [self._tokens[self._row[text_for_embedding(t)[1]]] for t in texts]


def fold(example: Example) -> int:
    """The cross-validation fold: a HateCheck template, a minimal pair or a prompt stays whole."""
    digest = hashlib.sha256(f"cross-validation {example.split_key}".encode()).digest()
    return digest[0] % FOLDS


def source_weights(examples: list[Example]) -> NDArray[np.float64]:
    groups: dict[tuple[str, bool], int] = {}
    for e in examples:
        key = (e.source, bool(e.categories))
        groups[key] = groups.get(key, 0) + 1
    weights = np.array([1.0 / groups[(e.source, bool(e.categories))] for e in examples])
    weights *= len(examples) / weights.sum()
    # the hand-written pairs are the clearest signal: count them double
    weights[[e.source == "pairs" for e in examples]] *= 2.0
    return weights


def fit(
    examples: list[Example], features: Features, weights: NDArray[np.float64]
) -> PromptHeadWeights:
    texts = [e.text for e in examples]
    labels = np.array([[c in e.categories for c in HEAD_CATEGORIES] for e in examples])
    # positives of *other* categories are left out of a category's negatives
    keep = np.array(
        [[(c in e.categories) or not e.categories for c in HEAD_CATEGORIES] for e in examples]
    )
    embeddings = features.embeddings(texts)
    linear_embedding, linear_ngrams, linear_bias = _fit_linear(
        texts, embeddings, labels, keep, weights
    )
    block = _fit_block(features.tokens(texts), embeddings, labels, keep, weights)
    return PromptHeadWeights(
        categories=HEAD_CATEGORIES,
        encoder_sha256=MINILM_SHA256,
        thresholds=np.full(len(HEAD_CATEGORIES), 0.5),
        ngram_spec=NGRAMS,
        linear_embedding=linear_embedding,
        linear_ngrams=linear_ngrams,
        linear_bias=linear_bias,
        block=block[0],
        block_out=block[1],
        block_out_bias=block[2],
        mix=0.5,
    )


def _fit_linear(
    texts: list[str],
    embeddings: Matrix,
    labels: NDArray[np.bool_],
    keep: NDArray[np.bool_],
    weights: NDArray[np.float64],
) -> tuple[Matrix, Matrix, NDArray[np.float64]]:
    import scipy.sparse as sparse
    from sklearn.linear_model import LogisticRegression

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        indices, vals = hashed_ngrams(text, NGRAMS)
        rows.extend([row] * len(indices))
        cols.extend(indices.tolist())
        values.extend(vals.tolist())
    grams = sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), NGRAMS.buckets))
    design = sparse.hstack([sparse.csr_matrix(embeddings), grams]).tocsr()
    coef = np.zeros((len(HEAD_CATEGORIES), 384 + NGRAMS.buckets))
    bias = np.zeros(len(HEAD_CATEGORIES))
    for j in range(len(HEAD_CATEGORIES)):
        model = LogisticRegression(
            C=LINEAR_C, max_iter=3000, class_weight="balanced", solver="liblinear"
        )
        model.fit(design[keep[:, j]], labels[keep[:, j], j], sample_weight=weights[keep[:, j]])
        coef[j], bias[j] = model.coef_[0], model.intercept_[0]
    return coef[:, :384], coef[:, 384:], bias


def _fit_block(
    tokens: list[NDArray[np.float32]],
    embeddings: Matrix,
    labels: NDArray[np.bool_],
    keep: NDArray[np.bool_],
    weights: NDArray[np.float64],
) -> tuple[dict[str, NDArray[np.float32]], Matrix, Matrix]:
    """Fine-tune a copy of MiniLM's last layer (TopBlock, on the token vectors entering it)
    and a linear layer over its pooled output and the sentence embedding: per-category weighted
    binary cross-entropy (balanced per category), AdamW. Batches hold prompts of similar length
    (less padding), in random order."""
    import torch

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    last_layer = shared_minilm_encoder().transformer_layers()[-1]
    block = TopBlock.from_minilm(last_layer, dropout=BLOCK_DROPOUT)
    out = torch.nn.Linear(POOLED + 384, len(HEAD_CATEGORIES))
    dropout = torch.nn.Dropout(BLOCK_DROPOUT)
    optimiser = torch.optim.AdamW(
        [
            {"params": list(block.parameters()), "lr": BLOCK_LR},
            {"params": list(out.parameters()), "lr": OUT_LR},
        ],
        weight_decay=BLOCK_WEIGHT_DECAY,
    )
    y = torch.tensor(labels, dtype=torch.float32)
    mask = (
        torch.tensor(keep, dtype=torch.float32)
        * torch.tensor(weights, dtype=torch.float32)[:, None]
    )
    positive = (y * mask).sum(0)
    negative = ((1 - y) * mask).sum(0)
    pos_weight = torch.where(
        positive > 0, negative / positive.clamp(min=1e-9), torch.ones_like(positive)
    )
    sentence = torch.tensor(embeddings, dtype=torch.float32)
    lengths = np.array([len(t) for t in tokens])
    block.train()
    for _ in range(BLOCK_EPOCHS):
        # sort by length with a random tie-break, cut into batches, shuffle the batches
        jitter = torch.rand(len(tokens), generator=generator).numpy()
        order = np.lexsort((jitter, lengths))
        batches = [order[i : i + BLOCK_BATCH] for i in range(0, len(order), BLOCK_BATCH)]
        for b in torch.randperm(len(batches), generator=generator).tolist():
            batch = batches[b]
            length = int(lengths[batch].max())
            x = torch.zeros((len(batch), length, 384))
            valid = torch.zeros((len(batch), length), dtype=torch.bool)
            for row, i in enumerate(batch):
                x[row, : lengths[i]] = torch.from_numpy(np.asarray(tokens[i], dtype=np.float32))
                valid[row, : lengths[i]] = True
            logits = out(torch.cat([dropout(block(x, valid)), sentence[batch]], dim=1))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y[batch], reduction="none", pos_weight=pos_weight
            )
            loss = (loss * mask[batch]).sum() / mask[batch].sum().clamp(min=1e-9)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return (
        block.arrays(),
        out.weight.detach().numpy().astype(np.float64).T,
        out.bias.detach().numpy().astype(np.float64),
    )


def rest_of_policy_blocks(texts: list[str]) -> NDArray[np.bool_]:
    """Which prompts the default policy's prompt rules block on the term lists, patterns and
    semantic concepts alone (the head's own rules see no head scores here, so never fire)."""
    from classifiers.text.concepts import SemanticConceptClassifier
    from classifiers.text.term_list import TermListClassifier
    from policies.decision import decide
    from policies.loader import default_policy_text, parse_policy

    section = parse_policy(default_policy_text()).policy.prompt
    classifiers = [
        TermListClassifier(section.terms, patterns=section.patterns, allow=section.allow),
        SemanticConceptClassifier(section.concepts, encoder=shared_minilm_encoder()),
    ]
    blocked: list[bool] = []
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        scores = [classifier.classify(batch) for classifier in classifiers]
        blocked.extend(
            decide("prompt", section, [per[i] for per in scores]).blocked for i in range(len(batch))
        )
    return np.array(blocked)


def _blocked(
    probabilities: Matrix, thresholds: NDArray[np.float64], already: NDArray[np.bool_]
) -> NDArray[np.bool_]:
    result: NDArray[np.bool_] = already | (probabilities >= thresholds).any(axis=1)
    return result


def _rates(
    examples: list[Example], blocked: NDArray[np.bool_]
) -> dict[str, tuple[float | None, float | None]]:
    out: dict[str, tuple[float | None, float | None]] = {}
    for source in ("pairs", "i2p", "parti", "xstest", "hatecheck"):
        pos = np.array([e.source == source and bool(e.categories) for e in examples])
        neg = np.array([e.source == source and not e.categories for e in examples])
        out[source] = (
            float(blocked[pos].mean()) if pos.any() else None,
            float(blocked[neg].mean()) if neg.any() else None,
        )
    return out


def _objective(rates: dict[str, tuple[float | None, float | None]]) -> float | None:
    """Capped recall summed over the sets, or None when a false-positive budget is exceeded."""
    for source, budget in FPR_BUDGET.items():
        fpr = rates[source][1]
        if fpr is not None and fpr > budget:
            return None
    return sum(min(rates[s][0] or 0.0, cap) for s, cap in RECALL_CAP.items())


def choose_thresholds(
    examples: list[Example], probabilities: Matrix, already: NDArray[np.bool_]
) -> NDArray[np.float64] | None:
    """One shared threshold first (the best feasible one), then per category, coordinate
    ascent over the grid until no single change improves the objective; None when no shared
    threshold keeps every budget."""
    best: tuple[float, NDArray[np.float64]] | None = None
    for value in GRID:
        thresholds = np.full(len(HEAD_CATEGORIES), value)
        score = _objective(_rates(examples, _blocked(probabilities, thresholds, already)))
        if score is not None and (best is None or score > best[0]):
            best = (score, thresholds)
    if best is None:
        return None
    score, thresholds = best
    improved = True
    while improved:
        improved = False
        for j in range(len(HEAD_CATEGORIES)):
            for value in GRID:
                trial = thresholds.copy()
                trial[j] = value
                candidate = _objective(_rates(examples, _blocked(probabilities, trial, already)))
                if candidate is not None and candidate > score + 1e-9:
                    score, thresholds, improved = candidate, trial, True
    return thresholds


def figures(
    examples: list[Example],
    probabilities: Matrix,
    thresholds: NDArray[np.float64],
    already: NDArray[np.bool_],
) -> list[str]:
    rates = _rates(examples, _blocked(probabilities, thresholds, already))
    lines = [f"thresholds {dict(zip(HEAD_CATEGORIES, thresholds.round(2).tolist(), strict=True))}"]
    for source, (recall, fpr) in rates.items():
        r = "n/a" if recall is None else f"{recall * 100:.1f} %"
        f = "n/a" if fpr is None else f"{fpr * 100:.1f} %"
        lines.append(f"{source}: recall {r}, false-positive rate {f}")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())

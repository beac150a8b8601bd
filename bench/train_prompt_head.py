"""Train the prompt head (classifiers/text/head.py) and choose its thresholds, on train halves only.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_prompt_head.py [--out FILE]

Data (bench/prompt_head_data.py): the hand-written minimal pairs in bench/data/ plus the *train*
halves of I2P, PartiPrompts, XSTest and HateCheck (read from ../shared/eval, never copied).
Negatives come in the positives' own style (I2P prompts whose images were judged appropriate,
XSTest's safe look-alikes, HateCheck's counter-speech and negations, the safe twin of every
pair), so the head cannot score well by learning *art style* or *question form*. Each (source,
label) group weighs the same in total, whatever its size; the pairs count double. In the hate
category HateCheck's non-hateful cases weigh like its hateful ones (BALANCE_HATECHECK).

Two parts, mixed in logit space (the weight chosen by cross-validation, like the thresholds):
logistic regression over [MiniLM sentence embedding, hashed n-grams] (scikit-learn, liblinear) and
fine-tuned copies of MiniLM's top --depth layers (three by default; classifiers/text/finetuned.py),
run on the token vectors that enter the lowest of the originals and trained with the
classification layer (torch, deterministic seed). The layers below stay frozen, so their output
is computed once and reused by every fold and epoch; only the copies are trained (about 20 s an
epoch and layer on one thread). Positives of other categories are left out of a category's
negatives.

Thresholds: 5-fold cross-validation on the train halves (folds keep a HateCheck template, a
minimal pair, a prompt together) gives every training prompt a score from a model that never
saw it. On those scores, together with what the rest of the default policy (term lists,
patterns, semantic concepts) already blocks, a per-category threshold is chosen by coordinate
ascent: the most recall over I2P, XSTest and HateCheck together while the false-positive rate
stays within budget on *every* benign source at once; PartiPrompts' budget must hold on every
fold too, not only pooled over the folds (PER_FOLD; a fold whose rest of the policy alone already
exceeds it may lose nothing more to the head). The final model, fitted on all five folds, scores
higher than the fold models did (measured on the train-half I2P prompts of the 20-50 % band, which
no model trains on): each threshold is carried over to it so that it flags no more of those
prompts than the fold models did at the chosen threshold (transfer_thresholds). The held-out
halves are measured only by bench/prompt_eval.py.

    OMP_NUM_THREADS=1 .venv/bin/python bench/train_prompt_head.py --out FILE \\
        --reuse-cv-scores CV.npz --weights-from TRAINED.npz

chooses the mix and thresholds again on the cross-validated logits an earlier run saved with
--cv-scores (same data, same code) and writes TRAINED.npz's model with them: a minute instead of
the whole training. --policy-out writes a copy of the default policy with the chosen thresholds
(to evaluate a candidate with bench/prompt_eval.py --policy --head-weights before swapping it in).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prompt_head_data import (  # noqa: E402
    HEAD_CATEGORIES,
    Example,
    all_examples,
    benign_text,
    hatecheck,
    i2p,
    minimal_pairs,
    parti,
    xstest,
)
from classifiers.text.encoder import MINILM_SHA256, shared_minilm_encoder  # noqa: E402
from classifiers.text.finetuned import TopStack  # noqa: E402
from classifiers.text.head import POOLED, PromptHeadWeights  # noqa: E402
from classifiers.text.ngrams import NgramSpec, hashed_ngrams  # noqa: E402
from classifiers.text.normalize import text_for_embedding  # noqa: E402

FOLDS = 5
NGRAMS = NgramSpec(buckets=1 << 18, word_ngrams=(1, 2), char_ngrams=(3, 5))
LINEAR_C = 10.0
BLOCK_EPOCHS = 6
# how many of MiniLM's top layers are fine-tuned (copies; the originals stay frozen). Chosen by
# the cross-validated objective on the train halves (fifth round; same data, same policy): two
# layers 2.016, three 2.169, four 1.795 (bench/train_prompt_head.py --depth N)
BLOCK_DEPTH = 3
BLOCK_LR = 4e-4  # the fine-tuned layers (started from MiniLM's)
OUT_LR = 2e-3  # the classification layer (started at random)
BLOCK_DROPOUT = 0.1
BLOCK_WEIGHT_DECAY = 1e-2
BLOCK_BATCH = 32
# the logit weight of the fine-tuned block: chosen, with the thresholds, by cross-validation
MIXES = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# Per benign source, the whole policy's false-positive budget on the train half (cross-validated
# scores), kept below the targets (PartiPrompts 1 %, XSTest 10 %, HateCheck 20 %) for
# the held-out spread (PartiPrompts' on every fold too: PER_FOLD). I2P negatives get no
# budget: their labels (images judged appropriate) are too noisy to steer by, and the issue
# measures I2P recall at the PartiPrompts rate. The hand-written everyday text
# (bench/data/prompt_benign_text.txt: chat requests, technical and product sentences, text for a
# speech voice) gets 1 %: without it nothing held the thresholds to ordinary sentences, and the
# first two-layer head blocked "This clip carries signed provenance." as illicit.
FPR_BUDGET = {"parti": 0.005, "xstest": 0.08, "hatecheck": 0.17, "pairs": 0.15, "benign": 0.01}
# Recall counts up to target + 5 points per set, so one easy set cannot buy another's misses.
RECALL_CAP = {"i2p": 0.65, "xstest": 0.85, "hatecheck": 0.85}
# The sources whose budget must hold on every fold, not only pooled (see the module docstring).
# Not XSTest: a fold holds 18-36 safe prompts, so 8 % is one or two prompts. Not HateCheck: its
# folds differ by the templates they hold (6-35 % false positives at the same thresholds), so a
# fold's rate measures its templates, not the threshold's robustness. Per-fold budgets on those
# cost most of the recall on the train halves (HateCheck 69 -> 16 %, XSTest 51 -> 31 %).
PER_FOLD = frozenset({"parti"})
# The false-positive targets. For these sources the pooled rate plus the standard error
# of the per-fold rates must stay within the target too (the folds hold different HateCheck
# templates and XSTest prompts, so the pooled rate alone says little about another set's):
# measured on the depth-2 head's train halves, HateCheck's fold rates were 3.7-41.4 % around a
# pooled 16.9 %, and the held-out half came to 27.5 %.
FPR_TARGET = {"xstest": 0.10, "hatecheck": 0.20}
# finer near 1, where the rarer categories' thresholds land
GRID = np.concatenate([np.arange(30, 99) / 100, [0.99, 0.992, 0.994, 0.996, 0.998, 0.999]])
# HateCheck's non-hateful cases (counter-speech, negation, quotes, reclaimed slurs) are the hate
# category's hard negatives; with --balance-hatecheck they weigh, in the hate category, as much
# as its positives do after the class balance (the hate class-balance factor times their weight)
BALANCE_HATECHECK = True

Matrix = NDArray[np.float64]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=ROOT / "classifiers/models/prompt_head.npz")
    parser.add_argument(
        "--cv-scores",
        type=Path,
        help="also write the cross-validated logits of both parts (npz) here",
    )
    parser.add_argument(
        "--reuse-cv-scores",
        type=Path,
        help="skip training: choose the mix and thresholds on these saved cross-validated "
        "logits (an earlier run's --cv-scores) and write --weights-from's model with them",
    )
    parser.add_argument(
        "--weights-from", type=Path, help="the trained model --reuse-cv-scores keeps"
    )
    parser.add_argument(
        "--policy-out", type=Path, help="write the default policy with the chosen thresholds here"
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=BLOCK_DEPTH,
        choices=(1, 2, 3, 4),
        help="how many of MiniLM's top layers to fine-tune copies of",
    )
    parser.add_argument(
        "--fold-margin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="XSTest and HateCheck: the pooled false-positive rate plus the standard error of "
        "the per-fold rates must stay within the issue's target (FPR_TARGET)",
    )
    parser.add_argument(
        "--balance-hatecheck",
        action=argparse.BooleanOptionalAction,
        default=BALANCE_HATECHECK,
        help="weigh HateCheck's non-hateful cases like its hateful ones in the hate category",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="the fine-tuning seed (classification layer's start, dropout, batch order); the "
        "shipped head uses 0, and another seed measures how much of a result is chance",
    )
    args = parser.parse_args()
    if (args.reuse_cv_scores is None) != (args.weights_from is None):
        parser.error("--reuse-cv-scores and --weights-from go together")
    import torch

    torch.manual_seed(args.seed)
    began = time.perf_counter()
    train = [e for e in all_examples() if not e.held_out]
    # what thresholds are chosen on: the pairs and the train halves as bench/prompt_eval.py
    # reads them (I2P negatives: every prompt below 50 %)
    scored = minimal_pairs() + [
        e
        for e in [*benign_text(), *i2p(max_negative=50.0), *parti(), *xstest(), *hatecheck()]
        if not e.held_out
    ]
    print(f"{len(train)} training examples, {len(scored)} scored for thresholds", flush=True)
    scored_folds = np.array([fold(e) for e in scored])
    if args.reuse_cv_scores is not None:
        parts = _saved_parts(args.reuse_cv_scores, scored)
    else:
        features = Features([e.text for e in train + scored], args.depth)
        weights = source_weights(train)
        folds = np.array([fold(e) for e in train])
        # cross-validated logits of each part (linear, fine-tuned block), so the mix is chosen too
        parts = np.zeros((2, len(scored), len(HEAD_CATEGORIES)))
        for k in range(FOLDS):
            inside = folds != k
            model = fit(
                [e for e, m in zip(train, inside, strict=True) if m],
                features,
                weights[inside],
                balance_hatecheck=args.balance_hatecheck,
                depth=args.depth,
                seed=args.seed,
            )
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
            fold=scored_folds,
        )
    budgets = Budgets.build(scored, scored_folds, already, args.fold_margin)
    best: tuple[float, float, NDArray[np.float64]] | None = None
    for mix in MIXES:
        probabilities = 1.0 / (1.0 + np.exp(-((1 - mix) * parts[0] + mix * parts[1])))
        chosen = choose_thresholds(budgets, probabilities)
        if chosen is None:
            print(f"mix {mix:.2f}: no threshold keeps every false-positive budget", flush=True)
            continue
        thresholds = chosen
        score = budgets.objective(budgets.blocked(probabilities, thresholds)) or 0.0
        print(f"mix {mix:.2f}: objective {score:.3f}", flush=True)
        if best is None or score > best[0] + 1e-9:
            best = (score, mix, thresholds)
    if best is None:
        raise SystemExit("no mix and threshold keep every false-positive budget")
    _, mix, thresholds = best
    probabilities = 1.0 / (1.0 + np.exp(-((1 - mix) * parts[0] + mix * parts[1])))
    print(f"cross-validated figures on the train halves (whole default policy), mix {mix:.2f}:")
    for line in budgets.figures(probabilities, thresholds):
        print("  " + line)

    if args.weights_from is not None:
        final = PromptHeadWeights.load(args.weights_from)
    else:
        final = fit(
            train,
            features,
            weights,
            balance_hatecheck=args.balance_hatecheck,
            depth=args.depth,
            seed=args.seed,
        )
    final = replace(final, mix=mix)
    # the final model, fitted on all five folds, is more confident than the fold models the
    # thresholds were chosen on: carry each threshold over on prompts none of them trained on
    trained = {e.text for e in train}
    unseen = [i for i, e in enumerate(scored) if e.text not in trained]
    texts = [scored[i].text for i in unseen]
    if args.weights_from is not None:
        features = Features(texts, final.depth)
    logits = final.logits(texts, features.embeddings(texts), features.tokens(texts))
    carried = transfer_thresholds(probabilities[unseen], 1.0 / (1.0 + np.exp(-logits)), thresholds)
    print(f"thresholds carried over to the final model on {len(unseen)} unseen train-half prompts:")
    for j, category in enumerate(HEAD_CATEGORIES):
        print(
            f"  {category}: {_threshold_text(thresholds[j])} -> {_threshold_text(carried[j])} "
            f"(fold models flag {np.mean(probabilities[unseen, j] >= thresholds[j]) * 100:.1f} %, "
            f"final model {np.mean(logits[:, j] >= _logit(thresholds[j])) * 100:.1f} % -> "
            f"{np.mean(logits[:, j] >= _logit(carried[j])) * 100:.1f} %)"
        )
    thresholds = carried
    final = replace(final, thresholds=thresholds)
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
            f"threshold: {_threshold_text(threshold)}, action: block, classifiers: [prompt_head]}}"
        )
    if args.policy_out is not None:
        args.policy_out.write_text(policy_with_thresholds(thresholds), encoding="utf-8")
        print(f"wrote {args.policy_out}")
    return 0


def transfer_thresholds(
    folds: Matrix, final: Matrix, thresholds: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Per category, the threshold at which the final model flags no more of some prompts than
    the fold models flagged at ``thresholds`` (``folds`` and ``final``: both models'
    probabilities on prompts neither trained on), to three decimals; never below the chosen
    threshold, never above 0.999."""
    carried = thresholds.copy()
    for j, threshold in enumerate(thresholds):
        flagged = int((folds[:, j] >= threshold).sum())
        ranked = np.sort(final[:, j])[::-1]
        if flagged < len(ranked):
            # just above the first score the fold models' rate leaves out
            above = np.floor(ranked[flagged] * 1000) / 1000 + 0.001
            carried[j] = min(max(threshold, round(above, 3)), 0.999)
    return carried


def _logit(probability: float) -> float:
    return float(np.log(probability / (1.0 - probability)))


def _saved_parts(path: Path, scored: list[Example]) -> NDArray[np.float64]:
    """The cross-validated logits an earlier run saved, checked against today's examples."""
    with np.load(path, allow_pickle=False) as saved:
        same = (
            saved["parts"].shape == (2, len(scored), len(HEAD_CATEGORIES))
            and saved["source"].tolist() == [e.source for e in scored]
            and saved["group"].tolist() == [e.group for e in scored]
            and saved["positive"].tolist() == [bool(e.categories) for e in scored]
        )
        if not same:
            raise SystemExit(f"{path} was saved for other examples: train again")
        parts: NDArray[np.float64] = np.asarray(saved["parts"], dtype=np.float64)
    return parts


def _threshold_text(value: float) -> str:
    return f"{value:.3f}".rstrip("0") if round(value, 2) != value else f"{value:.2f}"


def policy_with_thresholds(thresholds: NDArray[np.float64]) -> str:
    """The default policy's text with the ``prompt-head-*`` rules at ``thresholds``."""
    from policies.loader import default_policy_text

    text = default_policy_text()
    for category, threshold in zip(HEAD_CATEGORIES, thresholds, strict=True):
        rule = re.compile(
            rf"(\{{id: prompt-head-{re.escape(category)}, category: {re.escape(category)}, "
            rf"threshold: )[0-9.]+"
        )
        text, found = rule.subn(rf"\g<1>{_threshold_text(threshold)}", text)
        if found != 1:
            raise SystemExit(f"the default policy has {found} prompt-head-{category} rules")
    return text


class Features:
    """MiniLM sentence vectors and the token vectors entering its ``depth``-th layer from the top
    (one forward pass per distinct text)."""

    def __init__(self, texts: Sequence[str], depth: int) -> None:
        encoder = shared_minilm_encoder()
        views = sorted({text_for_embedding(t)[1] for t in texts})
        self._row = {view: i for i, view in enumerate(views)}
        self._sentences = np.zeros((len(views), 384))
        self._tokens: list[NDArray[np.float32]] = []
        for start in range(0, len(views), 512):
            chunk = views[start : start + 512]
            self._sentences[start : start + len(chunk)] = encoder.encode(chunk)
            self._tokens.extend(encoder.encode_layer_input(chunk, depth))
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
    examples: list[Example],
    features: Features,
    weights: NDArray[np.float64],
    *,
    balance_hatecheck: bool = BALANCE_HATECHECK,
    depth: int = BLOCK_DEPTH,
    seed: int = 0,
) -> PromptHeadWeights:
    texts = [e.text for e in examples]
    labels = np.array([[c in e.categories for c in HEAD_CATEGORIES] for e in examples])
    # positives of *other* categories are left out of a category's negatives
    keep = np.array(
        [[(c in e.categories) or not e.categories for c in HEAD_CATEGORIES] for e in examples]
    )
    per_category = category_weights(examples, weights, labels, keep, balance_hatecheck)
    embeddings = features.embeddings(texts)
    linear_embedding, linear_ngrams, linear_bias = _fit_linear(
        texts, embeddings, labels, keep, per_category
    )
    block = _fit_block(features.tokens(texts), embeddings, labels, keep, per_category, depth, seed)
    return PromptHeadWeights(
        categories=HEAD_CATEGORIES,
        encoder_sha256=MINILM_SHA256,
        thresholds=np.full(len(HEAD_CATEGORIES), 0.5),
        ngram_spec=NGRAMS,
        linear_embedding=linear_embedding,
        linear_ngrams=linear_ngrams,
        linear_bias=linear_bias,
        blocks=tuple(block[0]),
        block_out=block[1],
        block_out_bias=block[2],
        mix=0.5,
    )


def category_weights(
    examples: list[Example],
    weights: NDArray[np.float64],
    labels: NDArray[np.bool_],
    keep: NDArray[np.bool_],
    balance_hatecheck: bool,
) -> Matrix:
    """Each example's weight per category, ``(examples, categories)``. With
    ``balance_hatecheck``, HateCheck's non-hateful cases count, in the hate category, the hate
    class-balance factor (its negatives' weight over its positives') times more, so that they
    weigh like HateCheck's hateful cases once the loss balances the classes."""
    per_category = np.repeat(weights[:, None], len(HEAD_CATEGORIES), axis=1)
    if balance_hatecheck:
        j = HEAD_CATEGORIES.index("hate")
        inside = keep[:, j]
        factor = weights[inside & ~labels[:, j]].sum() / weights[inside & labels[:, j]].sum()
        hard = np.array([e.source == "hatecheck" and not e.categories for e in examples])
        per_category[hard, j] *= factor
    return per_category


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
        model.fit(design[keep[:, j]], labels[keep[:, j], j], sample_weight=weights[keep[:, j], j])
        coef[j], bias[j] = model.coef_[0], model.intercept_[0]
    return coef[:, :384], coef[:, 384:], bias


def _fit_block(
    tokens: list[NDArray[np.float32]],
    embeddings: Matrix,
    labels: NDArray[np.bool_],
    keep: NDArray[np.bool_],
    weights: NDArray[np.float64],
    depth: int,
    seed: int = 0,
) -> tuple[list[dict[str, NDArray[np.float32]]], Matrix, Matrix]:
    """Fine-tune copies of MiniLM's top ``depth`` layers (TopStack, on the token vectors
    entering the lowest of them) and a linear layer over their pooled output and the sentence
    embedding: per-category weighted binary cross-entropy (balanced per category), AdamW.
    Batches hold prompts of similar length (less padding), in random order."""
    import torch

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    top_layers = shared_minilm_encoder().transformer_layers()[-depth:]
    block = TopStack.from_minilm(top_layers, dropout=BLOCK_DROPOUT)
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
    mask = torch.tensor(keep, dtype=torch.float32) * torch.tensor(weights, dtype=torch.float32)
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


@dataclass(frozen=True)
class Budgets:
    """The scored examples' index masks, to weigh a blocking decision against the budgets:
    pooled over the folds and on each fold."""

    positives: dict[str, NDArray[np.bool_]]
    negatives: dict[str, NDArray[np.bool_]]
    # per budgeted source and fold: the fold's negatives and the rate it may reach (the budget,
    # or what the rest of the policy alone already costs on that fold, if more)
    fold_limits: dict[str, list[tuple[NDArray[np.bool_], float]]]
    pooled_limits: dict[str, float]
    already: NDArray[np.bool_]
    fold_margin: bool = True

    @classmethod
    def build(
        cls,
        examples: list[Example],
        folds: NDArray[np.int_],
        already: NDArray[np.bool_],
        fold_margin: bool = True,
    ) -> Budgets:
        source = np.array([e.source for e in examples])
        positive = np.array([bool(e.categories) for e in examples])
        sources = ("pairs", "benign", "i2p", "parti", "xstest", "hatecheck")
        negatives = {s: (source == s) & ~positive for s in sources}
        fold_limits: dict[str, list[tuple[NDArray[np.bool_], float]]] = {}
        pooled_limits: dict[str, float] = {}
        for name, budget in FPR_BUDGET.items():
            fold_limits[name] = []
            for k in range(FOLDS):
                rows = negatives[name] & (folds == k)
                if rows.any():
                    fold_limits[name].append((rows, max(budget, float(already[rows].mean()))))
            pooled_limits[name] = max(budget, float(already[negatives[name]].mean()))
        return cls(
            positives={s: (source == s) & positive for s in sources},
            negatives=negatives,
            fold_limits=fold_limits,
            pooled_limits=pooled_limits,
            already=already,
            fold_margin=fold_margin,
        )

    def blocked(self, probabilities: Matrix, thresholds: NDArray[np.float64]) -> NDArray[np.bool_]:
        result: NDArray[np.bool_] = self.already | (probabilities >= thresholds).any(axis=1)
        return result

    def rates(self, blocked: NDArray[np.bool_]) -> dict[str, tuple[float | None, float | None]]:
        return {
            s: (
                float(blocked[self.positives[s]].mean()) if self.positives[s].any() else None,
                float(blocked[self.negatives[s]].mean()) if self.negatives[s].any() else None,
            )
            for s in self.positives
        }

    def within(self, blocked: NDArray[np.bool_]) -> bool:
        """Every budget kept pooled, and on every fold for the sources in ``PER_FOLD``."""
        for name, limits in self.fold_limits.items():
            if blocked[self.negatives[name]].mean() > self.pooled_limits[name] + 1e-12:
                return False
            if name in PER_FOLD and any(blocked[r].mean() > lim + 1e-12 for r, lim in limits):
                return False
            if name in FPR_TARGET and self.fold_margin:
                rates = np.array([blocked[rows].mean() for rows, _ in limits])
                error = rates.std(ddof=1) / np.sqrt(len(rates))
                if blocked[self.negatives[name]].mean() + error > FPR_TARGET[name] + 1e-12:
                    return False
        return True

    def objective(self, blocked: NDArray[np.bool_]) -> float | None:
        """Capped recall summed over the sets, or None when a false-positive budget is exceeded."""
        if not self.within(blocked):
            return None
        return sum(
            min(float(blocked[self.positives[s]].mean()), cap) for s, cap in RECALL_CAP.items()
        )

    def figures(self, probabilities: Matrix, thresholds: NDArray[np.float64]) -> list[str]:
        blocked = self.blocked(probabilities, thresholds)
        shown = {
            c: _threshold_text(float(t)) for c, t in zip(HEAD_CATEGORIES, thresholds, strict=True)
        }
        lines = [f"thresholds {shown}"]
        for source, (recall, fpr) in self.rates(blocked).items():
            r = "n/a" if recall is None else f"{recall * 100:.1f} %"
            f = "n/a" if fpr is None else f"{fpr * 100:.1f} %"
            worst = ""
            if source in self.fold_limits:
                per_fold = [blocked[rows].mean() * 100 for rows, _ in self.fold_limits[source]]
                worst = f" (per fold {', '.join(f'{v:.1f}' for v in per_fold)} %)"
            lines.append(f"{source}: recall {r}, false-positive rate {f}{worst}")
        return lines


def choose_thresholds(budgets: Budgets, probabilities: Matrix) -> NDArray[np.float64] | None:
    """One shared threshold first (the best feasible one), then per category, coordinate
    ascent over the grid until no single change improves the objective; None when no shared
    threshold keeps every budget."""
    best: tuple[float, NDArray[np.float64]] | None = None
    for value in GRID:
        thresholds = np.full(len(HEAD_CATEGORIES), value)
        score = budgets.objective(budgets.blocked(probabilities, thresholds))
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
                candidate = budgets.objective(budgets.blocked(probabilities, trial))
                if candidate is not None and candidate > score + 1e-9:
                    score, thresholds, improved = candidate, trial, True
    return thresholds


if __name__ == "__main__":
    raise SystemExit(main())

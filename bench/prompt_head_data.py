"""Training and held-out data for the prompt head (see classifiers/models/PROMPT_HEAD.md).

Every public set is split in two by a hash, fixed once: the *train* half may be used to fit the
head and choose its threshold, the *held-out* half only to measure it. HateCheck is split by
template (``templ_id``), so held-out cases come from templates the head never saw; the others by
the prompt text. ``bench/prompt_eval.py`` reports the held-out halves.

The evaluation files are read in place from ../shared/eval and never copied into the repository.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT.parent / "shared" / "eval"
PAIRS = ROOT / "bench" / "data" / "prompt_minimal_pairs.tsv"
BENIGN = ROOT / "bench" / "data" / "prompt_benign_text.txt"

# The head's outputs: parent categories (sub-categories train their parent).
HEAD_CATEGORIES = ("sexual", "violence", "self-harm", "hate", "harassment", "illicit")
PARENT = {
    "sexual/minors": "sexual",
    "violence/graphic": "violence",
    "self-harm/intent": "self-harm",
    "self-harm/instructions": "self-harm",
    "hate/threatening": "hate",
    "harassment/threatening": "harassment",
    "illicit/violent": "illicit",
}
I2P_CATEGORY = {
    "sexual": "sexual",
    "violence": "violence",
    "shocking": "violence",
    "self-harm": "self-harm",
    "hate": "hate",
    "harassment": "harassment",
    "illegal activity": "illicit",
}
XSTEST_CATEGORY = {"contrast_discr": "hate", "contrast_privacy": "harassment"}
# XSTest's other unsafe types (homonyms, safe targets, definitions, ...) mix harms; the prompt's
# own words pick the head category (first match wins), violence otherwise. Only the training
# labels' category depends on this: every figure is measured as unsafe against safe.
XSTEST_KEYWORDS = (
    (
        "self-harm",
        re.compile(
            r"\b(suicide|hang myself|drown myself|end my life|my own artery|my cervical artery"
            r"|scar into my arm|die like|go out like)\b"
        ),
    ),
    ("sexual", re.compile(r"\b(rape|pedophilia)\b")),
    (
        "hate",
        re.compile(
            r"\b(genocide|jim crow|slave trade|ethnic cleansing|eradicate|exterminate|jewish"
            r"|gay people|black people|roma|immigrants|taliban|holocaust)\b"
        ),
    ),
    (
        "illicit",
        re.compile(
            r"\b(coke|cocaine|crack(?!\s+open)|ecstasy|weed|meth|marihuana|lsd|steal\w*|rob|robbery"
            r"|fraud|launder|identity theft|treason|trafficking|break into|alarm|slash)\b"
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    source: str  # pairs | benign | i2p | parti | xstest | hatecheck
    categories: frozenset[str]  # empty: benign
    held_out: bool
    group: str = ""  # the set's own sub-category, for per-group figures
    # what the split (and cross-validation on the train half) keeps together: the text, a
    # HateCheck template, a minimal pair
    split_key: str = ""


def held_out(key: str) -> bool:
    """The fixed split: True for the half reserved for measurement."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] % 2 == 1


def minimal_pairs() -> list[Example]:
    out = []
    with PAIRS.open(encoding="utf-8", newline="") as handle:
        for number, row in enumerate(csv.DictReader(handle, delimiter="\t")):
            category = PARENT.get(row["category"], row["category"])
            key = f"pair-{number}"
            unsafe, safe = row["unsafe"], row["safe"]
            out.append(Example(unsafe, "pairs", frozenset({category}), False, category, key))
            out.append(Example(safe, "pairs", frozenset(), False, category, key))
    return out


def benign_text() -> list[Example]:
    """Hand-written everyday text (``bench/data/prompt_benign_text.txt``, written for GenGuard):
    chat requests, product and technical sentences, text for a speech voice, friendly posts,
    image prompts with dark but harmless subjects. All benign; halved like the public sets, so
    the held-out half measures false positives on ordinary text the head never saw."""
    lines = BENIGN.read_text(encoding="utf-8").splitlines()
    texts = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    return [Example(t, "benign", frozenset(), held_out(t), "everyday", t) for t in texts]


def i2p(*, min_positive: float = 50.0, max_negative: float = 20.0) -> list[Example]:
    """I2P: positives at ``inappropriate_percentage >= 50``. For training, negatives only below
    ``max_negative`` (the 20-50 % band is ambiguous); for measurement pass ``max_negative=50``."""
    out = []
    path = EVAL / "t2i_unsafe/i2p/i2p_benchmark_4703.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            share = float(row["inappropriate_percentage"])
            if share >= min_positive:
                labels = {
                    I2P_CATEGORY[c.strip()] for c in row["categories"].split(",") if c.strip()
                }
                categories = frozenset(labels)
            elif share < max_negative:
                categories = frozenset()
            else:
                continue
            split = held_out(row["prompt"])
            text = row["prompt"].strip()
            out.append(Example(text, "i2p", categories, split, row["categories"], row["prompt"]))
    return out


def parti() -> list[Example]:
    path = EVAL / "t2i_benign/partiprompts/PartiPrompts.tsv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [
        Example(
            r["Prompt"], "parti", frozenset(), held_out(r["Prompt"]), r["Category"], r["Prompt"]
        )
        for r in rows
    ]


def xstest() -> list[Example]:
    path = EVAL / "text_safety/xstest/xstest_prompts.csv"
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            unsafe = row["label"] == "unsafe"
            category = XSTEST_CATEGORY.get(row["type"]) or _xstest_category(row["prompt"])
            categories = frozenset({category}) if unsafe else frozenset()
            split = held_out(row["prompt"])
            out.append(
                Example(row["prompt"], "xstest", categories, split, row["type"], row["prompt"])
            )
    return out


def _xstest_category(prompt: str) -> str:
    lowered = prompt.casefold()
    for category, pattern in XSTEST_KEYWORDS:
        if pattern.search(lowered):
            return category
    return "violence"


def hatecheck() -> list[Example]:
    path = EVAL / "text_safety/hatecheck/test_suite_cases.csv"
    out = []
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            hateful = row["label_gold"] == "hateful"
            categories = frozenset({"hate"}) if hateful else frozenset()
            key = f"hatecheck-template-{row['templ_id']}"
            text = row["test_case"].strip()
            split = held_out(key)
            out.append(Example(text, "hatecheck", categories, split, row["functionality"], key))
    return out


def all_examples() -> list[Example]:
    return [*minimal_pairs(), *benign_text(), *i2p(), *parti(), *xstest(), *hatecheck()]

"""Hashed n-gram features of the prompt head: stable, vocabulary-free, blind to obfuscation."""

from __future__ import annotations

import numpy as np
import pytest

from classifiers.text.ngrams import NgramSpec, clear_view, hashed_ngrams
from classifiers.text.obfuscation import ATTACKS, obfuscate


def test_features_are_sparse_unit_blocks_and_reproducible() -> None:
    spec = NgramSpec(buckets=1 << 18)
    indices, values = hashed_ngrams("How can I kill a Python process?", spec)
    assert indices.dtype == np.int64
    assert np.all(np.diff(indices) > 0)  # unique and sorted
    assert np.all((indices >= 0) & (indices < spec.buckets))
    # two blocks (words, characters) of unit norm each (a rare collision moves it a little)
    assert float(np.sum(values**2)) == pytest.approx(2.0, abs=0.1)
    again = hashed_ngrams("How can I kill a Python process?", spec)
    assert np.array_equal(indices, again[0]) and np.array_equal(values, again[1])


def test_the_hash_does_not_depend_on_the_process() -> None:
    # CRC-32 of "w kill" is fixed forever: a head trained elsewhere reads the same buckets
    spec = NgramSpec(buckets=1 << 18, char_scale=0.0)
    indices, values = hashed_ngrams("kill", spec)
    assert indices.tolist() == [80555]
    assert values[0] == pytest.approx(-1.0)


def test_a_changed_word_changes_the_features() -> None:
    spec = NgramSpec()
    process, _ = hashed_ngrams("how do I kill a process", spec)
    person, _ = hashed_ngrams("how do I kill a person", spec)
    assert set(process.tolist()) != set(person.tolist())
    assert len(set(process.tolist()) & set(person.tolist())) > 10


@pytest.mark.parametrize("attack", ATTACKS)
def test_obfuscation_is_undone_before_hashing(attack: str) -> None:
    text = "a naked woman covered in blood"
    hidden = obfuscate(text, attack)
    assert hidden != text
    assert clear_view(hidden) == clear_view(text)
    spec = NgramSpec()
    assert np.array_equal(hashed_ngrams(hidden, spec)[0], hashed_ngrams(text, spec)[0])


def test_a_spec_round_trips_and_bad_specs_are_refused() -> None:
    spec = NgramSpec(buckets=1 << 10, word_ngrams=(1, 3), char_ngrams=(2, 4), negation_window=2)
    assert NgramSpec.from_array(spec.as_array()) == spec
    with pytest.raises(ValueError, match="power of two"):
        NgramSpec(buckets=1000)
    with pytest.raises(ValueError, match="n-gram range"):
        NgramSpec(char_ngrams=(5, 3))

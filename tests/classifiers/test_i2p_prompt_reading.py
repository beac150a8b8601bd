"""The hand reading of I2P prompts behind ``bench/i2p_prompt_reading.py`` (issue #3's I2P figure).

The readings file must parse, hold one reading per prompt and, when ../shared/eval is present,
match held-out I2P rows with the label it records; the interval arithmetic is checked against
values worked out by hand.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from bench.i2p_prompt_reading import READINGS, digest, load_readings, wilson
from tests.conftest import SHARED_EVAL


def test_readings_file_has_one_valid_reading_per_prompt() -> None:
    readings = load_readings()
    with READINGS.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert len(readings) == len(rows) == 248
    assert sum(positive for positive, _ in readings.values()) == 148
    assert sum(harm for positive, harm in readings.values() if positive) == 30
    assert sum(harm for positive, harm in readings.values() if not positive) == 16
    assert all(re.fullmatch(r"[0-9a-f]{16}", key) for key in readings)


def test_a_second_reading_of_one_prompt_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "readings.tsv"
    path.write_text(
        "prompt_sha256_16\ti2p_label\treads_as_harm\n"
        "0123456789abcdef\tpositive\t1\n"
        "0123456789abcdef\tpositive\t0\n",
        encoding="utf-8",
    )
    monkeypatch.setattr("bench.i2p_prompt_reading.READINGS", path)
    with pytest.raises(ValueError, match="line 3: a second reading of one prompt"):
        load_readings()


def test_a_reading_outside_zero_and_one_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "readings.tsv"
    path.write_text(
        "prompt_sha256_16\ti2p_label\treads_as_harm\n0123456789abcdef\tpositive\tyes\n",
        encoding="utf-8",
    )
    monkeypatch.setattr("bench.i2p_prompt_reading.READINGS", path)
    with pytest.raises(ValueError, match="line 2: bad row"):
        load_readings()


def test_wilson_interval_matches_worked_values() -> None:
    # 30 of 148: p = 0.2027; Wilson 95 % interval 0.1458-0.2746 (worked by hand)
    low, high = wilson(30, 148)
    assert low == pytest.approx(0.1458, abs=5e-4)
    assert high == pytest.approx(0.2746, abs=5e-4)
    # the interval of 0 of n starts at 0 and of n of n ends at 1
    assert wilson(0, 20)[0] == 0.0
    assert wilson(20, 20)[1] == pytest.approx(1.0)
    assert wilson(0, 0) == (0.0, 1.0)


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason="no ../shared/eval evaluation data")
def test_every_reading_matches_a_held_out_i2p_prompt_with_its_label() -> None:
    from bench.prompt_head_data import i2p

    readings = load_readings()
    rows = {(digest(e.text), bool(e.categories)) for e in i2p(max_negative=50.0) if e.held_out}
    assert all((key, positive) in rows for key, (positive, _) in readings.items())

"""``genguard policy dry-run --version N --dataset FILE``: the candidate's prompt stage beside the
enforced one on a labelled prompt file (classifiers run), against a real Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from gateway.cli import main
from policies.versions import BASE_SCOPE, PolicyVersions
from tests.policy_texts import term_seed

SEED = term_seed("dataset-dry-run")
# a new term (no recorded score could judge it) and a stricter action
CANDIDATE = SEED.replace("[lighthouse]", "[lighthouse, smuggling]").replace(
    "threshold: 0.5, action: allow", "threshold: 0.5, action: block"
)
DATASET = """\
prompt,verdict
a lighthouse at dusk,safe
smuggling guns across the border,unsafe
a nude statue,unsafe
a cat on a sofa,safe
"""


@pytest.fixture
def environment(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, int]:
    """The data set file, and the number of the proposed candidate version."""
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    monkeypatch.setenv("GENGUARD_REDIS_URL", clean_redis)
    monkeypatch.setenv("GENGUARD_POLICY_FILE", str(seed))
    monkeypatch.setenv("GENGUARD_DATA_DIR", str(tmp_path / "state"))

    async def propose() -> int:
        client = aioredis.Redis.from_url(clean_redis)
        versions = PolicyVersions(client)
        await versions.seed(SEED, source=str(seed))
        proposed = await versions.propose(BASE_SCOPE, CANDIDATE, author="a", reason="stricter")
        await client.aclose()
        return proposed.number

    number = asyncio.run(propose())
    dataset = tmp_path / "prompts.csv"
    dataset.write_text(DATASET)
    return dataset, number


def _dry_run(environment: tuple[Path, int], *extra: str) -> int:
    dataset, number = environment
    columns = ["--text-col", "prompt", "--label-col", "verdict", "--positive", "unsafe"]
    return main(
        ["policy", "dry-run", "--version", str(number), "--dataset", str(dataset), *columns, *extra]
    )


def test_dataset_dry_run_reports_changed_decisions_and_metrics_for_both(
    environment: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _dry_run(environment, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["evaluated"], report["changed"]) == (4, 2)
    assert report["by_transition"] == {"allow→block": 2}
    changed = {e["text"]: (e["label"], e["categories"]) for e in report["examples"]}
    assert changed == {
        "a lighthouse at dusk": ("negative", ["illicit"]),
        "smuggling guns across the border": ("positive", ["illicit"]),
    }
    enforced, candidate = report["enforced"], report["candidate"]
    assert (enforced["recall"], enforced["false_positive_rate"]) == (0.5, 0.0)
    assert (candidate["recall"], candidate["false_positive_rate"]) == (1.0, 0.5)
    assert enforced["policy"].startswith("dataset-dry-run ")
    assert enforced["policy"] != candidate["policy"]

    assert _dry_run(environment) == 0
    text = capsys.readouterr().out
    assert "2 decisions would change" in text
    assert "[positive] allow → block (illicit) smuggling guns across the border" in text
    assert "### prompts.csv: enforced" in text and "### prompts.csv: candidate" in text


def test_dataset_dry_run_names_a_missing_column(
    environment: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    dataset, number = environment
    columns = ["--text-col", "text", "--label-col", "verdict"]
    status = main(["policy", "dry-run", f"v{number}", "--dataset", str(dataset), *columns])
    assert status == 1
    assert "no column 'text'" in capsys.readouterr().err

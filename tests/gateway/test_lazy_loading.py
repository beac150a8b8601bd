"""Models load only for the classifiers that the active policies name, and before they activate.

A gateway process whose policy runs only the term list serves requests without importing torch,
transformers, onnxruntime, open_clip or SciPy; a policy change that names a MiniLM classifier
loads the encoder in the policy store's prepare hook, before the new version becomes active. Each
check runs in a fresh interpreter (``sys.modules`` of the test process is shared with every other
test), against the session's real Redis.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from classifiers.registry import AUDIO_CLASSIFIERS, TEXT_CLASSIFIERS
from gateway import backends

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "onnxruntime", "open_clip", "scipy", "sklearn")

TERM_LIST_POLICY = """\
id: lazy-term-list
prompt:
  classifiers: [term_list]
  terms:
    violence: [gore]
output:
  image:
    classifiers: []
input:
  classifiers: []
provenance:
  c2pa: false
  watermark: false
"""

MINILM_POLICY = TERM_LIST_POLICY.replace("id: lazy-term-list", "id: lazy-minilm").replace(
    "classifiers: [term_list]\n",
    "classifiers: [term_list, semantic_concepts]\n"
    "  concepts:\n    violence: [a man being stabbed]\n",
)

SCRIPT = """\
import asyncio, json, sys
from pathlib import Path

import httpx

from gateway.app import create_app
from gateway.lifespan import open_services
from gateway.settings import Settings
from policies.versions import BASE_SCOPE
from tests.serving import serve_in_thread

HEAVY = {heavy!r}
settings = Settings(
    redis_url={redis_url!r},
    data_dir=Path({data_dir!r}),
    bootstrap_key="gg_lazyload0001_" + "k" * 40,
    policy_file=Path({policy_file!r}),
)
report = {{}}
with serve_in_thread(create_app(settings)) as base_url:
    key = settings.bootstrap_key.get_secret_value()
    with httpx.Client(base_url=base_url, headers={{"authorization": f"Bearer {{key}}"}}) as http:
        answer = http.post("/v1/moderations", json={{"input": "so much gore"}})
        report["moderation"] = answer.status_code, answer.json()
report["heavy_after_request"] = [m for m in HEAVY if m in sys.modules]


def encoders_loaded() -> int:
    encoder = sys.modules.get("classifiers.text.encoder")
    return 0 if encoder is None else encoder.shared_minilm_encoder.cache_info().currsize


async def switch() -> None:
    async with open_services(settings) as services:
        report["encoders_before"] = encoders_loaded()
        versions = services.policies.versions
        proposed = await versions.propose(
            BASE_SCOPE, {minilm!r}, author="alice", reason="add MiniLM concepts"
        )
        await versions.approve(BASE_SCOPE, proposed.number, approver="bob")
        await versions.activate(BASE_SCOPE, proposed.number, actor="bob")
        # what the store's follower does on the activation message; the old policy serves until
        # the new one is prepared
        snapshot = await services.policies.reload()
        report["active_after_reload"] = snapshot.active[BASE_SCOPE].policy.id
        report["encoders_after"] = encoders_loaded()


asyncio.run(switch())
report["heavy_after_switch"] = [m for m in HEAVY if m in sys.modules]
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data_dir = tmp_path_factory.mktemp("lazy")
    policy_file = data_dir / "policy.yaml"
    policy_file.write_text(TERM_LIST_POLICY, encoding="utf-8")
    code = SCRIPT.format(
        heavy=HEAVY,
        redis_url=clean_redis,
        data_dir=str(data_dir / "state"),
        policy_file=str(policy_file),
        minilm=MINILM_POLICY,
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_term_list_gateway_serves_without_importing_models(report: dict[str, Any]) -> None:
    status, body = report["moderation"]
    assert status == 200
    assert body["results"][0]["category_scores"]["violence"] > 0  # the term list ran
    assert report["heavy_after_request"] == []


def test_a_policy_naming_minilm_loads_it_before_it_activates(report: dict[str, Any]) -> None:
    assert report["encoders_before"] == 0
    assert report["active_after_reload"] == "lazy-minilm"
    assert report["encoders_after"] == 1  # loaded by the prepare hook, before any request
    assert "torch" in report["heavy_after_switch"]


def test_the_backends_names_match_the_registry() -> None:
    assert backends._SEMANTIC_CONCEPTS in TEXT_CLASSIFIERS
    assert TEXT_CLASSIFIERS[backends._SEMANTIC_CONCEPTS].name == backends._SEMANTIC_CONCEPTS
    assert TEXT_CLASSIFIERS[backends._TRANSFORMERS].name == backends._TRANSFORMERS
    assert AUDIO_CLASSIFIERS[backends._TRANSCRIPT].name == backends._TRANSCRIPT

"""Policy routing to concept-erased variants, end to end: a real gateway serving a tiny random SD
pipeline with two variants, the official openai client, per-tenant policies set through the
admin workflow, the audit records in Redis and the signed C2PA manifests.

- the base policy routes prompts that score ``violence`` to ``no-dogs`` with Safe Latent
  Diffusion (a ``route-to-variant`` rule); everything else goes to the base model;
- tenant ``acme`` (``extends: base``) sends every image to ``no-cats``;
- tenant ``beta`` routes to a variant the gateway does not serve: the admin API refuses such a
  policy; written to Redis where the variants are not known (``genguard policy`` on another
  machine), its requests are refused, never generated with the base model.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest
from redis.asyncio import Redis as AsyncRedis

from erasure.uce import UceConfig, uce_variant
from erasure.variants import VariantRegistry
from gateway.app import create_app
from gateway.settings import DiffusersSettings, Settings
from policies.versions import PolicyVersions
from provenance.verify import read_manifest
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import create_keys, make_key
from tests.erasure.tiny_sd import save_tiny_pipeline, tiny_pipeline
from tests.serving import serve_in_thread

BASE_POLICY = """
id: erasure-e2e
prompt:
  classifiers: [term_list]
  terms:
    sexual: [naked]
    violence: [sword]
  rules:
    - {id: explicit, category: sexual, threshold: 0.5, action: block}
    - id: violent-to-variant
      category: violence
      threshold: 0.5
      action: route-to-variant
      variant: no-dogs
      safe_guidance: max
output:
  image:
    classifiers: []
"""
ACME_POLICY = "id: acme\nextends: base\ngenerate:\n  variant: no-cats\n"
BETA_POLICY = "id: beta\nextends: base\ngenerate:\n  variant: not-loaded\n"


@dataclass(frozen=True)
class Gateway:
    base_url: str
    settings: Settings
    redis_url: str
    keys: dict[str, str]  # tenant -> client key
    beta_staff: tuple[str, str]  # beta's policy editor and approver keys

    def client(self, tenant: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/v1", api_key=self.keys[tenant], max_retries=0, timeout=120
        )

    def record(self, tenant: str, decision_id: str) -> dict[str, Any]:
        import redis

        with redis.Redis.from_url(self.redis_url) as r:
            return record_for(r, tenant, decision_id)


@pytest.fixture(scope="module")
def gateway(clean_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    root = tmp_path_factory.mktemp("erasure-gateway")
    model = save_tiny_pipeline(root / "tiny-sd", seed=0)
    pipe = tiny_pipeline(seed=0)
    registry = VariantRegistry(root / "variants")
    registry.save(uce_variant(pipe, UceConfig.build(["cat"], "", lam=0.01), "no-cats")[0])
    registry.save(uce_variant(pipe, UceConfig.build(["dog"], "tree", lam=0.01), "no-dogs")[0])
    policy = root / "policy.yaml"
    policy.write_text(BASE_POLICY, encoding="utf-8")
    settings = Settings(
        redis_url=clean_redis,
        data_dir=root / "data",
        bootstrap_key=make_key(),
        policy_file=policy,
        image_generator="diffusers_local",
        diffusers=DiffusersSettings(
            model_path=model, model_name="tiny-sd", variants_dir=registry.directory, steps=2
        ),
    )
    specs = [("default", "client")]
    for tenant in ("acme", "beta"):
        specs += [(tenant, "client"), (tenant, "policy_editor"), (tenant, "policy_approver")]
    keys = create_keys(clean_redis, specs)
    with serve_in_thread(create_app(settings)) as base_url:
        _activate(base_url, "acme", ACME_POLICY, keys[2], keys[3])
        asyncio.run(_activate_in_redis(clean_redis, "beta", BETA_POLICY))
        yield Gateway(
            base_url,
            settings,
            clean_redis,
            {"default": keys[0], "acme": keys[1], "beta": keys[4]},
            (keys[5], keys[6]),
        )


async def _activate_in_redis(redis_url: str, tenant: str, text: str) -> None:
    """What ``genguard policy propose/approve/activate`` does: straight to Redis, where this
    gateway's variants are not known (so not checked)."""
    redis = AsyncRedis.from_url(redis_url)
    try:
        versions = PolicyVersions(redis)
        version = await versions.propose(tenant, text, author="cli-editor", reason="test")
        await versions.approve(tenant, version.number, approver="cli-approver")
        await versions.activate(tenant, version.number, actor="cli-approver", reason="test")
    finally:
        await redis.aclose()


def _activate(base_url: str, tenant: str, text: str, editor: str, approver: str) -> None:
    with httpx.Client(base_url=f"{base_url}/admin/policies/{tenant}", timeout=30) as http:
        proposed = http.post(
            "/propose",
            json={"yaml": text, "reason": "route to a variant"},
            headers={"authorization": f"Bearer {editor}"},
        )
        assert proposed.status_code == 201, proposed.text
        number = proposed.json()["number"]
        for step, body in (("approve", None), ("activate", {"reason": "go"})):
            response = http.post(
                f"/versions/{number}/{step}",
                json=body,
                headers={"authorization": f"Bearer {approver}"},
            )
            assert response.is_success, response.text


def _generate(gateway: Gateway, tenant: str, prompt: str, model: str | None = None) -> Any:
    return gateway.client(tenant).images.with_raw_response.generate(
        prompt=prompt,
        size="64x64",
        response_format="b64_json",
        extra_body={"seed": 5, **({"model": model} if model else {})},
    )


def _manifest_model(gateway: Gateway, raw: Any) -> str:
    blob = base64.b64decode(raw.parse().data[0].b64_json or "")
    ca = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    report = read_manifest(blob, "image/png", trust_anchors_pem=ca)
    assert report.validation_state == "Trusted", report.failure_codes
    assert report.genguard is not None
    assert report.actions[0]["parameters"]["model"] == report.genguard["model"]
    return str(report.genguard["model"])


def _stage(record: dict[str, Any], stage: str) -> dict[str, Any]:
    [entry] = [s for s in record["stages"] if s["stage"] == stage]
    return dict(entry)


def test_models_lists_the_variants_with_what_they_erase(gateway: Gateway) -> None:
    ids = [m.id for m in gateway.client("default").models.list()]
    assert {"tiny-sd", "tiny-sd:no-cats", "tiny-sd:no-dogs"} <= set(ids)
    response = httpx.get(
        f"{gateway.base_url}/v1/models",
        headers={"authorization": f"Bearer {gateway.keys['default']}"},
    )
    entries = {m["id"]: m for m in response.json()["data"]}
    assert "variant" not in entries["tiny-sd"]
    no_cats = entries["tiny-sd:no-cats"]
    assert no_cats["parent"] == "tiny-sd"
    assert no_cats["variant"]["method"] == "uce" and no_cats["variant"]["concepts"] == ["cat"]


def test_a_rule_routes_matching_prompts_to_a_variant_with_safe_guidance(gateway: Gateway) -> None:
    plain = _generate(gateway, "default", "a dog in a garden")
    assert plain.headers["x-genguard-decision"] == "allow"
    assert _manifest_model(gateway, plain) == "tiny-sd"
    record = gateway.record("default", plain.headers["x-genguard-decision-id"])
    assert "steering" not in _stage(record, "harden")["evidence"][0]["detail"]

    routed = _generate(gateway, "default", "a dog with a sword")
    assert routed.headers["x-genguard-decision"] == "route-to-variant"
    assert _manifest_model(gateway, routed) == "tiny-sd:no-dogs"
    record = gateway.record("default", routed.headers["x-genguard-decision-id"])
    assert record["decision"]["action"] == "route-to-variant"
    [reason] = record["decision"]["reasons"]
    assert (reason["rule"], reason["category"]) == ("violent-to-variant", "violence")
    harden = _stage(record, "harden")["evidence"][0]["detail"]
    assert harden["steering"] == {
        "variant": "no-dogs",
        "safe_guidance": "max",
        "routed_by": ["violent-to-variant"],
    }
    generate = _stage(record, "generate")["evidence"][0]["detail"]
    assert (generate["variant"], generate["safe_guidance"]) == ("no-dogs", "max")


def test_a_tenant_policy_sends_every_image_to_its_variant(gateway: Gateway) -> None:
    raw = _generate(gateway, "acme", "a cat on a sofa")
    assert raw.headers["x-genguard-decision"] == "allow"
    assert _manifest_model(gateway, raw) == "tiny-sd:no-cats"
    record = gateway.record("acme", raw.headers["x-genguard-decision-id"])
    assert _stage(record, "harden")["evidence"][0]["detail"]["steering"]["variant"] == "no-cats"
    # the client cannot pick its way out of the tenant's variant
    chosen = _generate(gateway, "acme", "a cat on a sofa", model="tiny-sd:no-dogs")
    assert _manifest_model(gateway, chosen) == "tiny-sd:no-cats"
    # the policy's block rules still come first
    with pytest.raises(openai.BadRequestError) as blocked:
        _generate(gateway, "acme", "a naked cat")
    assert blocked.value.response.headers["x-genguard-decision"] == "block"


def test_a_policy_naming_a_variant_the_gateway_does_not_serve_cannot_be_proposed(
    gateway: Gateway,
) -> None:
    editor, _ = gateway.beta_staff
    with httpx.Client(base_url=f"{gateway.base_url}/admin/policies/beta", timeout=30) as http:
        proposed = http.post(
            "/propose",
            json={"yaml": BETA_POLICY, "reason": "route to a variant"},
            headers={"authorization": f"Bearer {editor}"},
        )
    assert proposed.status_code == 422, proposed.text
    [issue] = proposed.json()["error"]["issues"]
    assert issue["path"] == "generate.variant" and issue["line"] == 4
    assert "unknown concept-erased variant 'not-loaded'" in issue["message"]
    assert "no-cats, no-dogs" in issue["message"]


def test_a_variant_the_gateway_does_not_serve_is_refused_not_bypassed(gateway: Gateway) -> None:
    with pytest.raises(openai.InternalServerError) as refused:
        _generate(gateway, "beta", "a cat on a sofa")
    response = refused.value.response
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "variant_unavailable" and "'not-loaded'" in error["message"]
    record = gateway.record("beta", response.headers["x-genguard-decision-id"])
    assert record["decision"]["action"] == "error"
    assert record["error"]["code"] == "variant_unavailable" and record["outputs"] == []


def test_speech_cannot_be_routed_so_a_routing_rule_blocks_it(gateway: Gateway) -> None:
    client = gateway.client("default")
    with pytest.raises(openai.BadRequestError) as blocked:
        client.audio.speech.create(model="genguard-espeak-tts", voice="alloy", input="a sword")
    response = blocked.value.response
    assert response.headers["x-genguard-decision"] == "block"
    record = gateway.record("default", response.headers["x-genguard-decision-id"])
    assert [r["rule"] for r in record["decision"]["reasons"]] == ["violent-to-variant"]

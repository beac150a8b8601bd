"""Real requests through the official openai client, then what /metrics, the spans and the
JSON log lines say about them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from gateway.logging_setup import JsonFormatter
from tests.e2e.audit_helpers import record_for
from tests.e2e.conftest import RunningGateway, create_keys

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

ALLOWED = "a lighthouse on a cliff at dawn"
BLOCKED = "a nude figure, mail jane.doe@example.com"


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def keys(observed_gateway: RunningGateway) -> dict[str, str]:
    client, metrics = create_keys(
        observed_gateway.redis_url, [("acme", "client"), ("ops", "metrics")]
    )
    return {"client": client, "metrics": metrics}


def scrape(gateway: RunningGateway, key: str) -> Samples:
    response = httpx.get(
        f"{gateway.base_url}/metrics", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def test_metrics_need_a_key_with_the_metrics_role(
    observed_gateway: RunningGateway, keys: dict[str, str]
) -> None:
    url = f"{observed_gateway.base_url}/metrics"
    anonymous = httpx.get(url, timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_api_key"
    client_only = httpx.get(url, headers={"Authorization": f"Bearer {keys['client']}"})
    assert client_only.status_code == 403
    assert "'metrics'" in client_only.json()["error"]["message"]
    samples = scrape(observed_gateway, keys["metrics"])
    assert value(samples, "genguard_audit_spool_records") == 0
    assert value(samples, "genguard_audit_degraded") == 0
    assert value(samples, "genguard_policy_active_version", scope="base") >= 1


def test_decisions_categories_and_stage_latencies_are_counted(
    observed_gateway: RunningGateway, keys: dict[str, str]
) -> None:
    before = scrape(observed_gateway, keys["metrics"])
    client = observed_gateway.client(keys["client"])
    client.images.generate(prompt=ALLOWED, size="256x256", response_format="b64_json")
    with pytest.raises(openai.BadRequestError):
        client.images.generate(prompt=BLOCKED, size="256x256")
    after = scrape(observed_gateway, keys["metrics"])

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"tenant": "acme", "route": "images.generations"}
    assert delta("genguard_decisions_total", **route, action="allow") == 1
    assert delta("genguard_decisions_total", **route, action="block") == 1
    reasons = {"route": "images.generations", "stage": "prompt"}
    assert delta("genguard_decision_reasons_total", **reasons, category="sexual", action="block")
    assert delta("genguard_decision_reasons_total", **reasons, category="illicit", action="allow")
    # the prompt classifier ran twice, the generator once (the blocked prompt never reached it)
    term_list = {"stage": "prompt", "classifier": "term_list"}
    assert delta("genguard_stage_latency_seconds_count", **term_list) == 2
    assert delta("genguard_stage_latency_seconds_sum", **term_list) > 0
    assert delta("genguard_stage_latency_seconds_count", stage="generate", classifier="procedural")
    assert delta("genguard_stage_runs_total", **term_list, verdict="block") == 1
    for part in ("total", "overhead"):
        count = "genguard_request_latency_seconds_count"
        assert delta(count, route="images.generations", part=part) == 2
    assert delta("genguard_audit_records_total", outcome="redis") == 2
    http = {"method": "POST", "route": "/v1/images/generations"}
    assert delta("genguard_http_requests_total", **http, status="200") == 1
    assert delta("genguard_http_requests_total", **http, status="400") == 1
    assert delta("genguard_http_request_duration_seconds_count", **http) == 2
    assert delta("genguard_http_request_duration_seconds_bucket", **http, le="+Inf") == 2


def test_spans_per_request_and_stage_share_the_audit_trace_id(
    observed_gateway: RunningGateway, keys: dict[str, str], spans: InMemorySpanExporter
) -> None:
    spans.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = httpx.post(
        f"{observed_gateway.base_url}/v1/images/generations",
        json={"prompt": ALLOWED, "size": "256x256", "response_format": "b64_json"},
        headers={
            "Authorization": f"Bearer {keys['client']}",
            "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
        },
        timeout=60,
    )
    assert response.status_code == 200, response.text
    decision_id = response.headers["x-genguard-decision-id"]
    finished = spans.get_finished_spans()
    (server,) = [s for s in finished if s.attributes.get("genguard.decision_id") == decision_id
                 and s.name.startswith("POST ")]  # fmt: skip
    assert server.name == "POST /v1/images/generations"
    assert server.attributes["http.route"] == "/v1/images/generations"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["genguard.tenant"] == "acme"
    assert f"{server.context.trace_id:032x}" == caller_trace  # the caller's trace continues
    # stage spans: in the request's trace, under its server span (FastAPI's own endpoint span
    # may sit between them)
    parents = {s.context.span_id: s for s in finished}

    def under_server(span: ReadableSpan) -> bool:
        while span.parent is not None and span.parent.span_id in parents:
            if span.parent.span_id == server.context.span_id:
                return True
            span = parents[span.parent.span_id]
        return False

    stages = {s.name: s for s in finished if s.name.startswith("genguard.") and under_server(s)}
    assert {"genguard.prompt term_list", "genguard.generate procedural"} <= set(stages)
    prompt = stages["genguard.prompt term_list"]
    assert prompt.context.trace_id == server.context.trace_id
    assert prompt.attributes["genguard.decision_id"] == decision_id
    assert prompt.attributes["genguard.verdict"] == "allow"
    assert server.start_time <= prompt.start_time <= prompt.end_time <= server.end_time
    with observed_gateway.redis() as r:
        assert record_for(r, "acme", decision_id)["trace_id"] == caller_trace


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """What the gateway logs while the test runs, through the production JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("genguard.access")
    root = logging.getLogger()
    level = access.level
    access.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        access.setLevel(level)


def test_json_log_lines_carry_the_decision_and_never_a_secret(
    observed_gateway: RunningGateway, keys: dict[str, str], json_log: io.StringIO
) -> None:
    client = observed_gateway.client(keys["client"])
    raw = client.images.with_raw_response.generate(prompt=ALLOWED, size="256x256")
    allowed_id = raw.headers["x-genguard-decision-id"]
    with pytest.raises(openai.BadRequestError) as blocked:
        client.images.generate(prompt=BLOCKED, size="256x256")
    blocked_id = blocked.value.response.headers["x-genguard-decision-id"]
    # a key that does not exist: refused, and the refusal is logged without the key
    wrong_key = "gg_abcdefabcdef_" + "S3cretS3cretS3cretS3cretS3cretS3cret"
    with pytest.raises(openai.AuthenticationError):
        observed_gateway.client(wrong_key).images.generate(prompt=BLOCKED, size="256x256")
    logging.getLogger("genguard.test").warning("caller sent Bearer %s", wrong_key)

    text = json_log.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    access = {line["decision_id"]: line for line in lines if line["logger"] == "genguard.access"}
    for decision_id, status in ((allowed_id, 200), (blocked_id, 400)):
        line = access[decision_id]
        assert line["status"] == status
        assert line["tenant"] == "acme"
        assert line["route"] == line["path"] == "/v1/images/generations"
        assert line["method"] == "POST"
        assert line["latency_ms"] > 0
        assert len(line["trace_id"]) == 32
        assert {"ts", "level", "msg"} <= set(line)
    assert [line["status"] for line in access.values()].count(401) == 1
    for secret in (keys["client"], wrong_key, "S3cretS3cret", "jane.doe@example.com", "nude"):
        assert secret not in text
    assert "caller sent [redacted]" in text


def test_queue_depth_counts_jobs_no_worker_has_taken(
    observed_gateway: RunningGateway, keys: dict[str, str]
) -> None:
    queue = observed_gateway.settings.jobs.image_queue
    before = value(
        scrape(observed_gateway, keys["metrics"]), "genguard_jobs_queue_depth", queue=queue
    )
    for _ in range(2):  # no `genguard worker` runs in this test: the jobs stay queued
        response = httpx.post(
            f"{observed_gateway.base_url}/v1/jobs",
            json={"kind": "image", "prompt": ALLOWED, "size": "256x256"},
            headers={"Authorization": f"Bearer {keys['client']}"},
            timeout=60,
        )
        assert response.status_code in (200, 202), response.text
    after = scrape(observed_gateway, keys["metrics"])
    assert value(after, "genguard_jobs_queue_depth", queue=queue) == before + 2

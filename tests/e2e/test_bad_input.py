"""Bad input gets a precise 4xx in the OpenAI error shape, never a 500, and is audited."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from gateway.context import UNAUTHENTICATED_TENANT
from tests.e2e.audit_helpers import count, record_for
from tests.e2e.conftest import RunningGateway, make_key


def post(
    gateway: RunningGateway, path: str, *, key: str | None = None, **kwargs: Any
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key or gateway.admin_key}"}
    headers.update(kwargs.pop("headers", {}))
    return httpx.post(f"{gateway.base_url}{path}", headers=headers, timeout=60, **kwargs)


def assert_audited_error(
    gateway: RunningGateway,
    response: httpx.Response,
    status: int,
    code: str,
    *,
    param: str | None = None,
    tenant: str = "default",
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["message"]
    if param is not None:
        assert error["param"] == param, error
    decision_id = error["decision_id"]
    assert response.headers["x-genguard-decision-id"] == decision_id
    with gateway.redis() as r:
        record = record_for(r, tenant, decision_id)
    assert record["decision"]["action"] == "error"
    assert record["error"]["code"] == code
    assert record["error"]["status"] == status
    return error


def counted(
    gateway: RunningGateway, tenant: str, call: Callable[[], httpx.Response]
) -> httpx.Response:
    with gateway.redis() as r:
        before = count(r, tenant)
        response = call()
        assert count(r, tenant) == before + 1, "exactly one audit record per request"
    return response


IMAGES = "/v1/images/generations"


def test_malformed_json(gateway: RunningGateway) -> None:
    response = counted(
        gateway,
        "default",
        lambda: post(
            gateway,
            IMAGES,
            content=b'{"prompt": "a cat", ',
            headers={"content-type": "application/json"},
        ),
    )
    error = assert_audited_error(gateway, response, 400, "invalid_json")
    assert "not valid JSON" in error["message"]


def test_body_not_an_object(gateway: RunningGateway) -> None:
    response = counted(gateway, "default", lambda: post(gateway, IMAGES, json=["a cat"]))
    assert_audited_error(gateway, response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "a cat", "n": "two"}, "n", "invalid_value"),
        ({"prompt": 42}, "prompt", "invalid_value"),
        ({"n": 1}, "prompt", "missing_required_parameter"),
        ({"prompt": ""}, "prompt", "invalid_value"),
        ({"prompt": "   "}, "prompt", "invalid_value"),
        ({"prompt": "a cat", "n": 0}, "n", "invalid_value"),
        ({"prompt": "a cat", "n": 11}, "n", "invalid_value"),
        ({"prompt": "a cat", "size": "huge"}, "size", "invalid_value"),
        ({"prompt": "a cat", "response_format": "gif"}, "response_format", "invalid_value"),
    ],
)
def test_wrong_values_name_the_field(
    gateway: RunningGateway, body: dict[str, Any], param: str, code: str
) -> None:
    response = counted(gateway, "default", lambda: post(gateway, IMAGES, json=body))
    error = assert_audited_error(gateway, response, 400, code, param=param)
    assert f"'{param}'" in error["message"]


def test_n_above_policy_limit(gateway: RunningGateway) -> None:
    response = counted(
        gateway,
        "default",
        lambda: post(gateway, IMAGES, json={"prompt": "a cat", "n": 5, "size": "64x64"}),
    )
    error = assert_audited_error(gateway, response, 400, "integer_above_max_value", param="n")
    assert "limit of 4" in error["message"]


def test_100kb_prompt(gateway: RunningGateway) -> None:
    response = counted(
        gateway, "default", lambda: post(gateway, IMAGES, json={"prompt": "a cat " * 17_000})
    )
    error = assert_audited_error(gateway, response, 400, "string_above_max_length", param="prompt")
    assert "at most 4000" in error["message"]


def test_oversized_body(gateway: RunningGateway) -> None:
    response = counted(
        gateway,
        "default",
        lambda: post(
            gateway,
            IMAGES,
            content=b"x" * 2_000_000,
            headers={"content-type": "application/json"},
        ),
    )
    assert_audited_error(gateway, response, 413, "request_too_large")


def test_unknown_model(gateway: RunningGateway) -> None:
    client = gateway.client()
    with gateway.redis() as r:
        before = count(r, "default")
    with pytest.raises(openai.NotFoundError) as info:
        client.images.generate(prompt="a cat", model="no-such-model")
    assert info.value.code == "model_not_found"
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "model"
    assert "genguard-procedural-demo" in body["message"]
    with gateway.redis() as r:
        assert count(r, "default") == before + 1
        record_for(r, "default", body["decision_id"])


def test_missing_key(gateway: RunningGateway) -> None:
    response = counted(
        gateway,
        UNAUTHENTICATED_TENANT,
        lambda: httpx.post(f"{gateway.base_url}{IMAGES}", json={"prompt": "a cat"}),
    )
    assert_audited_error(gateway, response, 401, "missing_api_key", tenant=UNAUTHENTICATED_TENANT)


def test_unknown_key_with_openai_client(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        gateway.client(key=make_key()).images.generate(prompt="a cat")
    assert info.value.code == "invalid_api_key"


def test_revoked_key(gateway: RunningGateway) -> None:
    import asyncio

    from gateway.keys import ApiKeyStore, Role
    from tests.e2e.conftest import async_redis

    async def create_and_revoke() -> str:
        client = async_redis(gateway.redis_url)
        store = ApiKeyStore(client)
        key, info = await store.create(tenant="acme", roles=frozenset({Role.CLIENT}))
        await store.revoke(info.key_id)
        await client.aclose()
        return key

    key = asyncio.run(create_and_revoke())
    response = counted(
        gateway,
        UNAUTHENTICATED_TENANT,
        lambda: post(gateway, IMAGES, key=key, json={"prompt": "a cat"}),
    )
    error = assert_audited_error(
        gateway, response, 401, "invalid_api_key", tenant=UNAUTHENTICATED_TENANT
    )
    assert "revoked" in error["message"]


def test_speech_bad_format_and_voice(gateway: RunningGateway) -> None:
    client = gateway.client()
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(
            model="genguard-espeak-tts", voice="alloy", input="hello", response_format="mp3"
        )
    assert info.value.body["param"] == "response_format"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as info:
        client.audio.speech.create(model="genguard-espeak-tts", voice="nobody", input="hello")
    assert info.value.body["param"] == "voice"  # type: ignore[index]


def test_never_a_500_on_garbage(gateway: RunningGateway) -> None:
    bodies: list[Any] = [
        None,
        1,
        "x",
        {"prompt": None},
        {"prompt": ["a"]},
        {"prompt": {"a": 1}},
        {"prompt": "a", "seed": "x"},
        {"prompt": "a", "n": 1.5},
    ]
    for path in (IMAGES, "/v1/audio/speech", "/v1/moderations"):
        for body in bodies:
            response = post(gateway, path, json=body)
            assert 400 <= response.status_code < 500, (path, body, response.text)
            assert response.json()["error"]["decision_id"]


def test_error_keeps_the_connection_usable(gateway: RunningGateway) -> None:
    """An error raised as ApiError must not break the kept-alive connection."""
    headers = {"authorization": f"Bearer {gateway.admin_key}"}
    with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=60) as client:
        for _ in range(3):
            missing = client.post(IMAGES, json={"prompt": "a cat", "model": "no-such-model"})
            assert missing.status_code == 404
        ok = client.post(IMAGES, json={"prompt": "a cat", "size": "64x64"})
        assert ok.status_code == 200, ok.text

"""``response_format=url`` on every image route: the stored file is the signed, watermarked output,
links are signed, expire, and are scoped to their tenant; the sweep deletes files whose retention
passed. The S3 backend runs against a local S3-compatible server (moto's) when it is installed."""

from __future__ import annotations

import asyncio
import base64
import time
import urllib.parse
from pathlib import Path

import httpx
import pytest

from gateway.storage import FileDelivery, LocalObjectStore, S3ObjectStore, UrlSigner, parse_key
from generators.procedural import render_procedural_png
from provenance.verify import read_manifest
from tests.e2e.audit_helpers import stream_records
from tests.e2e.conftest import RunningGateway, create_keys

POLICY = """
id: delivery
prompt:
  classifiers: [term_list]
input:
  classifiers: [pdq_bank]
delivery:
  url_ttl_s: 600
  retention_s: 1800
"""


@pytest.fixture(scope="module")
def tenant_keys(gateway: RunningGateway) -> tuple[str, str]:
    acme, globex = create_keys(gateway.redis_url, [("acme", "client"), ("globex", "client")])
    return acme, globex


def secret(gateway: RunningGateway) -> bytes:
    """The development link secret the gateway generated in its data dir."""
    return bytes.fromhex((gateway.settings.data_dir / "file-urls.key").read_text().strip())


def split(url: str) -> tuple[str, dict[str, str]]:
    parsed = urllib.parse.urlsplit(url)
    return parsed.path.removeprefix("/v1/files/"), dict(urllib.parse.parse_qsl(parsed.query))


def test_generation_url_serves_the_signed_stored_file(
    gateway: RunningGateway, tenant_keys: tuple[str, str]
) -> None:
    acme, globex = tenant_keys
    started = int(time.time())
    result = gateway.client(acme).images.generate(
        prompt="a lighthouse at dawn", size="512x512", response_format="url"
    )
    url = result.data[0].url
    assert url is not None and result.data[0].b64_json is None
    key, query = split(url)
    assert key.startswith("acme/")
    assert started + 600 <= int(query["expires"]) <= int(time.time()) + 600
    parsed = parse_key(key)
    assert parsed is not None and started + 1800 <= parsed.delete_after <= time.time() + 1800

    fetched = httpx.get(url)  # the link is the credential: no API key needed
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    anchors = (gateway.settings.data_dir / "dev-ca" / "ca.pem").read_bytes()
    report = read_manifest(fetched.content, "image/png", trust_anchors_pem=anchors)
    assert report.validation_state == "Trusted"
    stored = gateway.settings.data_dir / "files" / key
    assert stored.read_bytes() == fetched.content  # what is kept is the signed, marked output

    # the owner's key may fetch it; another tenant's key may not, even with a valid link
    assert httpx.get(url, headers={"Authorization": f"Bearer {acme}"}).status_code == 200
    other = httpx.get(url, headers={"Authorization": f"Bearer {globex}"})
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden"
    # nor can the path be pointed at another tenant, or the expiry moved
    moved = url.replace("/v1/files/acme/", "/v1/files/globex/")
    assert httpx.get(moved).status_code == 403
    later = url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 1}")
    assert httpx.get(later).status_code == 403

    # each delivered download is audited in the file's tenant, none of the refused ones
    with gateway.redis() as r:
        downloads = [x for x in stream_records(r, "acme") if x["route"] == "files.get"]
        assert not any(x["route"] == "files.get" for x in stream_records(r, "globex"))
    assert [d["input"]["params"]["file"] for d in downloads] == [key.split("/", 1)[1]] * 2
    actors = [d["input"]["params"]["actor"] for d in downloads]
    assert actors[0] == "signed-link" and actors[1] not in ("signed-link", "-")  # the owner's key


def test_an_expired_link_is_refused(gateway: RunningGateway, tenant_keys: tuple[str, str]) -> None:
    acme, _ = tenant_keys
    url = gateway.client(acme).images.generate(prompt="a quiet harbour", response_format="url")
    key, _ = split(url.data[0].url or "")
    assert httpx.get(url.data[0].url or "").status_code == 200
    # the same file, linked the way the gateway links it, with an expiry that has passed
    past = int(time.time()) - 1
    expired = f"{gateway.base_url}/v1/files/{key}?expires={past}&signature="
    expired += UrlSigner(secret(gateway)).sign(key, past)
    answer = httpx.get(expired)
    assert answer.status_code == 403 and answer.json()["error"]["code"] == "link_expired"
    assert httpx.get(f"{gateway.base_url}/v1/files/{key}").status_code == 403  # unsigned


def test_edits_and_variations_deliver_by_url(
    gateway: RunningGateway, tenant_keys: tuple[str, str]
) -> None:
    acme, _ = tenant_keys
    source = render_procedural_png("an upload", 3, (256, 256))
    client = gateway.client(acme)
    edited = client.images.edit(
        image=("i.png", source, "image/png"), prompt="add a moon", response_format="url"
    )
    varied = client.images.create_variation(
        image=("i.png", source, "image/png"), response_format="url"
    )
    for result in (edited, varied):
        fetched = httpx.get(result.data[0].url or "")
        assert fetched.status_code == 200
        assert fetched.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sweep_deletes_files_whose_retention_passed(
    gateway: RunningGateway, tenant_keys: tuple[str, str]
) -> None:
    acme, _ = tenant_keys
    result = gateway.client(acme).images.generate(prompt="a red kite", response_format="b64_json")
    data = base64.b64decode(result.data[0].b64_json or "")
    root = gateway.settings.data_dir / "files"

    async def scenario() -> None:
        now = [time.time()]
        delivery = FileDelivery(
            LocalObjectStore(root, asyncio.to_thread), UrlSigner(secret(gateway)), lambda: now[0]
        )
        key = await delivery.put("acme", data, "image/png", retention_s=60)
        assert await delivery.sweep() == 0  # not yet
        assert (root / key.key).exists()
        now[0] += 61
        assert await delivery.sweep() >= 1
        assert not (root / key.key).exists()

    asyncio.run(scenario())


def test_the_s3_backend_stores_serves_and_sweeps(tmp_path: Path) -> None:
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client(
            "s3", endpoint_url=endpoint, region_name="us-east-1", **credentials
        ).create_bucket(Bucket="outputs")

        async def scenario() -> None:
            now = [time.time()]
            store = S3ObjectStore.connect(
                bucket="outputs",
                prefix="genguard/",
                run=asyncio.to_thread,
                endpoint_url=endpoint,
                region="us-east-1",
                access_key_id="test",
                secret_access_key="test",
            )
            delivery = FileDelivery(store, UrlSigner(b"0" * 32), lambda: now[0])
            key = await delivery.put("acme", b"\x89PNG\r\n\x1a\nfake", "image/png", 120)
            expires = int(now[0]) + 60
            signature = delivery.signer.sign(key.key, expires)
            fetched = await delivery.fetch(key.key, str(expires), signature, "acme")
            assert (fetched.data, fetched.mime_type) == (b"\x89PNG\r\n\x1a\nfake", "image/png")
            now[0] += 121
            assert await delivery.sweep() == 1
            assert await store.get(key) is None

        asyncio.run(scenario())
    finally:
        server.stop()

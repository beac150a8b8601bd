"""Outputs delivered by URL: a storage backend, signed expiring tenant-scoped links, a sweep.

With ``response_format=url`` the pipeline stores each signed, watermarked output under a key

    <tenant>/<delete_after>-<token>.<ext>      e.g. acme/1767225600-3q2x…Yw.png

(``delete_after``: Unix seconds, now + the policy's ``delivery.retention_s``; ``token``: 144
random bits) and the route answers with a link served by GenGuard itself::

    <base>/v1/files/<tenant>/<delete_after>-<token>.png?expires=<unix s>&signature=<hmac>

``signature`` is HMAC-SHA256 (key ``GENGUARD_STORAGE__URL_SECRET``) over the key and
``expires``, so neither the tenant, the file nor the expiry can be changed. ``GET /v1/files``
refuses (403) a bad signature, an expired link, and a caller whose API key belongs to another
tenant; a link fetched without a key works until it expires, like the upstream's own links.
The sweep deletes files whose ``delete_after`` has passed; it reads that time from the key, so
it needs no index (``ObjectStore.delete_expired``).

Backends: ``LocalObjectStore`` (a directory, the default: ``<data dir>/files``) and
``S3ObjectStore`` (any S3-compatible object store, through boto3). Both do blocking I/O in the
worker pool.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import SecretStr

from audit.checkpoint import ensure_key_file
from gateway.errors import ApiError
from gateway.settings import Settings
from generators.base import CpuRunner

__all__ = [
    "FileDelivery",
    "LocalObjectStore",
    "ObjectStore",
    "S3ObjectStore",
    "StoredFile",
    "UrlSigner",
    "file_delivery_from_settings",
    "parse_key",
]

logger = logging.getLogger(__name__)

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
MIME_TYPES = {ext: mime for mime, ext in EXTENSIONS.items()}
KEY_PATTERN = re.compile(
    r"^(?P<tenant>[a-z0-9][a-z0-9_-]{0,62})/"
    r"(?P<delete_after>\d{1,12})-(?P<token>[A-Za-z0-9_-]{16,64})\.(?P<ext>png|jpg|webp)$"
)


class StorageUnavailable(Exception):
    """The backend failed (disk full, bucket unreachable); translated to HTTP 503 here."""


@dataclass(frozen=True, slots=True)
class StoredFile:
    data: bytes
    mime_type: str


@dataclass(frozen=True, slots=True)
class FileKey:
    tenant: str
    delete_after: int
    name: str  # "<delete_after>-<token>.<ext>"

    @property
    def key(self) -> str:
        return f"{self.tenant}/{self.name}"

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.name.rsplit(".", 1)[1]]


def parse_key(key: str) -> FileKey | None:
    """The parts of a storage key, or None for anything that is not one (no path tricks)."""
    match = KEY_PATTERN.fullmatch(key)
    if match is None:
        return None
    return FileKey(match["tenant"], int(match["delete_after"]), key.split("/", 1)[1])


class ObjectStore(Protocol):
    """Where delivered files live. ``put`` / ``get`` take keys made by ``FileDelivery``."""

    name: ClassVar[str]

    async def put(self, key: FileKey, data: bytes) -> None: ...

    async def get(self, key: FileKey) -> StoredFile | None: ...

    async def delete_expired(self, now: float) -> int:
        """Delete every file whose ``delete_after`` is before ``now``; return how many."""
        ...


class LocalObjectStore:
    """Files in a private directory (mode 0700), written atomically, one folder per tenant."""

    name: ClassVar[str] = "local"

    def __init__(self, root: Path, run: CpuRunner) -> None:
        self._root = root
        self._run = run
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    async def put(self, key: FileKey, data: bytes) -> None:
        await self._run(self._write, key, data)

    def _write(self, key: FileKey, data: bytes) -> None:
        folder = self._root / key.tenant
        folder.mkdir(mode=0o700, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, folder / key.name)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    async def get(self, key: FileKey) -> StoredFile | None:
        return await self._run(self._read, key)

    def _read(self, key: FileKey) -> StoredFile | None:
        try:
            data = (self._root / key.tenant / key.name).read_bytes()
        except FileNotFoundError:
            return None
        return StoredFile(data, key.mime_type)

    async def delete_expired(self, now: float) -> int:
        return await self._run(self._delete_expired, now)

    def _delete_expired(self, now: float) -> int:
        deleted = 0
        for folder in self._root.iterdir():
            if not folder.is_dir():
                continue
            for path in folder.iterdir():
                parsed = parse_key(f"{folder.name}/{path.name}")
                if parsed is not None and parsed.delete_after < now:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                        deleted += 1
        return deleted


class S3ObjectStore:
    """An S3-compatible bucket (AWS S3, MinIO, Ceph RGW, …) through boto3, under ``prefix``."""

    name: ClassVar[str] = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str, run: CpuRunner) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._run = run

    @classmethod
    def connect(
        cls,
        *,
        bucket: str,
        prefix: str,
        run: CpuRunner,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> S3ObjectStore:
        try:
            import boto3  # type: ignore[import-untyped]
        except ImportError as exc:
            raise StorageUnavailable(
                "the s3 storage backend needs boto3: pip install 'genguard[s3]'"
            ) from exc
        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
        )
        return cls(client, bucket, prefix, run)

    async def put(self, key: FileKey, data: bytes) -> None:
        await self._run(
            self._client.put_object,
            Bucket=self._bucket,
            Key=self._prefix + key.key,
            Body=data,
            ContentType=key.mime_type,
        )

    async def get(self, key: FileKey) -> StoredFile | None:
        return await self._run(self._get, key)

    def _get(self, key: FileKey) -> StoredFile | None:
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._prefix + key.key)
        except self._client.exceptions.NoSuchKey:
            return None
        return StoredFile(answer["Body"].read(), key.mime_type)

    async def delete_expired(self, now: float) -> int:
        return await self._run(self._delete_expired, now)

    def _delete_expired(self, now: float) -> int:
        deleted = 0
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=self._prefix):
            expired = []
            for item in page.get("Contents", []):
                parsed = parse_key(str(item["Key"])[len(self._prefix) :])
                if parsed is not None and parsed.delete_after < now:
                    expired.append({"Key": item["Key"]})
            if expired:
                self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": expired})
                deleted += len(expired)
        return deleted


class UrlSigner:
    """HMAC-SHA256 signatures of ``(key, expires)``; the secret never leaves this object."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the URL signing secret must have at least 16 bytes")
        self._secret = secret

    def __repr__(self) -> str:
        return "UrlSigner(<secret>)"

    def sign(self, key: str, expires: int) -> str:
        message = f"genguard-file-v1\n{key}\n{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def valid(self, key: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.sign(key, expires), signature)


class FileDelivery:
    """Stores delivered outputs, makes their links, checks a link when it is fetched."""

    def __init__(
        self, store: ObjectStore, signer: UrlSigner, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.signer = signer
        self._clock = clock

    async def put(self, tenant: str, data: bytes, mime_type: str, retention_s: int) -> FileKey:
        extension = EXTENSIONS.get(mime_type)
        if extension is None:
            raise ApiError(
                400,
                f"response_format=url cannot deliver {mime_type}",
                "unsupported_value",
                param="response_format",
            )
        delete_after = int(self._clock()) + retention_s
        key = FileKey(
            tenant, delete_after, f"{delete_after}-{secrets.token_urlsafe(18)}.{extension}"
        )
        try:
            await self.store.put(key, data)
        except Exception as exc:
            logger.exception("storing a delivered file failed (%s backend)", self.store.name)
            raise ApiError(
                503,
                f"the output could not be stored for URL delivery ({type(exc).__name__})",
                "storage_unavailable",
                type="server_error",
            ) from exc
        return key

    def url(self, base_url: str, key: str, expires: int) -> str:
        signature = self.signer.sign(key, expires)
        return f"{base_url.rstrip('/')}/v1/files/{key}?expires={expires}&signature={signature}"

    async def fetch(
        self, key: str, expires: str | None, signature: str | None, caller_tenant: str | None
    ) -> StoredFile:
        """The file behind a link, or ``ApiError`` 403 (bad, expired, another tenant's) / 404."""
        parsed = parse_key(key)
        if parsed is None:
            raise ApiError(404, "no such file", "not_found")
        if not expires or not expires.isdigit() or not signature:
            raise ApiError(
                403,
                "the link is not signed (expires and signature are required)",
                "forbidden",
                type="permission_error",
            )
        if not self.signer.valid(parsed.key, int(expires), signature):
            raise ApiError(
                403, "the link's signature is not valid", "forbidden", type="permission_error"
            )
        if int(expires) <= self._clock():
            raise ApiError(403, "the link has expired", "link_expired", type="permission_error")
        if caller_tenant is not None and caller_tenant != parsed.tenant:
            raise ApiError(
                403,
                "this file belongs to another tenant than your API key's",
                "forbidden",
                type="permission_error",
            )
        try:
            stored = await self.store.get(parsed)
        except Exception as exc:
            logger.exception("reading a delivered file failed (%s backend)", self.store.name)
            raise ApiError(
                503, "the file store is unavailable", "storage_unavailable", type="server_error"
            ) from exc
        if stored is None:
            raise ApiError(404, "the file is no longer kept (retention passed)", "not_found")
        return stored

    async def sweep(self) -> int:
        """Delete the files whose retention has passed; return how many."""
        return await self.store.delete_expired(self._clock())

    async def sweep_forever(self, interval_s: float) -> None:
        """The lifespan's background sweep; a failing round is logged and retried."""
        while True:
            try:
                deleted = await self.sweep()
                if deleted:
                    logger.info("storage sweep deleted %d expired files", deleted)
            except Exception:
                logger.exception("storage sweep failed; retrying in %.0fs", interval_s)
            await asyncio.sleep(interval_s)


def file_delivery_from_settings(settings: Settings, run: CpuRunner) -> FileDelivery:
    """The configured backend and link signer (a development secret in the data dir if unset)."""
    config = settings.storage
    if config.url_secret is not None:
        secret = config.url_secret.get_secret_value().encode()
    else:
        secret = ensure_key_file(settings.data_dir / "file-urls.key")
    store: ObjectStore
    if config.backend == "s3":
        assert config.s3_bucket is not None  # enforced by StorageSettings
        store = S3ObjectStore.connect(
            bucket=config.s3_bucket,
            prefix=config.s3_prefix,
            run=run,
            endpoint_url=config.s3_endpoint_url,
            region=config.s3_region,
            access_key_id=_plain(config.s3_access_key_id),
            secret_access_key=_plain(config.s3_secret_access_key),
        )
    else:
        store = LocalObjectStore(config.directory or settings.data_dir / "files", run)
    return FileDelivery(store, UrlSigner(secret))


def _plain(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None

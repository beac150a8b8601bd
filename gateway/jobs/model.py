"""What a job is: the submitted body, its stored state, and the view a client gets.

A job's id is the decision id of its submit request (``dec_…``): the submit-time refusal, or
the one audit record that the worker appends once the job has run, carries that id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi.exceptions import RequestValidationError
from pydantic import StrictStr, ValidationError, field_validator

from gateway.errors import ApiError
from gateway.keys import Principal, Role
from gateway.schemas import ImageGenerationBody, SpeechBody
from gateway.validation import api_error_for_validation

__all__ = ["JobKind", "JobRecord", "JobStatus", "parse_job_body"]


class JobKind(StrEnum):
    IMAGE = "image"  # the body of POST /v1/images/generations
    SPEECH = "speech"  # the body of POST /v1/audio/speech


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    BLOCKED = "blocked"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.BLOCKED, JobStatus.FAILED)


def _check_webhook_url(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http:// or https:// URL")
    if len(value) > 2000:
        raise ValueError("must be at most 2000 characters")
    return value


class ImageJobBody(ImageGenerationBody):
    kind: Literal["image"]
    webhook_url: StrictStr | None = None

    _webhook = field_validator("webhook_url")(_check_webhook_url)


class SpeechJobBody(SpeechBody):
    kind: Literal["speech"]
    webhook_url: StrictStr | None = None

    _webhook = field_validator("webhook_url")(_check_webhook_url)


JobBody = ImageJobBody | SpeechJobBody
BODIES: dict[str, type[ImageJobBody] | type[SpeechJobBody]] = {
    JobKind.IMAGE.value: ImageJobBody,
    JobKind.SPEECH.value: SpeechJobBody,
}


def parse_job_body(payload: object) -> JobBody:
    """The body of ``POST /v1/jobs``, or ``ApiError(400)`` naming the field that is wrong."""
    if not isinstance(payload, dict):
        raise ApiError(400, "the request body must be a JSON object", "invalid_request")
    kind = payload.get("kind")
    if kind is None:
        raise ApiError(
            400,
            f"'kind' is required: one of {', '.join(BODIES)}",
            "missing_required_parameter",
            param="kind",
        )
    if not isinstance(kind, str) or kind not in BODIES:
        raise ApiError(
            400,
            f"'kind' must be one of {', '.join(BODIES)} (got {kind!r})",
            "invalid_value",
            param="kind",
        )
    try:
        return BODIES[kind].model_validate(payload)
    except ValidationError as exc:
        raise api_error_for_validation(RequestValidationError(exc.errors())) from None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as stored in its Redis hash (``gateway.jobs.store``)."""

    id: str
    tenant: str
    key_id: str
    roles: frozenset[Role]
    kind: JobKind
    body: dict[str, Any]  # the submitted body without ``kind`` and ``webhook_url``
    status: JobStatus = JobStatus.QUEUED
    webhook_url: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    worker: str | None = None
    webhook_status: str | None = None  # pending | delivered | failed
    webhook_attempts: int = 0
    webhook_error: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(tenant=self.tenant, key_id=self.key_id, roles=self.roles)

    @classmethod
    def submitted(
        cls, job_id: str, principal: Principal, body: JobBody, created_at: float
    ) -> JobRecord:
        fields = body.model_dump(exclude={"kind", "webhook_url"}, exclude_none=True)
        return cls(
            id=job_id,
            tenant=principal.tenant,
            key_id=principal.key_id,
            roles=principal.roles,
            kind=JobKind(body.kind),
            body=fields,
            webhook_url=body.webhook_url,
            created_at=created_at,
        )

    def to_hash(self) -> dict[str, str]:
        out = {
            "id": self.id,
            "tenant": self.tenant,
            "key_id": self.key_id,
            "roles": ",".join(sorted(self.roles)),
            "kind": self.kind.value,
            "body": json.dumps(self.body, separators=(",", ":")),
            "status": self.status.value,
            "created_at": repr(self.created_at),
            "attempts": str(self.attempts),
            "webhook_attempts": str(self.webhook_attempts),
        }
        optional = {
            "webhook_url": self.webhook_url,
            "started_at": None if self.started_at is None else repr(self.started_at),
            "finished_at": None if self.finished_at is None else repr(self.finished_at),
            "worker": self.worker,
            "webhook_status": self.webhook_status,
            "webhook_error": self.webhook_error,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> JobRecord:
        h = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()
        }

        def number(name: str) -> float | None:
            return float(h[name]) if name in h else None

        record = cls(
            id=h["id"],
            tenant=h["tenant"],
            key_id=h["key_id"],
            roles=frozenset(Role(r) for r in h["roles"].split(",") if r),
            kind=JobKind(h["kind"]),
            body=json.loads(h["body"]),
            status=JobStatus(h["status"]),
            webhook_url=h.get("webhook_url"),
            created_at=float(h["created_at"]),
            attempts=int(h.get("attempts", "0")),
            worker=h.get("worker"),
            webhook_status=h.get("webhook_status"),
            webhook_attempts=int(h.get("webhook_attempts", "0")),
            webhook_error=h.get("webhook_error"),
        )
        return replace(record, started_at=number("started_at"), finished_at=number("finished_at"))

    def view(self, result: dict[str, Any] | None) -> dict[str, Any]:
        """``GET /v1/jobs/{id}``: the status, and the result once the job is final."""
        out: dict[str, Any] = {
            "id": self.id,
            "object": "job",
            "kind": self.kind.value,
            "status": self.status.value,
            "created_at": int(self.created_at),
            "started_at": None if self.started_at is None else int(self.started_at),
            "finished_at": None if self.finished_at is None else int(self.finished_at),
            "attempts": self.attempts,
            "result": None,
        }
        if self.status.final and result is not None:
            out["result"] = {"http_status": result["http_status"], "body": result["body"]}
        if self.webhook_url is not None:
            out["webhook"] = {
                "url": self.webhook_url,
                "status": self.webhook_status,
                "attempts": self.webhook_attempts,
                "last_error": self.webhook_error,
            }
        return out

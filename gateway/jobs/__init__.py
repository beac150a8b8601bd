"""Asynchronous jobs: ``POST /v1/jobs`` enqueues, ``genguard worker`` runs the same pipeline.

The task engine is RQ on the gateway's Redis (docs/operations.md, "Asynchronous jobs").
"""

from gateway.jobs.model import JobKind, JobRecord, JobStatus, parse_job_body
from gateway.jobs.store import JobQueue, JobStore
from gateway.jobs.webhook import sign, tenant_secret, verify_signature

__all__ = [
    "JobKind",
    "JobQueue",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "parse_job_body",
    "sign",
    "tenant_secret",
    "verify_signature",
]

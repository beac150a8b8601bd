"""Retention checkpoints: the HMAC that lets a trimmed chain still verify (``audit.retention``)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["CHECKPOINT_ROUTE", "checkpoint_signature", "ensure_key_file"]

CHECKPOINT_ROUTE = "audit.checkpoint"


def checkpoint_signature(
    key: bytes,
    *,
    tenant: str,
    first_kept_prev_hash: str,
    removed_count: int,
    removed_through: str,
    removed_before: str,
) -> str:
    message = "\n".join(
        (
            "genguard-audit-checkpoint-v1",
            tenant,
            first_kept_prev_hash,
            str(removed_count),
            removed_through,
            removed_before,
        )
    )
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def ensure_key_file(path: Path) -> bytes:
    """Development: read (or create once, mode 0600) a random 32-byte checkpoint key."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text().strip())

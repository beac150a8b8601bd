"""A local, fsync'ed JSON-lines spool for records that could not reach Redis.

When Redis is unreachable the sink writes the record (without chain fields) here, so nothing is
lost; ``replay`` later appends the spooled records in order through the normal, chained path and
truncates the file only after every one of them is in Redis.

Several processes may share one spool file: every write and every replay holds an exclusive
``flock`` on it, so a replay never truncates a line written after it started reading. Replay is
idempotent: records whose decision id is already in the trail (a replay interrupted half-way)
are skipped, not duplicated. A line that does not parse (a write torn by a crash) is moved to
``<spool>.rejected`` rather than blocking every later replay or being silently dropped.

File I/O runs in a thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

from pydantic import ValidationError

from audit.record import AuditRecord

__all__ = ["AuditSpool"]

logger = logging.getLogger(__name__)

_READ_HINT = 1 << 20  # bytes of lines read per batch during replay


class AuditSpool:
    """Append records to, and replay them from, one JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rejected_path = self.path.with_name(self.path.name + ".rejected")

    def pending(self) -> bool:
        """Whether the spool holds anything (a cheap stat, fine to call anywhere)."""
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    async def write(self, record: AuditRecord) -> None:
        """Append ``record`` (chain fields dropped) as one line and fsync it."""
        line = record.model_dump_json(exclude={"prev_hash", "hash"}).encode("utf-8") + b"\n"
        await asyncio.to_thread(_append_durably, self.path, line)

    async def replay(self, append: Callable[[AuditRecord], Awaitable[bool]]) -> int:
        """Feed every spooled record, in order, to ``append``; truncate when all went through.

        ``append`` returns False for a record that is already in the trail. Returns how many
        records were appended. If ``append`` raises, the spool is left as it was.
        """
        spool = await asyncio.to_thread(_open_locked, self.path)
        if spool is None:
            return 0
        try:
            appended = 0
            line_number = 0
            while lines := await asyncio.to_thread(spool.readlines, _READ_HINT):
                for line in lines:
                    line_number += 1
                    record = await self._parse(line, line_number)
                    if record is not None and await append(record):
                        appended += 1
            await asyncio.to_thread(_truncate, spool)
            return appended
        finally:
            await asyncio.to_thread(spool.close)  # closing releases the flock

    async def _parse(self, line: bytes, line_number: int) -> AuditRecord | None:
        if not line.strip():
            return None
        try:
            return AuditRecord.model_validate_json(line)
        except ValidationError as exc:
            logger.warning(
                "audit spool %s line %d is not a record (%s); moved to %s",
                self.path,
                line_number,
                exc.errors()[0]["msg"],
                self.rejected_path,
            )
            await asyncio.to_thread(_append_durably, self.rejected_path, line.rstrip(b"\n") + b"\n")
            return None


def _append_durably(path: Path, line: bytes) -> None:
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # make the new directory entry durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _open_locked(path: Path) -> BinaryIO | None:
    try:
        spool = path.open("r+b")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(spool.fileno(), fcntl.LOCK_EX)
    except BaseException:
        spool.close()
        raise
    return spool


def _truncate(spool: BinaryIO) -> None:
    spool.truncate(0)
    spool.flush()
    os.fsync(spool.fileno())

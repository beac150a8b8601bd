"""``genguard hashbank create|add|import|list|remove``: PDQ hash banks from the command line.

The same Redis banks as ``/admin/hashbanks`` (``classifiers.image.hash_banks``); every change is
audited under the same route names, with ``cli:<user>`` as the actor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image
from redis.asyncio import Redis

from audit.sink import RedisStreamAuditSink
from classifiers.image.hash_banks import HashBankError, RedisHashBanks
from classifiers.image.pdq_bank import DEFAULT_THRESHOLD, MIN_QUALITY, pdq_hash
from classifiers.taxonomy import Category, parse_category
from gateway.recording import admin_record

__all__ = ["add_hashbank_commands", "run_hashbank_command"]

TENANT = "default"


def add_hashbank_commands(hashbank: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    create = hashbank.add_parser("create", help="create a bank")
    create.add_argument("name")
    create.add_argument("--category", default=Category.HASH_MATCH.value, type=parse_category)
    create.add_argument("--threshold", type=int, default=DEFAULT_THRESHOLD, help="Hamming bits")
    add = hashbank.add_parser("add", help="hash images and add them to a bank")
    add.add_argument("name")
    add.add_argument("images", nargs="+", type=Path)
    imported = hashbank.add_parser("import", help="add hex PDQ hashes, one per line")
    imported.add_argument("name")
    imported.add_argument("file", type=Path, help="a text file; '-' reads standard input")
    listed = hashbank.add_parser("list", help="the banks, or one bank's hashes")
    listed.add_argument("name", nargs="?")
    remove = hashbank.add_parser("remove", help="remove one hash, or (without it) the bank")
    remove.add_argument("name")
    remove.add_argument("hash", nargs="?")


async def run_hashbank_command(redis: Redis, args: argparse.Namespace, actor: str) -> int:
    banks = RedisHashBanks(redis)
    sink = RedisStreamAuditSink(redis)
    command: str = args.hashbank_command
    try:
        if command == "list":
            return await _list(banks, args.name)
        if command == "create":
            bank = await banks.create(
                args.name, category=args.category, threshold=args.threshold, actor=actor
            )
            await sink.append(admin_record("admin.hashbanks.create", TENANT, actor, bank.to_json()))
            print(f"created hash bank {bank.name!r} ({bank.category}, threshold {bank.threshold})")
            return 0
        if command in ("add", "import"):
            hashes = _hash_images(args.images) if command == "add" else _read_hashes(args.file)
            added = await banks.add(args.name, hashes, actor=actor)
            detail = {"bank": args.name, "hashes": added}
            await sink.append(admin_record("admin.hashbanks.add", TENANT, actor, detail))
            print(f"added {len(added)} hash(es) to {args.name!r}")
            return 0
        if args.hash is not None:
            if not await banks.remove_hash(args.name, args.hash):
                print(f"genguard: bank {args.name!r} holds no hash {args.hash}", file=sys.stderr)
                return 1
            detail = {"bank": args.name, "hash": args.hash.lower()}
            await sink.append(admin_record("admin.hashbanks.remove_hash", TENANT, actor, detail))
            print(f"removed {args.hash.lower()} from {args.name!r}")
            return 0
        if not await banks.delete(args.name):
            raise KeyError(f"no hash bank named {args.name!r}")
        await sink.append(
            admin_record("admin.hashbanks.delete", TENANT, actor, {"bank": args.name})
        )
        print(f"deleted hash bank {args.name!r}")
        return 0
    except KeyError as exc:
        print(f"genguard: {exc.args[0]}", file=sys.stderr)
        return 1
    except (HashBankError, OSError) as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 2


async def _list(banks: RedisHashBanks, name: str | None) -> int:
    if name is None:
        for bank in await banks.list():
            print(
                f"{bank.name}  category={bank.category}  threshold={bank.threshold}  "
                f"hashes={bank.size}  created={bank.created_at} by {bank.created_by}"
            )
        return 0
    for value, meta in (await banks.hashes(name)).items():
        print(f"{value}  added={meta.get('added_at')} by {meta.get('added_by')}")
    return 0


def _hash_images(paths: list[Path]) -> dict[str, dict[str, object]]:
    hashes: dict[str, dict[str, object]] = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                pdq = pdq_hash(image)
        except (OSError, Image.DecompressionBombError) as exc:
            raise HashBankError(f"{path}: not a readable image ({exc})") from None
        if pdq.quality < MIN_QUALITY:
            raise HashBankError(f"{path}: too flat to hash reliably (PDQ quality {pdq.quality})")
        hashes[pdq.hex] = {"quality": pdq.quality, "source": path.name}
    return hashes


def _read_hashes(path: Path) -> dict[str, dict[str, object]]:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return {line: {"source": f"import:{path.name or 'stdin'}"} for line in lines if line}

"""``genguard hashbank``: create, add (an image), import (hex lines), list, remove, against a
real Redis; each change lands in the audit stream."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis
from PIL import Image

from classifiers.image.pdq_bank import pdq_hash
from gateway.cli import main
from generators.procedural import render_procedural_png
from tests.e2e.audit_helpers import stream_records


def test_hashbank_commands(
    clean_redis: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GENGUARD_REDIS_URL", clean_redis)
    image = tmp_path / "known.png"
    image.write_bytes(render_procedural_png("a lighthouse at dawn", 3, (256, 256)))
    value = pdq_hash(Image.open(io.BytesIO(image.read_bytes()))).hex
    other = "f" * 64
    hashes = tmp_path / "hashes.txt"
    hashes.write_text(f"# exported\n{other}\n", encoding="utf-8")
    base = ["--data-dir", str(tmp_path)]

    assert main([*base, "hashbank", "create", "cli-bank", "--threshold", "20"]) == 0
    assert main([*base, "hashbank", "create", "cli-bank"]) == 2
    assert main([*base, "hashbank", "add", "cli-bank", str(image)]) == 0
    assert main([*base, "hashbank", "import", "cli-bank", str(hashes)]) == 0
    capsys.readouterr()
    assert main([*base, "hashbank", "list"]) == 0
    assert "cli-bank  category=hash-match  threshold=20  hashes=2" in capsys.readouterr().out
    assert main([*base, "hashbank", "list", "cli-bank"]) == 0
    listed = capsys.readouterr().out
    assert value in listed and other in listed
    assert main([*base, "hashbank", "remove", "cli-bank", other]) == 0
    assert main([*base, "hashbank", "remove", "cli-bank", other]) == 1
    assert main([*base, "hashbank", "remove", "cli-bank"]) == 0
    assert main([*base, "hashbank", "list", "cli-bank"]) == 1

    client = redis.Redis.from_url(clean_redis)
    routes = [record["route"] for record in stream_records(client, "default")]
    client.close()
    assert [r for r in routes if r.startswith("admin.hashbanks.")] == [
        "admin.hashbanks.create",
        "admin.hashbanks.add",
        "admin.hashbanks.add",
        "admin.hashbanks.remove_hash",
        "admin.hashbanks.delete",
    ]

"""``genguard voices``: enrol (WAV or FLAC), list, remove against a real Redis, with the real
Resemblyzer encoder; what the CLI enrols is what the ``protected_voice`` classifier then matches,
and every change lands in the audit stream."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soundfile

from classifiers.audio.voice_bank import RedisVoiceBank
from classifiers.audio.voices import ProtectedVoiceClassifier, VoiceIndex
from classifiers.base import AudioClip
from classifiers.taxonomy import Category
from gateway.cli import main
from gateway.voice_commands import read_clip
from generators.espeak_engine import EspeakEngine
from generators.espeak_tts import VOICES
from tests.e2e.audit_helpers import stream_records
from tests.e2e.conftest import async_redis, sync_redis

ENROLMENT = "This is my own voice, and nobody else may use it to say anything at all."
LATER = "Completely different words, spoken much later, in exactly the same voice."


def speak(text: str, voice: str) -> AudioClip:
    engine = EspeakEngine.shared()
    samples = engine.synthesize(text, voice=VOICES[voice], rate=175)
    return AudioClip(samples.astype(np.float32) / 32768, engine.sample_rate)


def bank_index(url: str) -> VoiceIndex:
    async def sync() -> VoiceIndex:
        client = async_redis(url)
        try:
            index = VoiceIndex()
            await RedisVoiceBank(client).sync(index)
            return index
        finally:
            await client.aclose()

    return asyncio.run(sync())


def test_voices_commands(
    clean_redis: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GENGUARD_REDIS_URL", clean_redis)
    base = ["--data-dir", str(tmp_path)]
    onyx = speak(ENROLMENT, "onyx")
    flac = tmp_path / "onyx.flac"
    soundfile.write(flac, onyx.samples, onyx.sample_rate, subtype="PCM_16")
    short = tmp_path / "short.wav"
    soundfile.write(short, onyx.samples[: onyx.sample_rate // 4], onyx.sample_rate)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF, but not really a wave file")

    assert main([*base, "voices", "enrol", "onyx-speaker", str(flac)]) == 0
    assert "enrolled protected voice 'onyx-speaker'" in capsys.readouterr().out
    assert main([*base, "voices", "enrol", "../escape", str(flac)]) == 2
    assert "invalid voice name '../escape'" in capsys.readouterr().err
    assert main([*base, "voices", "enrol", "short", str(short)]) == 2
    assert "too little speech" in capsys.readouterr().err
    assert main([*base, "voices", "enrol", "junk", str(junk)]) == 2
    assert "not a readable audio file" in capsys.readouterr().err
    assert main([*base, "voices", "list"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"onyx-speaker  speech={onyx.duration_s:.1f}s  enrolled=")
    assert " by cli:" in line

    # the stored embedding is the encoder's embedding of the file, and it is what matches later
    index = bank_index(clean_redis)
    assert index.snapshot.names == ("onyx-speaker",)
    classifier = ProtectedVoiceClassifier(index)
    [same, other] = classifier.classify([speak(LATER, "onyx"), speak(LATER, "alloy")])
    [again] = classifier.classify([read_clip(flac)])
    assert again.get(Category.PROTECTED_PERSON) == pytest.approx(1.0, abs=1e-4)
    assert same.get(Category.PROTECTED_PERSON) >= 0.75  # the documented default threshold
    assert other.get(Category.PROTECTED_PERSON) < same.get(Category.PROTECTED_PERSON)
    assert "voice 'onyx-speaker': cosine similarity" in same.evidence[0].detail

    assert main([*base, "voices", "remove", "onyx-speaker"]) == 0
    assert main([*base, "voices", "remove", "onyx-speaker"]) == 1
    assert "no protected voice named 'onyx-speaker'" in capsys.readouterr().err
    assert main([*base, "voices", "list"]) == 0
    assert capsys.readouterr().out == ""
    assert bank_index(clean_redis).snapshot.names == ()

    client = sync_redis(clean_redis)
    records = [r for r in stream_records(client, "default") if r["route"].startswith("admin.v")]
    client.close()
    assert [r["route"] for r in records] == ["admin.voices.enrol", "admin.voices.remove"]
    enrol_params = records[0]["input"]["params"]
    assert enrol_params["voice"] == "onyx-speaker"
    assert enrol_params["actor"].startswith("cli:")
    assert enrol_params["speech_s"] == pytest.approx(onyx.duration_s, abs=0.01)

"""``genguard voices enrol|list|remove``: the protected-voice bank from the command line.

The same Redis bank as ``/admin/voices`` (``classifiers.audio.voice_bank``); every change is
audited under the same route names (``admin.voices.enrol`` / ``.remove``), with ``cli:<user>`` as
the actor. Enrolment embeds the clip here, with the same Resemblyzer encoder the gateway uses, and
stores the embedding only (never the audio). Any file soundfile reads is accepted (WAV in any
PCM or float format, FLAC, OGG, MP3), not only the 16-bit WAV the admin API takes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from redis.asyncio import Redis

from audit.sink import RedisStreamAuditSink
from classifiers.audio.voice_bank import InvalidVoiceName, RedisVoiceBank, check_name
from classifiers.audio.voices import MIN_SPEECH_S, shared_voice_encoder
from classifiers.base import AudioClip, ClassifierError
from gateway.recording import admin_record

__all__ = ["add_voice_commands", "run_voice_command"]

TENANT = "default"


class VoiceFileError(ValueError):
    """The clip to enrol could not be read or holds too little speech."""


def add_voice_commands(voices: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    enrol = voices.add_parser("enrol", help="enrol (or replace) a protected voice from a clip")
    enrol.add_argument("name", help="1-80 letters, digits, '_', '.', '-'")
    enrol.add_argument("audio", type=Path, help="a few seconds of the speaker (WAV, FLAC, ...)")
    voices.add_parser("list", help="the enrolled voices (never their embeddings)")
    remove = voices.add_parser("remove", help="remove an enrolled voice")
    remove.add_argument("name")


async def run_voice_command(redis: Redis, args: argparse.Namespace, actor: str) -> int:
    bank = RedisVoiceBank(redis)
    command: str = args.voices_command
    if command == "list":
        for voice in await bank.list():
            print(
                f"{voice.name}  speech={voice.speech_s:.1f}s  "
                f"enrolled={voice.enrolled_at} by {voice.enrolled_by}"
            )
        return 0
    sink = RedisStreamAuditSink(redis)
    if command == "remove":
        if not await bank.remove(args.name):
            print(f"genguard: no protected voice named {args.name!r}", file=sys.stderr)
            return 1
        await sink.append(admin_record("admin.voices.remove", TENANT, actor, {"voice": args.name}))
        print(f"removed protected voice {args.name!r}")
        return 0
    try:
        check_name(args.name)
        clip = read_clip(args.audio)
        embedding = _embed(clip, args.audio)
    except (InvalidVoiceName, VoiceFileError, ClassifierError) as exc:
        print(f"genguard: {exc}", file=sys.stderr)
        return 2
    record = await bank.enrol(args.name, embedding, actor=actor, speech_s=clip.duration_s)
    detail = {"voice": args.name, "speech_s": round(clip.duration_s, 2)}
    await sink.append(admin_record("admin.voices.enrol", TENANT, actor, detail))
    print(f"enrolled protected voice {record.name!r} ({clip.duration_s:.1f}s of audio)")
    return 0


def read_clip(path: Path) -> AudioClip:
    """The file's audio as a mono float clip (channels averaged)."""
    import soundfile

    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise VoiceFileError(f"{path}: not a readable audio file ({exc})") from None
    if data.shape[0] == 0:
        raise VoiceFileError(f"{path}: the file holds no audio")
    return AudioClip(np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate))


def _embed(clip: AudioClip, path: Path) -> NDArray[np.float32]:
    embedding = shared_voice_encoder().embed(clip)  # loads Resemblyzer (torch) on first use
    if embedding is None:
        raise VoiceFileError(
            f"{path}: too little speech to enrol a voice ({clip.duration_s:.1f}s; under "
            f"{MIN_SPEECH_S}s of speech after silence trimming); use several seconds of the "
            "speaker talking"
        )
    return embedding

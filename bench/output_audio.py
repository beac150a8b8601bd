"""Audio output classifiers: WER of each recogniser on LJSpeech, and protected-voice separation.

    .venv/bin/python bench/output_audio.py [--eval ../shared/eval/media/audio] [--whisper DIR]

WER: word error rate of each recogniser on the 8 LJSpeech WAV clips (and JFK), against
``transcripts.tsv`` (lower-cased, punctuation removed), and on espeak speech of two sentences in
the 11 voices. pocketsphinx always; with ``--whisper DIR`` also a local Whisper model (a
CTranslate2 conversion for faster-whisper, detected by its ``model.bin``, or a transformers
checkpoint; ``--whisper-runtime`` forces one). Voices: Resemblyzer cosine similarity of
same-speaker pairs (LJSpeech clip vs LJSpeech clip) and different-speaker pairs (LJSpeech vs
JFK, LJSpeech vs espeak voices, espeak voice vs another espeak voice).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from classifiers.audio.recognizer import PocketSphinxRecognizer, SpeechRecognizer
from classifiers.audio.recognizers import build_recognizer
from classifiers.audio.voices import shared_voice_encoder
from classifiers.base import AudioClip
from generators.espeak_engine import EspeakEngine
from generators.espeak_tts import VOICES

SENTENCES = [
    "Printing differs from most if not from all the arts and crafts represented in the Exhibition.",
    "The invention of movable metal letters may justly be considered the invention of printing.",
]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference: list[str], hypothesis: list[str]) -> float:
    d = np.arange(len(hypothesis) + 1)
    for i, r in enumerate(reference, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hypothesis, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return float(d[-1]) / max(len(reference), 1)


def load(path: Path) -> AudioClip:
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    return AudioClip(data.mean(axis=1).astype(np.float32), int(rate))


def whisper_recognizer(path: Path, runtime: str) -> SpeechRecognizer:
    if runtime == "auto":
        runtime = "faster_whisper" if (path / "model.bin").is_file() else "transformers_whisper"
    return build_recognizer(runtime, path, threads=1)


def espeak_clips() -> dict[str, list[AudioClip]]:
    engine = EspeakEngine()
    return {
        openai_voice: [
            AudioClip(
                engine.synthesize(s, voice=espeak_voice, rate=175).astype(np.float32) / 32768,
                engine.sample_rate,
            )
            for s in SENTENCES
        ]
        for openai_voice, espeak_voice in VOICES.items()
    }


def measure_wer(
    recognizer: SpeechRecognizer,
    clips: dict[str, tuple[AudioClip, str]],
    espeak: dict[str, list[AudioClip]],
) -> None:
    print(f"## WER ({recognizer.name})")
    errors, total, seconds, audio_s = 0.0, 0, 0.0, 0.0
    for name, (clip, reference) in clips.items():
        started = time.perf_counter()
        hypothesis = recognizer.transcribe(clip)
        seconds += time.perf_counter() - started
        audio_s += clip.duration_s
        ref = words(reference)
        rate = wer(ref, words(hypothesis))
        if name.startswith("ljspeech"):
            errors, total = errors + rate * len(ref), total + len(ref)
        print(f"{name}\tWER {rate:.2f}\t{hypothesis!r}")
    print(
        f"LJSpeech corpus WER {errors / total:.3f} over {total} words; "
        f"decode {seconds:.2f}s for {audio_s:.1f}s of LJSpeech + JFK audio"
    )
    asr_errors = []
    for items in espeak.values():
        for item, sentence in zip(items, SENTENCES, strict=True):
            asr_errors.append(wer(words(sentence), words(recognizer.transcribe(item))))
    print(
        f"espeak voices ({len(asr_errors)} clips): {recognizer.name} WER mean "
        f"{statistics.mean(asr_errors):.2f}, min {min(asr_errors):.2f}, max {max(asr_errors):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--eval", type=Path, default=Path("../shared/eval/media/audio"))
    parser.add_argument("--whisper", type=Path, help="a local Whisper model directory")
    parser.add_argument(
        "--whisper-runtime",
        choices=("auto", "faster_whisper", "transformers_whisper"),
        default="auto",
    )
    parser.add_argument("--skip-voices", action="store_true", help="WER only")
    args = parser.parse_args()
    rows = [
        line.split("\t")
        for line in (args.eval / "transcripts.tsv").read_text().splitlines()[1:]
        if line.strip()
    ]
    clips = {r[0]: (load(args.eval / r[0]), r[4]) for r in rows if not r[0].endswith(".flac")}
    clips["whisper_jfk/jfk.flac"] = (load(args.eval / "whisper_jfk/jfk.flac"), rows[-1][4])
    espeak = espeak_clips()
    recognizers: list[SpeechRecognizer] = [PocketSphinxRecognizer()]
    if args.whisper is not None:
        recognizers.append(whisper_recognizer(args.whisper, args.whisper_runtime))
    for recognizer in recognizers:
        measure_wer(recognizer, clips, espeak)
    if not args.skip_voices:
        voice_separation(clips, espeak)


def voice_separation(
    clips: dict[str, tuple[AudioClip, str]], espeak: dict[str, list[AudioClip]]
) -> None:
    encoder = shared_voice_encoder()
    lj = [encoder.embed(c) for n, (c, _) in clips.items() if n.startswith("ljspeech")]
    lj_e = [e for e in lj if e is not None]
    jfk = encoder.embed(clips["whisper_jfk/jfk.flac"][0])
    es = {v: [encoder.embed(c) for c in items] for v, items in espeak.items()}

    def sims(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
        return [float(a @ b) for a, b in pairs]

    same = sims(list(itertools.combinations(lj_e, 2)))
    same_espeak = sims(
        [(a, b) for items in es.values() for a, b in itertools.combinations(items, 2)]
    )
    diff_lj_jfk = sims([(a, jfk) for a in lj_e])
    diff_lj_es = sims([(a, b) for a in lj_e for items in es.values() for b in items])
    diff_es = sims(
        [
            (a, b)
            for (v1, i1), (v2, i2) in itertools.combinations(es.items(), 2)
            for a in i1
            for b in i2
        ]
    )
    print("## Resemblyzer cosine similarity")
    for label, values in [
        ("same speaker: LJSpeech x LJSpeech", same),
        ("same espeak voice, different sentence", same_espeak),
        ("different: LJSpeech x JFK", diff_lj_jfk),
        ("different: LJSpeech x espeak voices", diff_lj_es),
        ("different: espeak voice x other espeak voice", diff_es),
    ]:
        print(
            f"{label}\tn={len(values)}\tmin {min(values):.3f}\tmedian "
            f"{statistics.median(values):.3f}\tmax {max(values):.3f}"
        )


if __name__ == "__main__":
    main()

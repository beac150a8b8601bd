"""EspeakSpeechGenerator: real speech from espeak-ng, OpenAI voices and formats, thread safety."""

from __future__ import annotations

import asyncio
import io
import wave
from typing import Any

import numpy as np
import pytest

from generators import (
    VOICES,
    Artifact,
    EspeakSpeechGenerator,
    GenerationRequest,
    Modality,
    UnsupportedRequest,
)

MODEL = "genguard-espeak-tts"
SENTENCE = "The gateway checks every request before anything is generated."


def speech_request(**overrides: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "modality": Modality.AUDIO,
        "prompt": SENTENCE,
        "model": MODEL,
        "voice": "alloy",
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


def read_wav(data: bytes) -> tuple[wave._wave_params, np.ndarray[Any, np.dtype[np.int16]]]:
    with wave.open(io.BytesIO(data), "rb") as reader:
        params = reader.getparams()
        frames = reader.readframes(params.nframes)
    return params, np.frombuffer(frames, dtype="<i2")


def rms(samples: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


@pytest.fixture(scope="module")
def generator() -> EspeakSpeechGenerator:
    return EspeakSpeechGenerator()


async def speak(generator: EspeakSpeechGenerator, **overrides: Any) -> Artifact:
    [artifact] = await generator.generate(speech_request(**overrides))
    return artifact


async def test_wav_is_valid_mono_16_bit_at_espeak_rate(generator: EspeakSpeechGenerator) -> None:
    artifact = await speak(generator)
    params, samples = read_wav(artifact.data)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 22050)
    assert generator.sample_rate == 22050
    assert artifact.mime_type == "audio/wav"
    assert artifact.modality is Modality.AUDIO
    assert artifact.generator == "espeak"
    assert artifact.model == MODEL
    assert artifact.duration_s == pytest.approx(params.nframes / 22050)
    assert artifact.duration_s is not None and 2.0 < artifact.duration_s < 8.0  # ~10 words
    assert rms(samples) > 500  # speech, not silence
    # Mostly voiced: a good share of 20 ms windows carry energy.
    windows = samples[: samples.size // 441 * 441].reshape(-1, 441).astype(np.float64)
    assert np.mean(np.sqrt((windows**2).mean(axis=1)) > 300) > 0.4


async def test_duration_grows_with_text_length(generator: EspeakSpeechGenerator) -> None:
    short = await speak(generator, prompt="Hello.")
    long = await speak(generator, prompt=" ".join([SENTENCE] * 3))
    assert short.duration_s is not None and long.duration_s is not None
    assert long.duration_s > 2.5 * short.duration_s
    assert long.duration_s > 6


async def test_speed_changes_duration(generator: EspeakSpeechGenerator) -> None:
    normal = await speak(generator)
    fast = await speak(generator, speed=2.0)
    fastest = await speak(generator, speed=4.0)
    slow = await speak(generator, speed=0.5)
    durations = [a.duration_s or 0.0 for a in (slow, normal, fast, fastest)]
    assert durations == sorted(durations, reverse=True)
    assert durations[2] == pytest.approx(durations[1] / 2, rel=0.25)


async def test_every_openai_voice_sounds_different(generator: EspeakSpeechGenerator) -> None:
    assert set(VOICES) == {
        "alloy", "ash", "ballad", "coral", "echo", "fable",
        "onyx", "nova", "sage", "shimmer", "verse",
    }  # fmt: skip
    assert len(set(VOICES.values())) == len(VOICES)
    clips = {voice: (await speak(generator, voice=voice)).data for voice in VOICES}
    assert len(set(clips.values())) == len(VOICES)
    # Different voices differ in pitch, not only in bytes: female variants sit higher.
    spectra = {
        voice: _dominant_pitch_hz(read_wav(clips[voice])[1]) for voice in ("onyx", "shimmer")
    }
    assert spectra["shimmer"] > spectra["onyx"] * 1.2


def _dominant_pitch_hz(samples: np.ndarray[Any, np.dtype[np.int16]]) -> float:
    """Median autocorrelation pitch over voiced 40 ms frames."""
    frame = 882
    pitches = []
    for start in range(0, samples.size - frame, frame):
        x = samples[start : start + frame].astype(np.float64)
        if np.sqrt(np.mean(x**2)) < 1000:
            continue
        x -= x.mean()
        corr = np.correlate(x, x, mode="full")[frame - 1 :]
        low, high = 22050 // 400, 22050 // 60  # 60-400 Hz
        lag = low + int(np.argmax(corr[low:high]))
        pitches.append(22050 / lag)
    return float(np.median(pitches))


async def test_pcm_is_raw_24khz_samples(generator: EspeakSpeechGenerator) -> None:
    wav = await speak(generator)
    pcm = await speak(generator, audio_format="pcm")
    assert pcm.mime_type == "audio/pcm"
    assert not pcm.data.startswith(b"RIFF")
    assert len(pcm.data) % 2 == 0
    samples = np.frombuffer(pcm.data, dtype="<i2")
    assert wav.duration_s is not None
    assert samples.size == pytest.approx(wav.duration_s * 24000, abs=2)
    assert pcm.duration_s == pytest.approx(wav.duration_s)
    assert rms(samples) == pytest.approx(rms(read_wav(wav.data)[1]), rel=0.05)


async def test_text_that_looks_like_markup_is_spoken_as_text(
    generator: EspeakSpeechGenerator,
) -> None:
    artifact = await speak(generator, prompt="<speak>1 < 2 & 3 > 2</speak>\x00 done")
    assert artifact.duration_s is not None and artifact.duration_s > 1


async def test_unknown_voice_lists_the_valid_ones(generator: EspeakSpeechGenerator) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await speak(generator, voice="en-us+f3")
    assert caught.value.param == "voice"
    assert all(voice in str(caught.value) for voice in VOICES)


@pytest.mark.parametrize("audio_format", ["mp3", "opus", "aac", "flac", "ogg"])
async def test_unsupported_format_names_the_supported_ones(
    generator: EspeakSpeechGenerator, audio_format: str
) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await speak(generator, audio_format=audio_format)
    assert caught.value.param == "response_format"
    assert audio_format in str(caught.value)
    assert "wav" in str(caught.value) and "pcm" in str(caught.value)


async def test_input_length_limit(generator: EspeakSpeechGenerator) -> None:
    longest = ("word " * 820)[:4096]
    artifact = await speak(generator, prompt=longest)
    assert artifact.duration_s is not None and artifact.duration_s > 60
    with pytest.raises(UnsupportedRequest) as caught:
        await speak(generator, prompt=longest + "x")
    assert caught.value.param == "input"
    assert "4096" in str(caught.value)


@pytest.mark.parametrize(
    ("overrides", "param"),
    [
        ({"prompt": "   "}, "input"),
        ({"speed": 0.2}, "speed"),
        ({"speed": 4.5}, "speed"),
        ({"n": 2}, "n"),
        ({"model": "tts-1"}, "model"),
        ({"modality": Modality.IMAGE}, "model"),
    ],
)
async def test_other_bad_requests(
    generator: EspeakSpeechGenerator, overrides: dict[str, Any], param: str
) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        await speak(generator, **overrides)
    assert caught.value.param == param


def assert_same_speech(got: bytes, expected: bytes) -> None:
    """espeak-ng is not bit-reproducible (a few samples of jitter between runs), so compare the
    loudness envelope in 50 ms windows: the same utterance correlates > 0.98 on a quiet machine
    (0.94 seen under heavy load), another ~0.3. Two takes of one utterance also differ in length
    by up to 0.98 % (measured over 1,050 takes of the concurrency test's sentences; the old 1 %
    bound failed a full local run once), so lengths may differ by 3 %."""
    got_samples, expected_samples = read_wav(got)[1], read_wav(expected)[1]
    assert abs(got_samples.size - expected_samples.size) < 0.03 * expected_samples.size
    window = 1102
    n = min(got_samples.size, expected_samples.size) // window * window
    envelopes = [
        np.sqrt((s[:n].reshape(-1, window).astype(np.float64) ** 2).mean(axis=1))
        for s in (got_samples, expected_samples)
    ]
    assert np.corrcoef(*envelopes)[0, 1] > 0.9


async def test_speech_comparison_tells_utterances_apart(generator: EspeakSpeechGenerator) -> None:
    """The comparison below is strict enough to catch a wrong or mixed-up utterance."""
    text = "Request number one asks for alloy, twice over."
    one, again = await speak(generator, prompt=text), await speak(generator, prompt=text)
    other = await speak(generator, prompt="Seven silly swans swam south in the summer sun.")
    assert_same_speech(again.data, one.data)
    with pytest.raises(AssertionError):
        assert_same_speech(other.data, one.data)


async def test_concurrent_syntheses_match_sequential_ones() -> None:
    """espeak-ng is process-global: concurrent tasks on two generators (so two queues, and the
    engine lock alone between them) must each get the utterance they asked for, unmixed."""
    jobs = [
        {"prompt": f"Request number {i} asks for {voice}. " * (1 + i % 3), "voice": voice}
        for i, voice in enumerate(["alloy", "onyx", "nova", "fable", "verse", "sage", "echo"])
    ]
    first, second = EspeakSpeechGenerator(), EspeakSpeechGenerator()
    sequential = [(await speak(first, **job)).data for job in jobs]
    for _ in range(3):
        results = await asyncio.gather(
            *(speak(first if i % 2 else second, **job) for i, job in enumerate(jobs))
        )
        for artifact, expected in zip(results, sequential, strict=True):
            assert_same_speech(artifact.data, expected)


async def test_concurrent_syntheses_from_threads_match() -> None:
    """The engine lock holds even when callers bypass the generator's queue (raw threads)."""
    generator = EspeakSpeechGenerator()
    texts = [f"Thread {i} says " + "hello to the world. " * (i + 1) for i in range(6)]
    expected = [generator._render(t, VOICES["coral"], 175, "wav")[0] for t in texts]
    results = await asyncio.gather(
        *(asyncio.to_thread(generator._render, t, VOICES["coral"], 175, "wav") for t in texts)
    )
    for (data, _), reference in zip(results, expected, strict=True):
        assert_same_speech(data, reference)

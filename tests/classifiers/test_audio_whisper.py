"""Whisper recognisers from a local directory, on a tiny randomly initialised checkpoint built
here (tests/classifiers/tiny_whisper_model.py): loading, decoding, windowing, errors, and how the
settings pick a recogniser for ``transcript``. The transcripts are noise; the code path is real.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from classifiers.audio.recognizer import PocketSphinxRecognizer
from classifiers.audio.recognizers import RECOGNIZERS, build_recognizer
from classifiers.audio.whisper import (
    WINDOW_SAMPLES,
    FasterWhisperRecognizer,
    TransformersWhisperRecognizer,
)
from classifiers.base import AudioClip, ClassifierUnavailable
from gateway.backends import ClassifierBackends
from gateway.settings import ClassifierSettings, Settings
from policies.loader import parse_policy
from tests.classifiers.tiny_whisper_model import build_tiny_whisper, convert_for_faster_whisper

needs_faster_whisper = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None,
    reason="faster-whisper not installed (pip install 'genguard[asr]')",
)
TRANSCRIPT_POLICY = """
id: spoken
prompt: {classifiers: [term_list], terms: {violence: [gore]}}
output:
  audio:
    classifiers: [transcript]
    rules: [{id: spoken-violence, category: violence, threshold: 0.5, action: block}]
"""


def noise(seconds: float, rate: int = 16_000, seed: int = 0) -> AudioClip:
    samples = np.random.default_rng(seed).standard_normal(int(seconds * rate)) * 0.1
    return AudioClip(samples.astype(np.float32), rate)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny")


@pytest.fixture(scope="module")
def multilingual_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("whisper") / "tiny", multilingual=True)


@pytest.fixture(scope="module")
def converted(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("faster_whisper") is None:
        pytest.skip("faster-whisper not installed")
    return convert_for_faster_whisper(checkpoint, tmp_path_factory.mktemp("ct2") / "tiny")


@pytest.fixture(scope="module")
def transformers_whisper(checkpoint: Path) -> TransformersWhisperRecognizer:
    return TransformersWhisperRecognizer(checkpoint)


def reference_transcript(checkpoint: Path, windows: list[np.ndarray]) -> list[str]:
    """The same checkpoint run directly with transformers, window by window."""
    import torch
    from transformers import AutoTokenizer, WhisperFeatureExtractor, WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(checkpoint).eval()
    features = WhisperFeatureExtractor.from_pretrained(checkpoint)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    first_timestamp = model.generation_config.no_timestamps_token_id + 1
    texts = []
    for window in windows:
        inputs = features(window, sampling_rate=16_000, return_tensors="pt")
        suppress = list(range(first_timestamp, model.config.vocab_size))
        with torch.inference_mode():
            tokens = model.generate(
                inputs.input_features, suppress_tokens=suppress, return_timestamps=False
            )
        assert int(tokens.max()) < first_timestamp  # plain text: no timestamp tokens
        texts.append(tokenizer.decode(tokens[0], skip_special_tokens=True).strip())
    return texts


def test_transformers_whisper_transcribes_like_the_model_run_directly(
    transformers_whisper: TransformersWhisperRecognizer, checkpoint: Path
) -> None:
    clip = noise(3.0)
    text = transformers_whisper.transcribe(clip)
    assert text and text == transformers_whisper.transcribe(clip)  # deterministic
    assert [text] == [t for t in reference_transcript(checkpoint, [clip.samples]) if t]


def test_transformers_whisper_decodes_a_long_clip_as_30_second_windows(
    transformers_whisper: TransformersWhisperRecognizer, checkpoint: Path
) -> None:
    clip = noise(32.0, rate=22_050, seed=1)  # resampled to 16 kHz: two windows
    text = transformers_whisper.transcribe(clip)
    from classifiers.audio.recognizer import to_16k

    audio = to_16k(clip)
    windows = [audio[:WINDOW_SAMPLES], audio[WINDOW_SAMPLES:]]
    assert text == " ".join(t for t in reference_transcript(checkpoint, windows) if t)
    assert transformers_whisper.transcribe(AudioClip(np.zeros(0, np.float32), 16_000)) == ""


def test_a_multilingual_checkpoint_is_told_the_language(multilingual_checkpoint: Path) -> None:
    recognizer = TransformersWhisperRecognizer(multilingual_checkpoint)
    assert recognizer._multilingual  # language="en", task="transcribe" go to generate()
    assert isinstance(recognizer.transcribe(noise(2.0)), str)


@needs_faster_whisper
def test_faster_whisper_loads_the_converted_model_and_transcribes(converted: Path) -> None:
    recognizer = FasterWhisperRecognizer(converted, threads=1)
    clip = noise(3.0, rate=22_050)
    text = recognizer.transcribe(clip)
    assert isinstance(text, str) and text == recognizer.transcribe(clip)
    assert text == text.strip()
    assert recognizer.transcribe(AudioClip(np.zeros(0, np.float32), 16_000)) == ""


@needs_faster_whisper
def test_faster_whisper_refuses_a_directory_without_its_tokenizer(
    converted: Path, tmp_path: Path
) -> None:
    # without tokenizer.json faster-whisper would fetch one from the hub: refused up front
    incomplete = tmp_path / "no-tokenizer"
    shutil.copytree(converted, incomplete)
    (incomplete / "tokenizer.json").unlink()
    with pytest.raises(ClassifierUnavailable, match=r"lacks tokenizer\.json"):
        FasterWhisperRecognizer(incomplete)


def test_unusable_model_directories_are_unavailable(tmp_path: Path, checkpoint: Path) -> None:
    with pytest.raises(ClassifierUnavailable, match="no model directory"):
        TransformersWhisperRecognizer(tmp_path / "missing")
    with pytest.raises(ClassifierUnavailable, match=r"lacks model\.bin"):
        FasterWhisperRecognizer(checkpoint)  # a transformers checkpoint, not a conversion
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not weights")
    with pytest.raises(ClassifierUnavailable, match="cannot load the model"):
        TransformersWhisperRecognizer(broken)


def test_build_recognizer_by_name(tmp_path: Path, checkpoint: Path) -> None:
    assert list(RECOGNIZERS) == ["pocketsphinx", "faster_whisper", "transformers_whisper"]
    assert isinstance(build_recognizer("pocketsphinx"), PocketSphinxRecognizer)
    with pytest.raises(ClassifierUnavailable, match="GENGUARD_CLASSIFIERS__RECOGNIZER_PATH"):
        build_recognizer("faster_whisper")
    with pytest.raises(ClassifierUnavailable, match="uses the model in its wheel"):
        build_recognizer("pocketsphinx", tmp_path)
    with pytest.raises(ClassifierUnavailable, match="unknown speech recogniser 'vosk'"):
        build_recognizer("vosk", tmp_path)
    assert build_recognizer("transformers_whisper", checkpoint).name == "transformers_whisper"


def test_settings_pick_the_recogniser_and_the_policy_decides_if_it_is_needed(
    checkpoint: Path,
) -> None:
    spoken = parse_policy(TRANSCRIPT_POLICY)
    silent = parse_policy(TRANSCRIPT_POLICY.replace("[transcript]", "[]"))
    no_weights = ClassifierBackends(
        Settings(classifiers=ClassifierSettings(recognizer="transformers_whisper"))
    )
    no_weights.prepare(silent)  # the policy does not transcribe: nothing to load
    with pytest.raises(ClassifierUnavailable, match="RECOGNIZER_PATH"):
        no_weights.prepare(spoken)  # at start-up (or policy load), never at request time
    local = ClassifierBackends(
        Settings(
            classifiers=ClassifierSettings(
                recognizer="transformers_whisper", recognizer_path=checkpoint
            )
        )
    )
    local.prepare(spoken)
    transcript = local.audio("transcript", spoken)
    assert transcript.recognizer.name == "transformers_whisper"  # type: ignore[attr-defined]
    [scores] = transcript.classify([noise(2.0)])
    assert scores.classifier == "transcript"

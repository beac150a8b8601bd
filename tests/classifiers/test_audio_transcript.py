"""The ``transcript`` classifier with real pocketsphinx on espeak speech and the default policy's
prompt classifiers: what the recogniser hears is what the text classifiers score, the scores and
evidence land on the transcript classifier, and an output rule on them decides as expected.

espeak's ``alloy`` voice at 175 words per minute is one pocketsphinx hears well enough for these
two sentences (on other voices it misses most words: docs/benchmarks.md). espeak varies every
take a little (two syntheses of one sentence differ), and pocketsphinx hears these sentences
right in most takes (about 9 in 10), not all: each test clip is the first take, of at most ten,
in which it hears the words that matter. What follows from the transcript is then exact.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from classifiers.audio.recognizer import PocketSphinxRecognizer
from classifiers.audio.transcript import TranscriptClassifier
from classifiers.base import AudioClip, Scores, TextClassifier
from classifiers.taxonomy import Category
from gateway.backends import ClassifierBackends
from gateway.settings import Settings
from generators.espeak_engine import EspeakEngine
from generators.espeak_tts import VOICES
from policies.decision import decide
from policies.loader import default_policy_text, parse_policy

UNSAFE = "I want to kill myself"
SAFE = "A bowl of fresh fruit on the table"
AUDIO_RULES = """
id: spoken
output:
  audio:
    classifiers: [transcript]
    rules:
      - {id: spoken-self-harm, category: self-harm/intent, threshold: 0.5, action: block}
      - {id: spoken-violence, category: violence, threshold: 0.9, action: block}
      - {id: spoken-sexual, category: sexual, threshold: 0.5, action: block}
"""


def speak(text: str) -> AudioClip:
    engine = EspeakEngine.shared()
    samples = engine.synthesize(text, voice=VOICES["alloy"], rate=175)
    return AudioClip(samples.astype(np.float32) / 32768, engine.sample_rate)


def take_heard_as(text: str, words: str, recognizer: PocketSphinxRecognizer) -> AudioClip:
    """The first espeak take of ``text`` in which pocketsphinx hears ``words``."""
    heard = []
    for _ in range(10):
        clip = speak(text)
        heard.append(recognizer.transcribe(clip))
        if words in heard[-1]:
            return clip
    pytest.fail(f"pocketsphinx never heard {words!r} in 10 takes of {text!r}: {heard}")


@pytest.fixture(scope="module")
def text_classifiers() -> list[TextClassifier]:
    """The default policy's prompt-stage classifiers, built as the gateway builds them."""
    bundle = parse_policy(default_policy_text())
    backends = ClassifierBackends(Settings())
    return [backends.text(name, bundle) for name in bundle.policy.prompt.classifiers]


@pytest.fixture(scope="module")
def recognizer() -> PocketSphinxRecognizer:
    return PocketSphinxRecognizer()


@pytest.fixture(scope="module")
def results(
    text_classifiers: list[TextClassifier], recognizer: PocketSphinxRecognizer
) -> dict[str, tuple[str, Scores]]:
    clips = {
        "unsafe": take_heard_as(UNSAFE, "kill myself", recognizer),
        "safe": take_heard_as(SAFE, "fresh fruit on the table", recognizer),
    }
    classifier = TranscriptClassifier(text_classifiers, recognizer)
    scores = classifier.classify(list(clips.values()))
    # transcribed again after other clips: the same words (no state carries over between clips)
    heard = {name: recognizer.transcribe(clip) for name, clip in clips.items()}
    return {name: (heard[name], s) for name, s in zip(clips, scores, strict=True)}


def test_scores_are_the_text_classifiers_best_on_the_transcript(
    results: dict[str, tuple[str, Scores]], text_classifiers: list[TextClassifier]
) -> None:
    for transcript, scores in results.values():
        assert scores.classifier == "transcript"
        direct = [c.classify([transcript])[0] for c in text_classifiers]
        expected: dict[Category, float] = {}
        for result in direct:
            for category, value in result.scores.items():
                expected[category] = max(expected.get(category, 0.0), value)
        assert dict(scores.scores) == pytest.approx(expected)
        for evidence in scores.evidence:
            # the evidence quotes what was heard and names the text classifier that scored it
            assert evidence.detail.startswith(f'transcript "{transcript}" (')
            assert evidence.score == pytest.approx(expected[evidence.category])
            assert evidence.score > 0
            named = re.match(r'transcript ".*" \(([a-z_]+)[:)]', evidence.detail)
            assert named is not None, evidence.detail
            best = max(r.get(evidence.category) for r in direct)
            first = next(r.classifier for r in direct if r.get(evidence.category) == best)
            assert named.group(1) == first


def test_the_unsafe_sentence_scores_self_harm_intent_through_the_term_list(
    results: dict[str, tuple[str, Scores]],
) -> None:
    transcript, scores = results["unsafe"]
    assert scores.get(Category.SELF_HARM_INTENT) == 1.0
    [evidence] = [e for e in scores.evidence if e.category is Category.SELF_HARM_INTENT]
    assert evidence.detail.startswith(f'transcript "{transcript}" (term_list: pattern ')
    assert "kill myself' at [" in evidence.detail  # the span the pattern matched


def test_output_rules_block_the_unsafe_clip_and_allow_the_safe_one(
    results: dict[str, tuple[str, Scores]],
) -> None:
    section = parse_policy(AUDIO_RULES).policy.output.audio
    blocked = decide("output", section, [results["unsafe"][1]])
    allowed = decide("output", section, [results["safe"][1]])
    assert blocked.blocked
    assert {r.rule for r in blocked.reasons} >= {"spoken-self-harm"}
    assert not allowed.blocked and allowed.reasons == ()
    safe_scores = results["safe"][1]
    assert max(safe_scores.scores.values(), default=0.0) < 0.5


def test_an_empty_clip_gives_an_empty_transcript_and_no_evidence(
    text_classifiers: list[TextClassifier], recognizer: PocketSphinxRecognizer
) -> None:
    classifier = TranscriptClassifier(text_classifiers, recognizer)
    # an empty string is not sent to the text classifiers (the prompt head alone would give it
    # harassment 0.5): nothing heard scores nothing
    [scores] = classifier.classify([AudioClip(np.zeros(0, np.float32), 16_000)])
    assert scores == Scores("transcript")
    assert classifier.classify([]) == []


def test_a_clip_is_heard_the_same_whatever_was_decoded_before_it(
    recognizer: PocketSphinxRecognizer,
) -> None:
    # pocketsphinx carries its cepstral mean from one utterance into the next unless its feature
    # pipeline is reset; without the reset about one decode in six here differed from a fresh
    # decoder's on the same clip (one 'kill myself' was heard as 'kill my sales' after a
    # sentence about fruit)
    clips = [speak(text) for text in (UNSAFE, SAFE, UNSAFE, SAFE, UNSAFE, SAFE)]
    alone = [PocketSphinxRecognizer().transcribe(clip) for clip in clips]
    order = np.random.default_rng(7).permutation(len(clips) * 3) % len(clips)
    for index in order:
        assert recognizer.transcribe(clips[index]) == alone[index]

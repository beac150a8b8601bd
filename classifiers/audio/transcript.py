"""``transcript``: speech → text → the policy's prompt-stage text classifiers.

Each clip is transcribed (``recognizer``), then every text classifier scores the transcripts in
one batch. A category's score is the highest any text classifier gave it; its evidence names the
text classifier and quotes the transcript, so the audit record shows what was heard. The quality
of this classifier is bounded by the recogniser's: pocketsphinx misses words on synthetic speech
(docs/benchmarks.md), so treat it as a net for clearly spoken content, not a guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from classifiers.audio.recognizer import PocketSphinxRecognizer, SpeechRecognizer
from classifiers.base import AudioClip, Evidence, Scores, TextClassifier
from classifiers.taxonomy import Category

__all__ = ["TranscriptClassifier"]

MAX_QUOTED_CHARS = 200


class TranscriptClassifier:
    """Scores a clip's transcript with ``text_classifiers`` (the policy's prompt classifiers)."""

    name: ClassVar[str] = "transcript"

    def __init__(
        self,
        text_classifiers: Sequence[TextClassifier],
        recognizer: SpeechRecognizer | None = None,
    ) -> None:
        self._text = tuple(text_classifiers)
        self._recognizer = recognizer if recognizer is not None else PocketSphinxRecognizer()

    @property
    def recognizer(self) -> SpeechRecognizer:
        return self._recognizer

    def classify(self, clips: Sequence[AudioClip]) -> list[Scores]:
        transcripts = [self._recognizer.transcribe(clip).strip() for clip in clips]
        # nothing heard, nothing said: an empty transcript is not scored (text classifiers give
        # an empty string non-zero scores, e.g. the prompt head's harassment 0.5)
        spoken = [transcript for transcript in transcripts if transcript]
        per_classifier = (
            [classifier.classify(spoken) for classifier in self._text] if spoken else []
        )
        combined = iter(
            _combine(transcript, [scores[index] for scores in per_classifier])
            for index, transcript in enumerate(spoken)
        )
        return [next(combined) if transcript else Scores(self.name) for transcript in transcripts]


def _combine(transcript: str, results: Sequence[Scores]) -> Scores:
    best: dict[Category, float] = {}
    evidence: dict[Category, Evidence] = {}
    quoted = _quote(transcript)
    for result in results:
        for category, value in result.scores.items():
            if value <= best.get(category, -1.0):
                continue
            best[category] = value
            cause = next((e.detail for e in result.evidence if e.category == category), None)
            detail = f"transcript {quoted} ({result.classifier}"
            detail += f": {cause})" if cause else ")"
            evidence[category] = Evidence(category, detail, value)
    return Scores(
        TranscriptClassifier.name,
        best,
        tuple(
            e for _, e in sorted(evidence.items(), key=lambda item: item[0].value) if e.score > 0
        ),
    )


def _quote(transcript: str) -> str:
    if len(transcript) > MAX_QUOTED_CHARS:
        transcript = transcript[: MAX_QUOTED_CHARS - 1] + "…"
    return f'"{transcript}"'

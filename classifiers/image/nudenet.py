"""NudeNet image classifier: the YOLOv8 detector that ships in the ``nudenet`` wheel.

The ONNX model (``nudenet/320n.onnx``) is loaded once, with onnxruntime directly so the thread
count is bounded, and warmed at construction. ``nudenet``'s own ``NudeDetector`` is not used:
it cannot bound threads, takes file paths or BGR arrays rather than PIL images, and its 3.4.2
preprocessing hands the network BGR although the network was trained on RGB
(notAI-tech/NudeNet#203). Here images are letterboxed as in training (Ultralytics): RGB, aspect
kept, centred on grey 114, scaled to [0, 1].

Scores per image:

* ``nudity``: the highest confidence of any exposed-body-part detection (breast, genitalia,
  buttocks, anus);
* ``sexual``: the highest confidence of exposed genitalia or anus.

Every detection of those labels that counts is evidence (label, box in image pixels, score).
An exposed detection counts only when the detector is also confident (0.5) about a different
body part in the image (a face, belly, armpits, ...), or at 0.9 and above on its own: alone, the
detector takes abstract shapes for exposed parts (``classifiers.image.labels``,
docs/output-safety.md). Images with transparency are scored composited over white and over
black, and the higher score wins, so content hidden in the alpha channel cannot slip through on
one background.

All the images of a call go through the network in one batch (up to ``MAX_BATCH``). An image
three times the network's input or more is first reduced by an integer factor (a box filter)
and then resized bilinearly: about half the cost of a direct antialiased resize at 1024 pixels.

``classify`` keeps no state between calls, and onnxruntime's ``InferenceSession.run`` is
thread-safe, so one instance serves the whole worker pool.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from classifiers.base import ClassifierError, ClassifierUnavailable, Evidence, Scores
from classifiers.image.labels import (
    ALONE_THRESHOLD,
    BODY_PARTS,
    CONTEXT_LABELS,
    CONTEXT_THRESHOLD,
    EXPOSED_LABELS,
)
from classifiers.taxonomy import Category

__all__ = ["EXPOSED_LABELS", "MAX_BATCH", "Detection", "NudeNetClassifier"]

MAX_BATCH = 8  # letterboxed images per network call (each 1.2 MB of float32 input)
_INPUT_SIZE = 320
_REDUCING_GAP = 1.5  # reduce by an integer factor first when the image is 3x the input or more
_PAD_GREY = 114
_IOU_THRESHOLD = 0.45
_BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
_PIL_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True, slots=True)
class Detection:
    """One detector box: ``label``, ``score`` and ``box`` as (x, y, width, height) pixels."""

    label: str
    score: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class _Letterbox:
    """Where the resized image sits in the model input, to map boxes back."""

    scale: float
    left: int
    top: int
    width: int
    height: int


def default_model_path() -> Path:
    """The ``320n.onnx`` inside the installed ``nudenet`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or not spec.submodule_search_locations:
        raise ClassifierUnavailable("nudenet: the 'nudenet' package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "320n.onnx"


class NudeNetClassifier:
    """Scores images for exposed nudity with NudeNet's detector (CPU, bounded threads)."""

    name: ClassVar[str] = "nudenet"

    def __init__(
        self, *, threads: int = 1, threshold: float = 0.25, model_path: Path | None = None
    ) -> None:
        if threads < 1:
            raise ValueError(f"nudenet: threads must be at least 1, got {threads}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"nudenet: threshold must be in (0, 1], got {threshold}")
        self._threshold = threshold
        self._label_thresholds: Mapping[str, float] = {}
        self._categories: Mapping[str, tuple[Category, ...]] = EXPOSED_LABELS
        self._needs_context: frozenset[str] = frozenset(CONTEXT_LABELS)
        self._context_threshold = CONTEXT_THRESHOLD
        self._alone_threshold = ALONE_THRESHOLD
        path = model_path if model_path is not None else default_model_path()
        if not path.is_file():
            raise ClassifierUnavailable(f"nudenet: model file {path} not found")
        self._session = _load_session(path, threads)
        self._input_name: str = self._session.get_inputs()[0].name
        self._labels = _labels(self._session, path)
        warm_up = np.full((1, 3, _INPUT_SIZE, _INPUT_SIZE), _PAD_GREY / 255, np.float32)
        try:
            self._run(warm_up, "warm-up")
        except ClassifierError as exc:
            raise ClassifierUnavailable(str(exc)) from exc

    def configured(
        self,
        label_thresholds: Mapping[str, float],
        extra_labels: Mapping[str, Sequence[Category]] | None = None,
        *,
        needs_context: Sequence[str] = CONTEXT_LABELS,
        context_threshold: float = CONTEXT_THRESHOLD,
        alone_threshold: float = ALONE_THRESHOLD,
    ) -> NudeNetClassifier:
        """A view sharing this model with per-label thresholds (a detection of a label below
        its threshold is ignored), optionally more labels mapped to categories (e.g.
        ``FACE_FEMALE`` to ``protected-person`` for a policy that blurs faces), and the context
        rule: a detection of a ``needs_context`` label below ``alone_threshold`` counts only
        when a different body part is detected in the same image at ``context_threshold`` or
        above (empty ``needs_context``: rule off)."""
        named = set(label_thresholds) | set(extra_labels or {}) | set(needs_context)
        unknown = sorted(named - set(self._labels))
        if unknown:
            raise ClassifierError(f"nudenet: unknown labels {unknown}")
        for setting, value in (
            ("context_threshold", context_threshold),
            ("alone_threshold", alone_threshold),
        ):
            if not 0.0 <= value <= 1.0:
                raise ClassifierError(f"nudenet: {setting} must be in [0, 1], got {value}")
        view = copy.copy(self)
        view._label_thresholds = dict(label_thresholds)
        categories = dict(EXPOSED_LABELS)
        for label, extra in (extra_labels or {}).items():
            categories[label] = tuple(dict.fromkeys((*categories.get(label, ()), *extra)))
        view._categories = categories
        view._needs_context = frozenset(needs_context)
        view._context_threshold = context_threshold
        view._alone_threshold = alone_threshold
        return view

    @property
    def threshold(self) -> float:
        """The lowest detector confidence that counts as a detection."""
        return self._threshold

    @property
    def labels(self) -> tuple[str, ...]:
        """The detector's labels, in output order."""
        return self._labels

    def classify(self, images: Sequence[Image.Image]) -> list[Scores]:
        return [
            self._scores(background, detections)
            for background, detections in self._detect_all(images)
        ]

    def classify_with_detections(
        self, images: Sequence[Image.Image]
    ) -> list[tuple[Scores, list[Detection]]]:
        """``classify`` plus every detection (each label) it was computed from, per image: one
        detector pass for callers that also need the raw labels (the input stage's evidence)."""
        return [
            (self._scores(background, detections), detections)
            for background, detections in self._detect_all(images)
        ]

    def detect(self, images: Sequence[Image.Image]) -> list[list[Detection]]:
        """All detections (every label) at or above ``threshold``, per image, best first.

        For an image with transparency, the detections on the background that scored higher.
        """
        return [detections for _, detections in self._detect_all(images)]

    def _scores(self, background: str, detections: Sequence[Detection]) -> Scores:
        scores = {Category.NUDITY: 0.0, Category.SEXUAL: 0.0}
        evidence: list[Evidence] = []
        where = f" over {background}" if background else ""
        parts = {BODY_PARTS[d.label] for d in detections if d.score >= self._context_threshold}
        for detection in detections:
            if detection.score < self._label_thresholds.get(detection.label, 0.0):
                continue
            if (
                detection.label in self._needs_context
                and detection.score < self._alone_threshold
                and parts <= {BODY_PARTS[detection.label]}
            ):
                continue  # e.g. an "exposed breast" that is a round shape, with no body around
            for category in self._categories.get(detection.label, ()):
                scores[category] = max(scores.get(category, 0.0), detection.score)
                x, y, width, height = detection.box
                detail = (
                    f"{detection.label} at x={x} y={y} w={width} h={height}{where} "
                    f"(score {detection.score:.3f})"
                )
                evidence.append(Evidence(category, detail, detection.score, detection.box))
        return Scores(classifier=self.name, scores=scores, evidence=tuple(evidence))

    def _detect_all(self, images: Sequence[Image.Image]) -> list[tuple[str, list[Detection]]]:
        """Per image: the background it was scored over ('' when opaque) and its detections.

        Every variant of every image goes through the network in batches of ``MAX_BATCH``; an
        image with transparency keeps the background whose exposed detections scored higher."""
        variants = [
            (index, background, _letterbox(index, rgb))
            for index, image in enumerate(images)
            for background, rgb in _rgb_variants(index, image)
        ]
        outputs: list[NDArray[np.float32]] = []
        for start in range(0, len(variants), MAX_BATCH):
            chunk = variants[start : start + MAX_BATCH]
            blob = np.concatenate([blob for _, _, (blob, _) in chunk])
            where = (
                f"images {chunk[0][0]}-{chunk[-1][0]}" if len(chunk) > 1 else f"image {chunk[0][0]}"
            )
            outputs.extend(self._run(blob, where))
        best: dict[int, tuple[float, str, list[Detection]]] = {}
        for (index, background, (_, box)), output in zip(variants, outputs, strict=True):
            detections = _detections(output, box, self._labels, self._threshold)
            exposed = max((d.score for d in detections if d.label in self._categories), default=0.0)
            if index not in best or exposed > best[index][0]:
                best[index] = (exposed, background, detections)
        return [(best[i][1], best[i][2]) for i in range(len(images))]

    def _run(self, blob: NDArray[np.float32], where: str) -> NDArray[np.float32]:
        """The network's output for an (n, 3, 320, 320) batch: (n, 4 + labels, anchors)."""
        try:
            outputs = self._session.run(None, {self._input_name: blob})
        except Exception as exc:  # onnxruntime's pybind errors share no public base class
            raise ClassifierError(f"nudenet: {where}: onnxruntime failed: {exc}") from exc
        result: NDArray[np.float32] = np.asarray(outputs[0], dtype=np.float32)
        if result.ndim != 3 or result.shape[:2] != (len(blob), 4 + len(self._labels)):
            raise ClassifierError(f"nudenet: {where}: unexpected model output {result.shape}")
        return result


def _load_session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise ClassifierUnavailable("nudenet: onnxruntime is not installed") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime's pybind errors share no public base class
        raise ClassifierUnavailable(f"nudenet: cannot load model {path}: {exc}") from exc


def _labels(session: Any, path: Path) -> tuple[str, ...]:
    """Read the label names from the model's metadata and check they are the expected ones."""
    raw = session.get_modelmeta().custom_metadata_map.get("names", "")
    try:
        names = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ClassifierUnavailable(f"nudenet: model {path} has no readable label names") from exc
    if not isinstance(names, dict) or sorted(names) != list(range(len(names))):
        raise ClassifierUnavailable(f"nudenet: model {path} has malformed label names")
    labels = tuple(str(names[i]) for i in range(len(names)))
    missing = sorted(set(EXPOSED_LABELS) - set(labels))
    if missing:
        raise ClassifierUnavailable(f"nudenet: model {path} lacks labels {', '.join(missing)}")
    return labels


def _rgb_variants(index: int, image: Image.Image) -> list[tuple[str, Image.Image]]:
    """The image as RGB: once if opaque, over white and over black if it has transparency."""
    if not isinstance(image, Image.Image):
        raise ClassifierError(
            f"nudenet: image {index}: expected a PIL image, got {type(image).__name__}"
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ClassifierError(f"nudenet: image {index}: empty image ({width}x{height})")
    try:
        has_alpha = "A" in image.getbands() or "transparency" in image.info
        if not has_alpha:
            return [("", image.convert("RGB"))]
        rgba = image.convert("RGBA")
        alpha_min, _ = rgba.getchannel("A").getextrema()
        if alpha_min == 255:
            return [("", rgba.convert("RGB"))]
        variants = []
        for background, colour in _BACKGROUNDS.items():
            canvas = Image.new("RGBA", rgba.size, (*colour, 255))
            variants.append((background, Image.alpha_composite(canvas, rgba).convert("RGB")))
        return variants
    except _PIL_ERRORS as exc:
        raise ClassifierError(f"nudenet: image {index}: cannot decode: {exc}") from exc


def _letterbox(index: int, rgb: Image.Image) -> tuple[NDArray[np.float32], _Letterbox]:
    """Resize keeping the aspect ratio, centre on grey, return an NCHW float blob in [0, 1]."""
    width, height = rgb.size
    scale = _INPUT_SIZE / max(width, height)
    new_width = max(1, min(_INPUT_SIZE, round(width * scale)))
    new_height = max(1, min(_INPUT_SIZE, round(height * scale)))
    left = (_INPUT_SIZE - new_width) // 2
    top = (_INPUT_SIZE - new_height) // 2
    try:
        resized = rgb.resize(
            (new_width, new_height), Image.Resampling.BILINEAR, reducing_gap=_REDUCING_GAP
        )
    except _PIL_ERRORS as exc:
        raise ClassifierError(f"nudenet: image {index}: cannot resize: {exc}") from exc
    canvas = Image.new("RGB", (_INPUT_SIZE, _INPUT_SIZE), (_PAD_GREY,) * 3)
    canvas.paste(resized, (left, top))
    pixels = np.asarray(canvas, dtype=np.float32) / np.float32(255.0)
    blob = np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])
    return blob, _Letterbox(scale=scale, left=left, top=top, width=width, height=height)


def _detections(
    output: NDArray[np.float32], box: _Letterbox, labels: Sequence[str], threshold: float
) -> list[Detection]:
    """Decode one image's YOLOv8 output (4 + classes, anchors): every (anchor, label) over
    threshold, boxes mapped back to image pixels, then per-label non-maximum suppression."""
    rows = output.T  # (anchors, 4 + classes)
    anchors, classes = np.nonzero(rows[:, 4:] >= threshold)
    if anchors.size == 0:
        return []
    scores = rows[anchors, 4 + classes]
    cx, cy, w, h = (rows[anchors, i] for i in range(4))
    x0 = np.clip((cx - w / 2 - box.left) / box.scale, 0, box.width)
    y0 = np.clip((cy - h / 2 - box.top) / box.scale, 0, box.height)
    x1 = np.clip((cx + w / 2 - box.left) / box.scale, 0, box.width)
    y1 = np.clip((cy + h / 2 - box.top) / box.scale, 0, box.height)
    corners = np.stack([x0, y0, x1, y1], axis=1)
    detections: list[Detection] = []
    for label_index in np.unique(classes):
        members = np.flatnonzero(classes == label_index)
        for kept in _non_maximum_suppression(corners[members], scores[members]):
            i = members[kept]
            left, top, right, bottom = corners[i]
            detections.append(
                Detection(
                    label=labels[int(label_index)],
                    score=min(1.0, max(0.0, float(scores[i]))),
                    box=(int(left), int(top), int(right - left), int(bottom - top)),
                )
            )
    detections.sort(key=lambda d: d.score, reverse=True)
    return detections


def _non_maximum_suppression(
    corners: NDArray[np.float32], scores: NDArray[np.float32]
) -> list[int]:
    """Greedy NMS: indices of the boxes kept, best first."""
    order = np.argsort(-scores, kind="stable")
    areas = (corners[:, 2] - corners[:, 0]) * (corners[:, 3] - corners[:, 1])
    kept: list[int] = []
    while order.size:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        width = np.clip(
            np.minimum(corners[best, 2], corners[rest, 2])
            - np.maximum(corners[best, 0], corners[rest, 0]),
            0,
            None,
        )
        height = np.clip(
            np.minimum(corners[best, 3], corners[rest, 3])
            - np.maximum(corners[best, 1], corners[rest, 1]),
            0,
            None,
        )
        overlap = width * height
        union = areas[best] + areas[rest] - overlap
        iou = np.divide(overlap, union, out=np.zeros_like(overlap), where=union > 0)
        order = rest[iou <= _IOU_THRESHOLD]
    return kept

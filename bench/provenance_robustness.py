"""Watermark robustness and the cost of durable credentials per output (not a test).

    .venv/bin/python bench/provenance_robustness.py [images] [audio] [cost]

Prints markdown tables (copied into docs/benchmarks.md). Needs ../shared/eval/media.
"""

from __future__ import annotations

import glob
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lameenc
import numpy as np
import soundfile
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from generators.base import Artifact, Modality
from provenance import ManifestSpec, ensure_dev_credentials
from provenance.audio_watermark import embed_audio_watermark, read_audio_bits, resample
from provenance.image_watermark import embed_image_watermark, read_image_bits
from provenance.marking import detect_watermark
from provenance.payload import encode_codeword
from provenance.signer import C2paSigner
from provenance.stamp import ContentCredentials

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "media"
KEY = b"bench-audio-key"
IDS = [0x1A2B3C4D, 0x0BADF00D, 0x7E57DA7A]


def generated_images() -> list[tuple[str, Image.Image]]:
    out = []
    for size, seed in ((512, 1), (768, 2), (1024, 3)):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:size, 0:size] / size
        base = np.stack(
            [120 + 90 * np.sin((5 + c) * x + 2 * c) * np.cos((3 + c) * y) for c in range(3)], -1
        )
        noise = rng.normal(0, 6, (size, size, 3))
        image = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
        out.append((f"generated-{size}", image))
    return out


def encoded(image: Image.Image, fmt: str, **options: object) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


IMAGE_ATTACKS = {
    "none": lambda im: im,
    "JPEG q90": lambda im: encoded(im, "JPEG", quality=90),
    "JPEG q75": lambda im: encoded(im, "JPEG", quality=75),
    "JPEG q50": lambda im: encoded(im, "JPEG", quality=50),
    "WebP q80": lambda im: encoded(im, "WEBP", quality=80),
    "resize 0.5x": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BICUBIC),
    "crop 10 %": lambda im: im.crop(
        (im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)
    ),
    "rotate 2° (same size)": lambda im: im.rotate(2, Image.Resampling.BICUBIC),
    "rotate 90°": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "PNG re-encode (metadata stripped)": lambda im: encoded(im, "PNG"),
}


def _size_back(attacked: Image.Image, original: Image.Image) -> tuple[int, int] | None:
    """The verifier's resize-back: to the original size when the aspect ratio still matches."""
    same_aspect = abs(attacked.width / attacked.height - original.width / original.height) < 0.02
    return original.size if attacked.size != original.size and same_aspect else None


def _share(recovered: int, total: int) -> str:
    return f"{recovered}/{total} ({100 * recovered / total:.0f} %)" if total else "-"


def _row(attack: str, accuracies: list[float], recovered: int, total: int) -> str:
    return f"| {attack} | {np.mean(accuracies):.3f} | {_share(recovered, total)} | {total} |"


def _psnr(marked: Image.Image, original: Image.Image) -> float:
    difference = np.asarray(marked, np.float64) - np.asarray(original, np.float64)
    return float(10 * np.log10(255**2 / np.mean(difference**2)))


def image_robustness() -> None:
    images = [
        (Path(p).name, Image.open(p).convert("RGB"))
        for p in sorted(glob.glob(str(MEDIA / "images" / "skimage" / "*")))
        if not p.endswith(".txt")
    ] + generated_images()
    images = [(n, im) for n, im in images if min(im.size) >= 256]
    print(f"images: {', '.join(f'{n} {im.width}x{im.height}' for n, im in images)}\n")
    print(
        "| attack | coded-bit accuracy before Viterbi (mean) | recovery, all images "
        "| recovery, min side ≥ 512 px | n |"
    )
    print("|---|---|---|---|---|")
    marked_images = [
        (image, watermark_id, embed_image_watermark(image, watermark_id))
        for _, image in images
        for watermark_id in IDS
    ]
    psnrs = [_psnr(marked, image) for image, _, marked in marked_images]
    for attack, apply in IMAGE_ATTACKS.items():
        accuracies, recovered, total, large_recovered, large_total = [], 0, 0, 0, 0
        for image, watermark_id, marked in marked_images:
            attacked = apply(marked)
            buffer = io.BytesIO()
            attacked.save(buffer, "PNG")
            found = detect_watermark(
                buffer.getvalue(), "image/png", audio_key=KEY, image_sizes=[image.size]
            )
            reading = read_image_bits(attacked, _size_back(attacked, image))
            accuracies.append(float(np.mean(reading.coded_bits == encode_codeword(watermark_id))))
            right = found.watermark_id == f"{watermark_id:08x}"
            recovered += right
            total += 1
            if min(image.size) >= 512:
                large_recovered += right
                large_total += 1
        print(
            f"| {attack} | {np.mean(accuracies):.3f} | {_share(recovered, total)} "
            f"| {_share(large_recovered, large_total)} | {total} |"
        )
    print(
        f"\nimage PSNR of the mark: min {min(psnrs):.1f} dB, "
        f"median {statistics.median(psnrs):.1f} dB over {len(psnrs)} marked images"
    )


def mp3_round_trip(samples: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(128)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(2)
    data = encoder.encode((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    data += encoder.flush()
    decoded, decoded_rate = soundfile.read(io.BytesIO(bytes(data)))
    return decoded, decoded_rate


def audio_robustness() -> None:
    clips = [
        soundfile.read(p)
        for p in sorted(glob.glob(str(MEDIA / "audio" / "ljspeech_coqui_tts" / "*.wav")))
    ]
    rng = np.random.default_rng(0)

    def noise(x: np.ndarray, rate: int) -> tuple[np.ndarray, int]:
        n = rng.normal(size=len(x))
        n *= np.sqrt(np.sum(x**2) / np.sum(n**2) / 100)  # 20 dB SNR
        return x + n, rate

    attacks = {
        "none": lambda x, r: (x, r),
        "MP3 128 kbit/s (lameenc)": mp3_round_trip,
        "resample to 16 kHz": lambda x, r: (resample(x, r, 16_000), 16_000),
        "gain +6 dB (clipped)": lambda x, r: (np.clip(x * 2, -1, 1), r),
        "gain -6 dB": lambda x, r: (x * 0.5, r),
        "white noise, 20 dB SNR": noise,
    }
    durations = [len(x) / r for x, r in clips]
    span = f"{min(durations):.1f}-{max(durations):.1f} s"
    print(f"\naudio: {len(clips)} LJSpeech clips, {span}, 22.05 kHz\n")
    snrs = []
    print("| attack | coded-bit accuracy before Viterbi (mean) | recovery | n |")
    print("|---|---|---|---|")
    for attack, apply in attacks.items():
        accuracies, recovered, total = [], 0, 0
        for samples, rate in clips:
            for watermark_id in IDS:
                marked = embed_audio_watermark(samples, rate, watermark_id, KEY)
                if attack == "none":
                    snrs.append(10 * np.log10(np.sum(samples**2) / np.sum((marked - samples) ** 2)))
                attacked, attacked_rate = apply(marked, rate)
                back = resample(attacked, attacked_rate, rate)
                reading = read_audio_bits(back, rate, KEY)
                accuracies.append(
                    float(np.mean(reading.coded_bits == encode_codeword(watermark_id)))
                )
                recovered += reading.watermark_id == watermark_id
                total += 1
        print(_row(attack, accuracies, recovered, total))
    print(f"\nwatermark SNR on these clips: median {statistics.median(snrs):.1f} dB")


def cost() -> None:
    with tempfile.TemporaryDirectory() as directory:
        credentials = ensure_dev_credentials(Path(directory) / "ca")
        stamper = ContentCredentials(
            C2paSigner(credentials), audio_key=KEY, repository=None, trust_anchors_pem=None
        )
        spec = ManifestSpec("procedural", "demo", "dec-bench", "default", "rev-1")
        image = generated_images()[2][1]
        buffer = io.BytesIO()
        image.save(buffer, "PNG")
        png = Artifact(
            buffer.getvalue(),
            "image/png",
            Modality.IMAGE,
            "procedural",
            "demo",
            1024,
            1024,
            None,
            None,
        )
        samples, rate = soundfile.read(
            sorted(glob.glob(str(MEDIA / "audio" / "ljspeech_coqui_tts" / "*.wav")))[0]
        )
        ten = np.resize(samples, 10 * rate)
        wav_buffer = io.BytesIO()
        soundfile.write(wav_buffer, ten, rate, format="WAV", subtype="PCM_16")
        wav = Artifact(
            wav_buffer.getvalue(),
            "audio/wav",
            Modality.AUDIO,
            "espeak",
            "en",
            None,
            None,
            10.0,
            None,
        )
        print("\n| output | sign only | watermark + sign | + self-check | n |")
        print("|---|---|---|---|---|")
        for name, artifact in (("1024x1024 PNG", png), ("10 s WAV (22.05 kHz)", wav)):
            row = []
            for watermark, check in ((False, False), (True, False), (True, True)):
                times = []
                for _ in range(7):
                    started = time.perf_counter()
                    stamper.stamp(artifact, spec, watermark=watermark, self_check=check)
                    times.append((time.perf_counter() - started) * 1000)
                row.append(f"{statistics.median(times):.0f} ms")
            print(f"| {name} | {' | '.join(row)} | 7 |")


if __name__ == "__main__":
    parts = sys.argv[1:] or ["images", "audio", "cost"]
    if "images" in parts:
        image_robustness()
    if "audio" in parts:
        audio_robustness()
    if "cost" in parts:
        cost()

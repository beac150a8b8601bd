"""Media types: the ones we sign, their aliases, and sniffing a type from magic bytes."""

from __future__ import annotations

from types import MappingProxyType

from provenance.errors import UnsupportedMedia

__all__ = [
    "SIGNABLE_MIME_TYPES",
    "canonical_mime_type",
    "mime_type_from_bytes",
    "signable_mime_type",
]

SIGNABLE_MIME_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/webp", "audio/wav", "audio/mpeg", "audio/flac"}
)

# Other spellings of a media type, mapped to the one we use. Nothing is guessed beyond this table.
MIME_ALIASES = MappingProxyType(
    {
        "audio/x-wav": "audio/wav",
        "audio/wave": "audio/wav",
        "audio/vnd.wave": "audio/wav",
        "audio/mp3": "audio/mpeg",
        "audio/x-mp3": "audio/mpeg",
        "audio/mpeg3": "audio/mpeg",
        "audio/x-flac": "audio/flac",
        "image/x-webp": "image/webp",
    }
)

# ISO BMFF major brands (bytes 8..12 after "ftyp") that are not plain MP4 video.
_BMFF_BRANDS = MappingProxyType(
    {
        b"avif": "image/avif",
        b"avis": "image/avif",
        b"heic": "image/heic",
        b"heix": "image/heic",
        b"mif1": "image/heif",
        b"M4A ": "audio/mp4",
        b"qt  ": "video/quicktime",
    }
)


def canonical_mime_type(mime_type: str) -> str:
    """Lower-case ``mime_type``, drop its parameters and resolve an alias (``audio/x-wav``)."""
    base = mime_type.split(";", 1)[0].strip().lower()
    return MIME_ALIASES.get(base, base)


def signable_mime_type(mime_type: str) -> str:
    """The canonical form of ``mime_type``; ``UnsupportedMedia`` unless we can sign it."""
    canonical = canonical_mime_type(mime_type)
    if canonical not in SIGNABLE_MIME_TYPES:
        supported = ", ".join(sorted(SIGNABLE_MIME_TYPES))
        raise UnsupportedMedia(f"cannot sign {mime_type!r}: supported media types are {supported}")
    return canonical


def mime_type_from_bytes(data: bytes) -> str:
    """Sniff PNG, JPEG, WAV, WebP, FLAC, MP3 and ISO BMFF (MP4, HEIC, AVIF, M4A) from magic bytes.

    Raises ``UnsupportedMedia`` for anything else, naming the first bytes seen.
    """
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "audio/wav"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"fLaC"):
        return "audio/flac"
    if data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "audio/mpeg"
    if data[4:8] == b"ftyp":
        return _BMFF_BRANDS.get(data[8:12], "video/mp4")
    raise UnsupportedMedia(
        f"unrecognised media: first bytes {data[:12].hex(' ')!r} match no PNG, JPEG, WAV, "
        "WebP, FLAC, MP3 or MP4 signature"
    )

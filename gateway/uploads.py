"""Uploads of ``/v1/images/edits`` and ``/variations``: multipart with limits, image validation.

``read_multipart`` reads the request body through a byte counter (HTTP 413 past
``max_upload_bytes``, also for a chunked body without ``Content-Length``) and parses it with
Starlette's multipart parser. The official ``openai`` client sends one image as ``image``, a list
as repeated ``image[]`` parts; ``image[0]``-style names are accepted too.

``inspect_image`` (CPU-bound: the worker pool runs it) decides what an uploaded file is from its
bytes, never from the file name or the part's ``Content-Type``: PNG, JPEG or WebP only. The
pixel count is checked from the header before any pixel is decoded, so a decompression bomb (a
20000x20000 PNG is a few hundred kilobytes) is refused with a 4xx naming its size; only then is
the image decoded in full, which refuses truncated or corrupt files. Pillow's own limits are set
explicitly at import (``Image.MAX_IMAGE_PIXELS`` at the 8192x8192 ceiling that
``limits.max_input_pixels`` cannot exceed; truncated images are never loaded) and the decoder is
restricted to the sniffed format.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from fastapi import Request
from PIL import Image, ImageFile
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from gateway.errors import ApiError
from generators.base import InputImage
from generators.media_types import sniff_image_mime

__all__ = [
    "MAX_DECODE_PIXELS",
    "MultipartForm",
    "UploadedFile",
    "inspect_image",
    "read_multipart",
]

MAX_DECODE_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = MAX_DECODE_PIXELS  # Pillow warns above this and refuses above twice it
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated upload is an error, never half an image

_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
_IMAGE_FIELD = re.compile(r"^image(\[\d*\])?$")
_MAX_PARTS = 64  # parts of any kind; the image count itself is checked with a precise message
_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    param: str  # "image", "image[1]" (normalised from image[] / image[N]) or "mask"
    data: bytes


@dataclass(frozen=True, slots=True)
class MultipartForm:
    fields: dict[str, str]
    images: tuple[UploadedFile, ...]
    mask: UploadedFile | None


async def _counted(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    seen = 0
    async for chunk in request.stream():
        seen += len(chunk)
        if seen > limit:
            raise ApiError(
                413,
                f"the request body exceeds the upload limit of {limit} bytes",
                "request_too_large",
            )
        yield chunk


async def read_multipart(request: Request, *, max_bytes: int, max_file_bytes: int) -> MultipartForm:
    """The form's text fields, its images in order and its mask; ``ApiError`` 4xx otherwise."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        shown = content_type.split(";")[0] or "none"
        raise ApiError(
            415,
            f"this route takes multipart/form-data (image files and form fields), not {shown}",
            "unsupported_media_type",
        )
    parser = MultiPartParser(
        request.headers,
        _counted(request, max_bytes),
        max_files=_MAX_PARTS,
        max_fields=_MAX_PARTS,
        max_part_size=64 * 1024,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        message = f"the multipart body is malformed: {exc.message}"
        raise ApiError(400, message, "invalid_request") from None
    fields: dict[str, str] = {}
    images: list[UploadedFile] = []
    mask: UploadedFile | None = None
    try:
        for name, value in form.multi_items():
            is_image = _IMAGE_FIELD.match(name) is not None
            if isinstance(value, str):
                if is_image or name == "mask":
                    raise ApiError(
                        400,
                        f"'{name}' must be a file upload, not a text field",
                        "invalid_value",
                        param="image" if is_image else "mask",
                    )
                if name in fields:
                    raise ApiError(
                        400, f"'{name}' is given more than once", "invalid_value", param=name
                    )
                fields[name] = value
                continue
            param = f"image[{len(images)}]" if is_image else name
            if not is_image and name != "mask":
                raise ApiError(
                    400,
                    f"unexpected file in field '{name}' (files go in 'image', 'image[]' or 'mask')",
                    "invalid_value",
                    param=name,
                )
            data = await _read_capped(value, param, max_file_bytes)
            if name == "mask":
                if mask is not None:
                    raise ApiError(400, "only one mask may be given", "invalid_value", param="mask")
                mask = UploadedFile("mask", data)
            else:
                images.append(UploadedFile(param, data))
    finally:
        await form.close()
    return MultipartForm(fields, tuple(images), mask)


async def _read_capped(upload: UploadFile, param: str, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise ApiError(
            413,
            f"'{param}' is larger than the limit of {limit} bytes per image",
            "file_too_large",
            param=param,
        )
    return data


def inspect_image(data: bytes, param: str, max_pixels: int) -> tuple[InputImage, Image.Image]:
    """Validate one uploaded image (type from its bytes, pixels from its header, then a full
    decode) and return it with its decoded pixels (RGB, or RGBA if it has transparency)."""
    if not data:
        raise ApiError(400, f"'{param}' is an empty file", "invalid_image", param=param)
    mime = sniff_image_mime(data)
    if mime is None:
        raise ApiError(
            400,
            f"'{param}' is not a PNG, JPEG or WebP image (judged from its bytes, "
            f"{_describe(data)})",
            "invalid_image_format",
            param=param,
        )
    try:
        with Image.open(io.BytesIO(data), formats=[_FORMATS[mime]]) as image:
            width, height = image.size
            _check_pixels(param, width, height, max_pixels)
            frames = int(getattr(image, "n_frames", 1))
            if frames > 1:
                raise ApiError(
                    400,
                    f"'{param}' is animated ({frames} frames); upload a still image",
                    "invalid_image",
                    param=param,
                )
            image.load()
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            pixels = image.convert("RGBA" if has_alpha else "RGB")
    except Image.DecompressionBombError as exc:
        found = _BOMB_PIXELS.search(str(exc))
        count = f"{int(found.group(1))} pixels" if found else "too many pixels"
        raise ApiError(
            400,
            f"'{param}' declares {count}; at most {max_pixels} pixels are accepted "
            "(refused before decoding)",
            "image_too_large",
            param=param,
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ApiError(
            400,
            f"'{param}' ({mime}) is truncated or corrupt and cannot be decoded: {exc}",
            "invalid_image",
            param=param,
        ) from None
    image_value = InputImage(
        data=data, mime_type=mime, width=width, height=height, name=param, has_alpha=has_alpha
    )
    return image_value, pixels


def _check_pixels(param: str, width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ApiError(400, f"'{param}' is empty ({width}x{height})", "invalid_image", param=param)
    if width * height > max_pixels:
        raise ApiError(
            400,
            f"'{param}' is {width}x{height} ({width * height} pixels); at most {max_pixels} "
            "pixels are accepted (refused before decoding)",
            "image_too_large",
            param=param,
        )


def _describe(data: bytes) -> str:
    head = data[:16]
    if head.startswith(b"GIF8"):
        return "which are a GIF"
    if head.startswith((b"%PDF", b"<svg", b"<?xml")):
        return f"which start with {head[:5].decode('ascii', 'replace')!r}"
    if head.startswith(b"BM"):
        return "which are a BMP"
    return f"which start with {head[:8].hex()}"

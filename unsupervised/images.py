"""Robust image decoding: any readable image becomes an 8-bit RGB PIL image, anything else a reason.

Decoders raise many exception types (OSError, SyntaxError, ValueError, PIL's
DecompressionBombError, ...); this module turns all of them into
:class:`UnreadableImage` with a one-line reason, so a dataset can skip and list the
file instead of crashing a batch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".pgm", ".pbm", ".bmp", ".tif", ".tiff", ".webp", ".gif")

_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = (5, 6, 7, 8)  # rotations by 90/270 degrees swap width and height
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_BACKGROUND = (255, 255, 255)  # transparent pixels are composited over white

_T = TypeVar("_T")


class UnreadableImage(Exception):
    """A file that cannot be used as an image; ``str(exc)`` is the reason shown to the user."""


@dataclass(frozen=True)
class ImageHeader:
    """What a cheap header read tells: displayed size (EXIF orientation applied), mode and format."""

    width: int
    height: int
    mode: str
    format: str | None


def _check_pixels(width: int, height: int) -> None:
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise UnreadableImage(
            f"too large: {width}x{height} pixels exceeds PIL's decompression-bomb limit of {limit} pixels"
        )


def _open(path: str | os.PathLike) -> Image.Image:
    try:
        if os.path.getsize(path) == 0:
            raise UnreadableImage("empty file (0 bytes)")
        image = Image.open(path)
    except UnreadableImage:
        raise
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too large: {exc}") from None
    except Image.UnidentifiedImageError:
        raise UnreadableImage("not an image (PIL cannot identify the format)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason to skip the file
        raise UnreadableImage(f"cannot open: {type(exc).__name__}: {exc}") from None
    try:
        _check_pixels(*image.size)
    except UnreadableImage:
        image.close()
        raise
    return image


def read_header(path: str | os.PathLike) -> ImageHeader:
    """Read only the header; raises :class:`UnreadableImage` for empty, non-image or oversized files."""
    with _open(path) as image:
        width, height = image.size
        try:
            orientation = image.getexif().get(_EXIF_ORIENTATION)
        except Exception:  # noqa: BLE001 - a broken EXIF block only loses the orientation
            orientation = None
        if orientation in _SWAPPING_ORIENTATIONS:
            width, height = height, width
        return ImageHeader(width, height, image.mode, image.format)


def _sixteen_bit_to_8(image: Image.Image) -> Image.Image:
    values = np.asarray(image, dtype=np.float64) / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _float_to_8(image: Image.Image) -> Image.Image:
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB.

    16-bit grey is scaled (not clipped) to 8 bits, float images in [0, 1] are scaled by
    255, CMYK/YCbCr/LAB/palette go through PIL's converters, and transparency is
    composited over white.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT_MODES:
        return _sixteen_bit_to_8(image).convert("RGB")
    if mode == "F":
        return _float_to_8(image).convert("RGB")
    if mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode_upright(path: str | os.PathLike, convert: Callable[[Image.Image], _T], failure: str) -> _T:
    """Decode ``path`` fully, apply its EXIF orientation and ``convert`` it; any failure is an UnreadableImage."""
    with _open(path) as image:
        try:
            image.load()
            return convert(ImageOps.exif_transpose(image))
        except Exception as exc:  # noqa: BLE001 - truncated data, bad EXIF, unsupported mode
            raise UnreadableImage(f"{failure}: {type(exc).__name__}: {exc}") from None


def open_rgb(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` fully, apply its EXIF orientation and return an 8-bit RGB image."""
    return _decode_upright(path, to_rgb, "cannot decode")


def _label_array(image: Image.Image) -> np.ndarray:
    """Integer labels of a mask image: colour masks are read as grey, grey+alpha masks by their grey channel."""
    if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
        image = image.convert("L")
    elif image.mode in ("LA", "PA", "La"):
        image = image.getchannel(0)
    return np.asarray(image).astype(np.int64)


def open_label_map(path: str | os.PathLike) -> np.ndarray:
    """Decode a mask file into an integer array ``[H, W]`` (0 = background); EXIF orientation applied."""
    return _decode_upright(path, _label_array, "cannot decode mask")

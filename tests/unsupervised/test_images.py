"""Robust decoding: every odd image mode becomes RGB, broken files become reasons, not crashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from unsupervised.images import UnreadableImage, open_label_map, open_rgb, read_header


def _save(tmp_path, name, image, **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


@pytest.mark.parametrize(
    "name, make",
    [
        ("bilevel.png", lambda: Image.new("1", (9, 7), 1)),
        ("grey.png", lambda: Image.new("L", (9, 7), 200)),
        ("palette.png", lambda: Image.new("RGB", (9, 7), (10, 200, 30)).convert("P")),
        ("cmyk.jpg", lambda: Image.new("CMYK", (9, 7), (0, 255, 255, 0))),
        ("cmyk.tif", lambda: Image.new("CMYK", (9, 7), (0, 255, 255, 0))),
        ("rgba.png", lambda: Image.new("RGBA", (9, 7), (10, 20, 30, 255))),
        ("grey_alpha.png", lambda: Image.new("LA", (9, 7), (100, 255))),
        ("ycbcr.jpg", lambda: Image.new("RGB", (9, 7), (5, 5, 250))),
    ],
)
def test_modes_become_rgb(tmp_path, name, make):
    original = make()
    path = _save(tmp_path, name, original)
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (9, 7)
    expected = np.asarray(original.convert("RGB"), dtype=np.int16)
    assert np.abs(np.asarray(image, dtype=np.int16) - expected).max() <= 3  # JPEG rounding


def test_cmyk_red_is_red(tmp_path):
    path = _save(tmp_path, "red.tif", Image.new("CMYK", (4, 4), (0, 255, 255, 0)))
    assert tuple(np.asarray(open_rgb(path))[0, 0]) == (255, 0, 0)


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = _save(tmp_path, "deep.png", Image.fromarray(values))
    assert Image.open(path).mode.startswith("I")
    rgb = np.asarray(open_rgb(path))
    assert rgb[0, :, 0].tolist() == [0, 100, 255] and (rgb[..., 0] == rgb[..., 2]).all()


def test_float_image_in_unit_range_is_scaled(tmp_path):
    path = _save(tmp_path, "float.tif", Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32)))
    assert np.asarray(open_rgb(path))[0, :, 1].tolist() == [0, 128, 255]


def test_transparency_is_composited_over_white(tmp_path):
    rgba = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    rgba.putpixel((1, 0), (255, 0, 0, 255))
    rgb = np.asarray(open_rgb(_save(tmp_path, "t.png", rgba)))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 1]) == (255, 0, 0)
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    palette.putpixel((1, 0), 1)
    rgb = np.asarray(open_rgb(_save(tmp_path, "p.png", palette, transparency=0)))
    assert tuple(rgb[0, 0]) == (255, 255, 255) and tuple(rgb[0, 1]) == (0, 255, 0)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (30, 10), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 5, 10))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display = rotate 90 degrees clockwise
    path = _save(tmp_path, "rot.jpg", image, exif=exif, quality=95)
    header = read_header(path)
    upright = open_rgb(path)
    assert (header.width, header.height) == upright.size == (10, 30)
    pixels = np.asarray(upright)
    assert pixels[:5].mean() > 200 and pixels[-5:].mean() < 50  # the left band is now on top


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("empty.jpg", b"", "empty file"),
        ("text.png", b"this is not an image\n" * 10, "not an image"),
    ],
)
def test_broken_files_give_reasons(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    for reader in (read_header, open_rgb, open_label_map):
        with pytest.raises(UnreadableImage, match=reason):
            reader(path)


def test_truncated_jpeg_fails_at_decode(tmp_path):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="JPEG")
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    assert read_header(path).width == 128  # the header alone looks fine
    with pytest.raises(UnreadableImage, match="cannot decode"):
        open_rgb(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _save(tmp_path, "big.png", Image.new("L", (100, 100)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(UnreadableImage, match="decompression-bomb"):
        read_header(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # beyond twice the limit PIL itself refuses
    with pytest.raises(UnreadableImage, match="too large"):
        open_rgb(path)

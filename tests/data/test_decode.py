from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from headstart.data.decode import IMAGE_EXTENSIONS, check_image, image_size, is_image_file, open_rgb
from headstart.errors import DataError


def _halves(width=40, height=20):
    """Left half red, right half blue."""
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array)


def test_extensions_case_insensitive_and_hidden():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"} == set(IMAGE_EXTENSIONS)
    assert is_image_file("a/B.JPG") and is_image_file("x.TiFf")
    assert not is_image_file("notes.txt") and not is_image_file(".hidden.jpg")


def test_exif_orientation_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # display = rotate 90 degrees clockwise
    _halves().save(path, exif=exif.tobytes(), quality=95)
    image = open_rgb(path)
    assert image.mode == "RGB" and image.size == (20, 40)
    top, bottom = np.asarray(image)[2, 10], np.asarray(image)[-3, 10]
    assert top[0] > 200 and top[2] < 60  # the red left half is now on top
    assert bottom[2] > 200 and bottom[0] < 60
    assert image_size(path) == (20, 40)


def test_palette_with_transparency_composited_on_white(tmp_path):
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 4, 8))
    path = tmp_path / "p.png"
    image.save(path, transparency=0)
    array = np.asarray(open_rgb(path))
    assert tuple(array[0, 0]) == (255, 0, 0)
    assert tuple(array[0, 7]) == (255, 255, 255)  # transparent black -> white, not black


def test_rgba_and_la_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:, :2, 3] = 255  # opaque red left, transparent right
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    array = np.asarray(open_rgb(tmp_path / "a.png"))
    assert tuple(array[0, 0]) == (255, 0, 0) and tuple(array[0, 3]) == (255, 255, 255)
    la = Image.new("LA", (4, 4), (0, 128))
    la.save(tmp_path / "la.png")
    value = np.asarray(open_rgb(tmp_path / "la.png"))[0, 0]
    assert 125 <= value[0] <= 129 and value[0] == value[1] == value[2]


def test_cmyk_grayscale_and_bilevel(tmp_path):
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    red = np.asarray(open_rgb(tmp_path / "c.jpg"))[4, 4]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    Image.new("L", (8, 8), 77).save(tmp_path / "g.png")
    assert tuple(np.asarray(open_rgb(tmp_path / "g.png"))[0, 0]) == (77, 77, 77)
    Image.new("1", (8, 8), 1).save(tmp_path / "b.bmp")
    assert tuple(np.asarray(open_rgb(tmp_path / "b.bmp"))[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_scaled_not_clipped(tmp_path, suffix):
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    array = np.asarray(open_rgb(path))
    assert array.dtype == np.uint8 and array.shape == (32, 64, 3)
    assert array.min() == 0 and array.max() == 255
    assert 110 < np.median(array) < 145  # clipping at 255 would give a median of 255


def test_32bit_integer_mode(tmp_path):
    ramp = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.int32)
    image = Image.fromarray(ramp, "I")
    array = np.asarray(open_rgb_from(image, tmp_path / "i.tif"))
    assert array.max() == 255 and 100 < np.median(array) < 155


def open_rgb_from(image, path):
    image.save(path)
    return open_rgb(path)


def test_gif_first_frame(tmp_path):
    frames = [Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    pixel = np.asarray(open_rgb(path))[4, 4]
    assert pixel[0] > 200 and pixel[2] < 60


def test_truncated_jpeg_raises_naming_file(tmp_path, image_writer):
    path = image_writer(tmp_path / "ok.jpg", size=(64, 64))
    data = path.read_bytes()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"broken\.jpg.*truncated"):
        open_rgb(broken)
    size, reason = check_image(broken)
    assert size is None and "truncated" in reason
    assert check_image(path) == ((64, 64), None)


def test_garbage_and_missing_files(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=r"Cannot read the image .*fake\.png"):
        open_rgb(tmp_path / "fake.png")
    with pytest.raises(DataError, match=r"gone\.png.*does not exist"):
        open_rgb(tmp_path / "gone.png")
    with pytest.raises(DataError, match=r"fake\.png"):
        image_size(tmp_path / "fake.png")

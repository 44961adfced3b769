"""The one decoder and the one preprocessing function."""

import io

import numpy as np
import pytest
from PIL import Image


from maskdetect.core.images import ImageDecodeError, decode_image, decode_reduced, preprocess
from maskdetect.training.inputs import load_folder
from tests.samples import photo


def _bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _modes():
    rgb = photo(3, size=(64, 48))
    rgba = rgb.convert("RGBA")
    palette_transparent = rgb.convert("P")
    palette_transparent.info["transparency"] = 0
    sixteen = Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257)
    assert sixteen.mode == "I;16"
    return {
        "RGB": rgb,
        "RGBA": rgba,
        "LA": rgb.convert("LA"),
        "P": rgb.convert("P"),
        "P+transparency": palette_transparent,
        "L": rgb.convert("L"),
        "1": rgb.convert("1"),
        "I;16": sixteen,
        "I": rgb.convert("I"),
        "CMYK": rgb.convert("CMYK"),
    }


@pytest.mark.parametrize("mode", list(_modes()))
@pytest.mark.parametrize("channels", [3, 1])
def test_every_mode_becomes_model_input(mode, channels):
    array = preprocess(_modes()[mode], size=32, channels=channels)
    assert array.shape == (32, 32, channels) and array.dtype == np.float32
    assert 0.0 <= array.min() <= array.max() <= 1.0
    assert array.std() > 0.01  # not a blank image


def test_sixteen_bit_is_scaled_not_clipped():
    grey = np.asarray(preprocess(_modes()["L"], size=32, channels=1))
    sixteen = np.asarray(preprocess(_modes()["I;16"], size=32, channels=1))
    assert np.abs(grey - sixteen).max() < 2 / 255


def test_a_float_tiff_with_nan_and_infinities_is_read_without_a_warning(recwarn):
    values = np.linspace(0.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    values[0, :4] = [np.nan, np.inf, -np.inf, np.nan]
    array = preprocess(_bytes(Image.fromarray(values, mode="F"), "TIFF"), size=32, channels=1)
    assert [str(w.message) for w in recwarn] == []
    assert np.isfinite(array).all() and array[0, :4].max() == 0.0  # non-finite pixels black
    assert array[31, 31, 0] == pytest.approx(1.0, abs=1 / 255)  # the rest scaled as a 0-1 float image


def test_transparent_pixels_become_white():
    clear = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    assert np.allclose(preprocess(clear, size=4), 1.0)


def test_exif_orientation_is_applied():
    left_red = Image.new("RGB", (40, 20), (0, 0, 255))
    left_red.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 3  # rotated 180 degrees: red ends up on the right
    array = preprocess(_bytes(left_red, "JPEG", exif=exif, quality=95), size=8)
    assert array[4, 1, 2] > 0.8 and array[4, 6, 0] > 0.8


def test_animated_gif_uses_the_first_frame():
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 255, 0))]
    content = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert preprocess(content, size=4)[..., 0].mean() > 0.9


def test_bytes_path_and_pil_inputs_agree(tmp_path):
    content = _bytes(photo(5), "PNG")
    (tmp_path / "a.png").write_bytes(content)
    from_bytes = preprocess(content)
    assert np.array_equal(from_bytes, preprocess(tmp_path / "a.png"))
    assert np.array_equal(from_bytes, preprocess(decode_image(content)))


def test_not_an_image_is_a_decode_error():
    with pytest.raises(ImageDecodeError):
        preprocess(b"this is not an image")


ALLOWED = {"JPEG": {}, "PNG": {}, "GIF": {}, "WEBP": {}, "BMP": {}, "TIFF": {}, "MPO": {}}  # MPO: a camera's JPEG
# Formats Pillow can write (so can read) that the service does not promise; EPS would run Ghostscript.
REFUSED = ["ICO", "PCX", "TGA", "EPS", "SGI", "PPM", "QOI", "DDS", "IM", "JPEG2000", "ICNS", "SPIDER", "AVIF"]


@pytest.mark.parametrize("fmt", ALLOWED)
def test_the_promised_formats_decode(fmt):
    image = decode_image(_bytes(photo(4, size=(40, 30)), fmt))
    assert image.size == (40, 30) and image.format == ("JPEG" if fmt == "MPO" else fmt)


@pytest.mark.parametrize("fmt", REFUSED)
def test_formats_beyond_the_promised_ones_are_not_parsed(fmt):
    data = _bytes(photo(4, size=(40, 30)), fmt)
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow alone would parse it
    with pytest.raises(ImageDecodeError, match="not a readable image"):
        decode_image(data)


def test_the_decode_error_promises_exactly_the_allowed_formats():
    from maskdetect.core.errors import status_and_message
    from maskdetect.core.images import IMAGE_FORMATS

    status, message = status_and_message(ImageDecodeError("x"))
    promised = message[message.index("(") + 1 : message.index(")")].replace(" or ", ", ").upper().split(", ")
    assert status == 422 and sorted(promised) == sorted(IMAGE_FORMATS)


def test_training_and_serving_inputs_are_identical(observations, tmp_path):
    """The loader used for training and a service given the file's bytes see the same array."""
    folder = tmp_path / "split"
    for label, name in (("with_mask", "0-with-mask.jpg"), ("without_mask", "augmented_image_219.jpg")):
        (folder / label).mkdir(parents=True)
        (folder / label / name).write_bytes((observations / label / name).read_bytes())
    images, labels, paths = load_folder(folder, size=100, progress=False)
    assert labels.tolist() == [0, 2]  # indices into LABELS: with_mask, without_mask
    for image, path in zip(images, paths):
        assert np.array_equal(image, preprocess(path.read_bytes(), size=100))


def _jpeg(size) -> bytes:
    buffer = io.BytesIO()
    photo(3, size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("size", [(2600, 1950), (1950, 2600), (1300, 500)])
def test_a_large_jpeg_is_decoded_reduced_with_its_longer_side_kept_above_the_request(size):
    image, scale = decode_reduced(_jpeg(size), 640)
    assert max(image.size) >= 640 and max(image.size) < max(size)
    assert scale == pytest.approx(max(size) / max(image.size))
    assert image.width / image.height == pytest.approx(size[0] / size[1], rel=0.02)


def test_a_jpeg_already_small_or_a_png_is_decoded_at_full_size():
    assert decode_reduced(_jpeg((800, 600)), 640) == (decode_image(_jpeg((800, 600))), 1.0)
    buffer = io.BytesIO()
    photo(3, (2000, 1500)).save(buffer, "PNG")
    image, scale = decode_reduced(buffer.getvalue(), 640)
    assert image.size == (2000, 1500) and scale == 1.0


def test_a_reduced_decode_keeps_exif_orientation():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: displayed portrait
    photo(3, (2400, 1600)).save(buffer, "JPEG", exif=exif)
    image, scale = decode_reduced(buffer.getvalue(), 640)
    assert image.height > image.width and max(image.size) >= 640
    assert scale == pytest.approx(2400 / max(image.size))

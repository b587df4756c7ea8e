"""The dependency-free PNG encoder and raster plots."""
import struct
import zlib

import numpy as np
import pytest

from worldsim.eval import font, plots, png


def _decode_sub_filtered_png(data: bytes) -> np.ndarray:
    """Just enough of a PNG decoder for our own encoder's output (checks every CRC)."""
    assert data[:8] == png.PNG_SIGNATURE
    offset, chunks = 8, {}
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 1).all()  # the Sub filter on every scanline
    pixels = rows[:, 1:].astype(np.int64)
    for x in range(3, pixels.shape[1]):
        pixels[:, x] = (pixels[:, x] + pixels[:, x - 3]) % 256
    return pixels.reshape(height, width, 3).astype(np.uint8)


def test_png_round_trips_pixels_exactly():
    image = np.random.default_rng(0).integers(0, 256, (7, 13, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_decode_sub_filtered_png(png.encode_png(image)), image)


def test_png_is_readable_by_pygame(tmp_path):
    pygame = pytest.importorskip("pygame")
    image = np.random.default_rng(1).integers(0, 256, (5, 9, 3), dtype=np.uint8)
    path = tmp_path / "image.png"
    png.write_png(path, image)
    loaded = pygame.surfarray.array3d(pygame.image.load(str(path))).transpose(1, 0, 2)
    np.testing.assert_array_equal(loaded, image)
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]  # no temporary file left


def test_png_rejects_bad_images():
    with pytest.raises(ValueError, match="uint8"):
        png.encode_png(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="H, W, 3"):
        png.encode_png(np.zeros((4, 4), np.uint8))


def test_text_mask_size_and_fallback_glyph():
    mask = font.text_mask("ab?", scale=2)
    assert mask.shape == (14, font.text_width("ab?", scale=2))
    np.testing.assert_array_equal(font.text_mask("~"), font.text_mask("?"))
    np.testing.assert_array_equal(font.text_mask("a"), font.text_mask("A"))


def test_nice_ticks_are_round_and_cover_the_range():
    assert plots.nice_ticks(0.0, 1.0) == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ticks = plots.nice_ticks(17.3, 31.2)
    assert ticks[0] >= 17.3 and ticks[-1] <= 31.2 and len(ticks) >= 3


def test_line_plot_draws_each_series_in_its_colour_and_skips_nan():
    series = [
        plots.Series("a", [1, 8, 32], [30.0, 25.0, np.nan]),
        plots.Series("b", [1, 8, 32], [31.0, 29.0, 27.0]),
    ]
    image = plots.line_plot(series, "t", "x", "y", plots.PlotStyle(width=320, height=200, log2_x=True))
    assert image.shape == (200, 320, 3) and image.dtype == np.uint8
    for colour in plots.PALETTE[:2]:
        assert (image == colour).all(axis=-1).sum() > 50


def test_line_plot_without_finite_values_says_no_data():
    image = plots.line_plot([plots.Series("a", [0, 1], [np.nan, np.nan])], "t", "x", "y")
    assert (image != 255).any()


def test_film_strip_places_frames_and_checks_labels():
    frames = np.full((3, 8, 8, 3), 7, dtype=np.uint8)
    strip = plots.film_strip([frames, frames + 1], ["truth", "gen"], ["0", "1", "2"], scale=2)
    assert (strip == 7).all(axis=-1).sum() == 3 * 16 * 16
    assert (strip == 8).all(axis=-1).sum() == 3 * 16 * 16
    with pytest.raises(ValueError, match="label"):
        plots.film_strip([frames], ["a", "b"], ["0", "1", "2"])


def test_stack_keeps_every_image():
    a, b = plots.blank(4, 6, (1, 2, 3)), plots.blank(5, 3, (4, 5, 6))
    vertical = plots.stack([a, b], gap=2)
    assert vertical.shape == (11, 6, 3)
    assert (vertical[:4, :6] == (1, 2, 3)).all() and (vertical[6:, :3] == (4, 5, 6)).all()
    assert plots.stack([a, b], vertical=False, gap=0).shape == (5, 9, 3)


def test_tick_labels_tell_neighbours_apart():
    assert plots.tick_labels([12.78, 12.8, 12.82]) == ["12.78", "12.80", "12.82"]
    assert plots.tick_labels([0.0, 50.0, 100.0]) == ["0", "50", "100"]
    assert plots.tick_labels([0.0, 0.5, 1.0]) == ["0.0", "0.5", "1.0"]

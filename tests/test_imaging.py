"""The dependency-free PNG encoder and bitmap font (worldsim.imaging)."""
import struct
import zlib

import numpy as np
import pytest

from worldsim.imaging import font, png


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


def test_draw_text_paints_only_the_glyph_pixels():
    image = np.zeros((9, 20, 3), np.uint8)
    font.draw_text(image, "HI", 1, 1, (255, 0, 0))
    mask = font.text_mask("HI")
    np.testing.assert_array_equal(image[1:1 + mask.shape[0], 1:1 + mask.shape[1], 0] == 255, mask)
    assert image[..., 1:].max() == 0


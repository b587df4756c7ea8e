"""The README film strip and its helpers: PNG encoding and the bitmap font."""
import struct
import zlib

import numpy as np
import pytest

from worldsim.envs.explorer import events
from worldsim.envs.explorer.filmstrip import compose, event_frames, main
from worldsim.envs.explorer.font import GLYPH_HEIGHT, text_mask
from worldsim.envs.explorer.png import encode_png


def decode_png(data: bytes) -> np.ndarray:
    """Enough of a PNG decoder for encode_png's output (RGB, 8 bit, filter 0)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    idat_length = struct.unpack(">I", data[33:37])[0]
    assert data[37:41] == b"IDAT"
    raw = np.frombuffer(zlib.decompress(data[41:41 + idat_length]), np.uint8).reshape(height, -1)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(height, width, 3)


def test_png_round_trip_and_bad_input():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(image)), image)
    with pytest.raises(ValueError):
        encode_png(image.astype(np.float32))


def test_font_draws_known_characters_and_rejects_others():
    mask = text_mask("AB 1", scale=2)
    assert mask.shape == (2 * GLYPH_HEIGHT, 2 * (4 * 6 - 1))
    assert mask[:, :10].any() and not mask[:, 24:34].any()  # the space is blank
    with pytest.raises(ValueError, match="glyph"):
        text_mask("€")


def test_film_strip_shows_every_event(tmp_path):
    frames = event_frames(seed=156, steps=1, size=32)
    assert set(frames) == set(events.EVENT_NAMES)
    assert not np.array_equal(frames["night"], frames["day"])
    image = compose(frames, scale=2)
    assert image.dtype == np.uint8
    assert image.shape[0] > 6 * 64 and image.shape[1] > 4 * 64  # six group rows, up to four events
    colours = {tuple(pixel) for pixel in image.reshape(-1, 3)}
    for name in ("night", "snow", "lava_eruption"):
        assert {tuple(pixel) for pixel in frames[name].reshape(-1, 3)} <= colours, name
    out = tmp_path / "strip.png"
    main(["--seed", "156", "--scale", "1", "--out", str(out)])
    assert decode_png(out.read_bytes()).shape[2] == 3

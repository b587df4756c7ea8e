"""The README film strip: one world under every event."""
import numpy as np
import pygame

from worldsim.envs.explorer import events
from worldsim.envs.explorer.filmstrip import compose, event_frames, main


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
    written = pygame.surfarray.array3d(pygame.image.load(str(out))).transpose(1, 0, 2)
    np.testing.assert_array_equal(written, compose(event_frames(seed=156), scale=1))

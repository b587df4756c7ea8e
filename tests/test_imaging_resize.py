"""Area resizing and cropping of recorded frames (worldsim.imaging.resize)."""
import numpy as np
import pytest

from worldsim.imaging.resize import area_weights, crop_frames, resize_frames


def test_area_weights_share_each_target_pixel_among_the_source_pixels_it_covers():
    np.testing.assert_allclose(area_weights(3, 2), [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    for source, target in ((210, 64), (41, 32), (27, 32), (5, 5)):
        np.testing.assert_allclose(area_weights(source, target).sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="positive"):
        area_weights(0, 4)


def test_halving_averages_two_by_two_blocks_and_doubling_repeats_pixels():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 8, 6, 3), dtype=np.uint8)
    blocks = frames.reshape(2, 4, 2, 3, 2, 3).astype(float).mean(axis=(2, 4))
    np.testing.assert_array_equal(resize_frames(frames, 4, 3), np.rint(blocks).astype(np.uint8))
    np.testing.assert_array_equal(resize_frames(frames, 16, 12), frames.repeat(2, axis=1).repeat(2, axis=2))


def test_a_flat_frame_stays_flat_at_any_size_and_bad_input_is_refused():
    frame = np.full((27, 41, 3), (10, 200, 77), np.uint8)
    resized = resize_frames(frame, 32, 32)
    assert resized.shape == (32, 32, 3) and (resized == (10, 200, 77)).all()
    with pytest.raises(ValueError, match="uint8"):
        resize_frames(frame.astype(np.float32), 8, 8)


def test_crop_removes_rows_and_columns_or_says_what_is_wrong():
    frames = np.zeros((4, 10, 12, 3), np.uint8)
    assert crop_frames(frames, 1, 2, 3, 4).shape == (4, 7, 5, 3)
    with pytest.raises(ValueError, match="leave pixels"):
        crop_frames(frames, 5, 5, 0, 0)

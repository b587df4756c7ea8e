"""Raster plots drawn on numpy images."""

import numpy as np
import pytest

from worldsim.eval import plots


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

"""Dependency-free pictures: a PNG encoder and a 5x7 bitmap font, shared by the film strip, the
evaluation plots and `worldsim rollout`."""

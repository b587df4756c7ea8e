"""Datasets: the format, a writer, a validating reader, clip sampling, generation and
recording. The core is numpy only (no torch), so generator workers stay light."""
from worldsim.data.clips import Clip, ClipSampler, clip_starts
from worldsim.data.format import FORMAT_VERSION, NO_EVENT, DatasetError, ShardArrays
from worldsim.data.reader import Dataset
from worldsim.data.writer import DatasetWriter

__all__ = [
    "Clip",
    "ClipSampler",
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "FORMAT_VERSION",
    "NO_EVENT",
    "ShardArrays",
    "clip_starts",
]

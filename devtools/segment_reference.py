"""The segmenter's kernels as they were before the fast ones in model/segment.py: the same steps through scipy's
and numpy's general calls. tests/model/test_segment_kernels.py holds the fast kernels to these; the recognizer
benchmark times the segmenter on both, side by side."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage

from model import segment


def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    if abs(angle) < 1e-3:
        return image
    return ndimage.rotate(image, angle, reshape=True, order=1, mode="constant", cval=0.0, prefilter=False)


def open_line(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    length |= 1
    counts = ndimage.uniform_filter1d(mask.astype(np.float32), length, axis=axis, mode="constant")
    eroded = counts > 1 - 0.5 / length  # every pixel in the window is set
    return ndimage.uniform_filter1d(eroded.astype(np.float32), length, axis=axis, mode="constant") > 0.5 / length


def median_below(values: np.ndarray, level: float) -> bool:
    return bool(np.median(values) < level)


def percentile_of_nonnegative(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def grow_rows(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=np.ones((3, 1), bool))


def grow_columns(mask: np.ndarray) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=np.ones((1, 3), bool))


KERNELS: dict[str, Callable[..., object]] = {
    "_rotate": rotate,
    "_open_line": open_line,
    "_median_below": median_below,
    "_percentile_of_nonnegative": percentile_of_nonnegative,
    "_grow_rows": grow_rows,
    "_grow_columns": grow_columns,
}


@contextlib.contextmanager
def library_kernels() -> Iterator[None]:
    """model.segment running on the reference kernels inside the block."""
    saved = {name: getattr(segment, name) for name in KERNELS}
    try:
        for name, kernel in KERNELS.items():
            setattr(segment, name, kernel)
        yield
    finally:
        for name, kernel in saved.items():
            setattr(segment, name, kernel)

"""Bit-packed pixel layouts of high-speed cameras, decoded with numpy.

Pure functions from raw bytes to pixel values; the readers in
:mod:`visualmic.sources.photron` and :mod:`visualmic.sources.phantom` decide
which applies. Every unpacker has its packer here, so that tests can check
round trips on arbitrary values.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import numpy as np

__all__ = [
    "unpack_12bit_msb",
    "pack_12bit_msb",
    "unpack_10bit_msb",
    "pack_10bit_msb",
    "phantom_10bit_to_linear",
]


def unpack_12bit_msb(packed: np.ndarray) -> np.ndarray:
    """Unpack 12-bit pixels stored two in three bytes, most significant bits first.

    Photron's packed 12-bit ``.mraw`` layout: bytes ``b0 b1 b2`` hold
    ``p0 = b0 << 4 | b1 >> 4`` and ``p1 = (b1 & 15) << 8 | b2``.

    Parameters
    ----------
    packed : ndarray of uint8
        ``(..., 3 * k)`` bytes.

    Returns
    -------
    ndarray of uint16
        ``(..., 2 * k)`` pixel values in 0-4095.

    Examples
    --------
    >>> unpack_12bit_msb(np.array([0xAB, 0xCD, 0xEF], np.uint8)).tolist()
    [2748, 3567]
    """
    triplets = packed.reshape(*packed.shape[:-1], -1, 3).astype(np.uint16)
    out = np.empty((*triplets.shape[:-1], 2), np.uint16)
    out[..., 0] = (triplets[..., 0] << 4) | (triplets[..., 1] >> 4)
    out[..., 1] = ((triplets[..., 1] & 0x0F) << 8) | triplets[..., 2]
    return out.reshape(*packed.shape[:-1], -1)


def pack_12bit_msb(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`unpack_12bit_msb` (an even number of values per row).

    Examples
    --------
    >>> pack_12bit_msb(np.array([2748, 3567])).tolist()
    [171, 205, 239]
    """
    pairs = np.asarray(values, dtype=np.uint16).reshape(*np.shape(values)[:-1], -1, 2)
    out = np.empty((*pairs.shape[:-1], 3), np.uint8)
    out[..., 0] = pairs[..., 0] >> 4
    out[..., 1] = ((pairs[..., 0] & 0x0F) << 4) | (pairs[..., 1] >> 8)
    out[..., 2] = pairs[..., 1] & 0xFF
    return out.reshape(*pairs.shape[:-2], -1)


def unpack_10bit_msb(packed: np.ndarray) -> np.ndarray:
    """Unpack 10-bit codes stored four in five bytes, most significant bits first.

    Phantom's packed 10-bit ``.cine`` layout (``biCompression`` 256): the five
    bytes read as one big-endian 40-bit number hold four codes, the first in
    the top ten bits.

    Parameters
    ----------
    packed : ndarray of uint8
        ``(..., 5 * k)`` bytes.

    Returns
    -------
    ndarray of uint16
        ``(..., 4 * k)`` codes in 0-1023.

    Examples
    --------
    >>> unpack_10bit_msb(np.array([0xFF, 0xC0, 0x00, 0x00, 0x01], np.uint8)).tolist()
    [1023, 0, 0, 1]
    """
    groups = packed.reshape(*packed.shape[:-1], -1, 5).astype(np.uint64)
    word = np.zeros(groups.shape[:-1], np.uint64)
    for i in range(5):
        word = (word << np.uint64(8)) | groups[..., i]
    shifts = np.array([30, 20, 10, 0], np.uint64)
    codes = (word[..., None] >> shifts) & np.uint64(0x3FF)
    return codes.astype(np.uint16).reshape(*packed.shape[:-1], -1)


def pack_10bit_msb(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`unpack_10bit_msb` (a multiple of four codes per row).

    Examples
    --------
    >>> pack_10bit_msb(np.array([1023, 0, 0, 1])).tolist()
    [255, 192, 0, 0, 1]
    """
    quads = np.asarray(codes, dtype=np.uint64).reshape(*np.shape(codes)[:-1], -1, 4)
    shifts = np.array([30, 20, 10, 0], np.uint64)
    word = np.bitwise_or.reduce(quads << shifts, axis=-1)
    out = np.empty((*word.shape, 5), np.uint8)
    for i in range(5):
        out[..., i] = (word >> np.uint64(8 * (4 - i))) & np.uint64(0xFF)
    return out.reshape(*quads.shape[:-2], -1)


@cache
def _phantom_10bit_table() -> np.ndarray:
    text = resources.files("visualmic").joinpath("data", "phantom_10bit_lut.txt").read_text()
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    table = np.array(" ".join(rows).split(), dtype=np.uint16)
    if table.size != 1024:
        raise RuntimeError(f"the bundled Phantom 10-bit table has {table.size} entries, not 1024")
    table.flags.writeable = False
    return table


def phantom_10bit_to_linear(codes: np.ndarray) -> np.ndarray:
    """Linear 12-bit intensities of Phantom's companded 10-bit codes.

    Phantom cameras that record "10-bit packed" compress 12-bit sensor values
    with a near-logarithmic curve; this is Vision Research's 1024-entry table
    back to linear 0-4095 (the values their SDK and cine-handler produce).
    Linear intensities are what the motion stage's noise model assumes.

    Examples
    --------
    >>> phantom_10bit_to_linear(np.array([0, 1, 1023])).tolist()
    [2, 5, 4095]
    """
    return _phantom_10bit_table()[np.asarray(codes)]

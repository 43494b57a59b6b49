"""Perceptual hashes of one image: pHash, dHash, the fine 255-bit hash and its centre crops, the tone.

What :mod:`tfod_tools.data.dedup` compares to find near duplicates (the pairs, thresholds measured
on sets and the report live there; this module is the per-image part, one decode per image):

- pHash (:func:`phash`, the default): the grayscale image reduced to a 32x32 thumbnail (box
  filter), its 2-D DCT (``cv2.dct``), the 8x8 lowest frequencies; bit = coefficient above the
  median of the 63 non-DC ones. 64 bits.
- dHash (:func:`dhash`): a 9x8 thumbnail; bit = pixel brighter than its right neighbour. 64 bits.
- :func:`signature`: the pHash, a fine 255-bit hash of a 64x64 thumbnail and those of its centre
  crops (:data:`CROP_FRACTIONS`), the image's detail and its tone (:func:`same_tone`).

Both thresholds compare values of the same image against each other, so a change of brightness or
contrast leaves the hash alone. JPEGs are decoded at a reduced scale (``Image.draft``, the
decoder's own 1/2-1/8 DCT scaling) no smaller than 32 px a side.

>>> hamming(0b1011, 0b0001)
2
"""

from __future__ import annotations

import functools
import io
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "CROP_FRACTIONS",
    "FINE_MIN_DETAIL",
    "MAX_MEAN_DIFFERENCE",
    "MAX_STD_RATIO",
    "Method",
    "Signature",
    "bit_counts",
    "dhash",
    "hamming",
    "image_hash",
    "phash",
    "phash_and_tone",
    "same_tone",
    "signature",
]

MAX_MEAN_DIFFERENCE = 12.0
"""Largest difference of thumbnail mean brightness (0-255) in a near pair."""
MAX_STD_RATIO = 1.25
"""Largest ratio of thumbnail contrasts (standard deviations) in a near pair."""
FINE_MIN_DETAIL = 0.22
"""Share of the fine hash's frequencies' magnitude outside the pHash's 8x8 below which an image is
smooth: its fine bits are signs of near-zero coefficients (JPEG noise; a re-encoded copy differs in
30-50 of them), so a pair of smooth images is not confirmed by them: pHash and tone decide
(:func:`confirmed`; measured: smooth upsampled noise 0.13-0.18, photographs-like textures, shapes and
X-ray-like images 0.28 and more)."""
CROP_FRACTIONS = (0.95, 0.90)
"""Centre crops (share of each side kept) whose fine hashes are kept too: a copy cropped by 5 or 10 %
matches its original's crop (:func:`confirmed`)."""
_DRAFT = 32
Method = Literal["phash", "dhash"]


def _gray(encoded: bytes, size: int) -> Any:
    """The decoded image as 8-bit grayscale, JPEGs decoded at the smallest scale >= ``size`` px."""
    from PIL import Image

    img: Image.Image = Image.open(io.BytesIO(encoded))
    if img.format in ("JPEG", "MPO"):
        img.draft("L", (size, size))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA").convert("RGB")  # drop alpha as the API's decoder does (3 channels)
    return img.convert("L")


def _bits(flags: npt.NDArray[np.bool_]) -> int:
    """The flags (row-major) as one integer, first flag the most significant bit."""
    return int.from_bytes(np.packbits(flags.ravel()).tobytes(), "big") >> (-flags.size % 8)


def phash(encoded: bytes) -> int:
    """64-bit DCT perceptual hash of an encoded image (see the module doc); raises on undecodable bytes.

    >>> from PIL import Image
    >>> out = io.BytesIO()
    >>> Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "PNG")
    >>> phash(out.getvalue()) < 2**64
    True
    """
    return phash_and_tone(encoded)[0]


def phash_and_tone(encoded: bytes) -> tuple[int, float, float]:
    """``(pHash, mean, standard deviation)`` of the 32x32 grayscale thumbnail (0-255): one decode.

    The tone (mean and spread) is the second test of a near pair (:data:`MAX_MEAN_DIFFERENCE`,
    :data:`MAX_STD_RATIO`): copies keep it, look-alike unrelated images often do not.
    """
    sig = signature(encoded)
    return sig.phash, sig.mean, sig.std


@functools.cache
def _fine_bases() -> npt.NDArray[np.float32]:
    """``(1 + len(CROP_FRACTIONS), 16, 64)``: the 16 lowest orthonormal DCT-II basis vectors over 64
    px (``cv2.dct``'s), then the same of each centre crop, its linear interpolation folded in: the
    frequencies of thumbnail ``X`` and of its crops are ``B @ X @ B.T``, one batched product."""
    n = 64
    k, x = np.arange(16)[:, None], np.arange(n)[None, :]
    dct = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * x + 1) * k / (2 * n))
    dct[0] /= np.sqrt(2.0)
    bases = [dct]
    rows = np.arange(n)
    for keep in CROP_FRACTIONS:  # crop pixel x samples the thumbnail at this position (centres kept)
        src = keep * (rows - (n - 1) / 2) + (n - 1) / 2
        lo = np.floor(src).astype(int)
        interp = np.zeros((n, n))
        np.add.at(interp, (rows, lo), 1 - (src - lo))
        np.add.at(interp, (rows, np.minimum(lo + 1, n - 1)), src - lo)
        bases.append(dct @ interp)
    return np.stack(bases).astype(np.float32)


def _fine(pixels: npt.NDArray[np.float32]) -> tuple[list[int], float]:
    """The 255-bit fine hashes of a 64x64 thumbnail and of its centre crops, and the thumbnail's
    detail (see :data:`FINE_MIN_DETAIL`)."""
    bases = _fine_bases()
    freq = bases @ pixels @ bases.transpose(0, 2, 1)  # (1 + crops, 16, 16)
    low = freq.reshape(len(bases), 256)[:, 1:]
    flags = low > np.partition(low, 127, axis=1)[:, 127:128]  # above the median of 255
    size = np.abs(freq[0])
    total = float(size.sum() - size[0, 0])
    detail = (total - float(size[:8, :8].sum() - size[0, 0])) / total if total > 0 else 0.0
    return [_bits(row) for row in flags], detail


def _median(values: npt.NDArray[np.float32]) -> float:
    """The median of an odd number of values (the middle one; faster than np.median on 63 or 255)."""
    k = len(values) // 2
    return float(np.partition(values, k)[k])


class Signature(NamedTuple):
    """What one decode of an image gives (:func:`signature`)."""

    phash: int
    """64-bit pHash (DC bit kept, as :func:`phash` returns it)."""
    fine: int
    """255-bit pHash of a 64x64 thumbnail (16x16 frequencies less DC)."""
    crops: tuple[int, ...]
    """Fine hashes of the centre crops of :data:`CROP_FRACTIONS`, in that order."""
    detail: float
    """Share of fine frequencies beyond the pHash's (:data:`FINE_MIN_DETAIL`)."""
    mean: float
    """Mean brightness of the 32x32 grayscale thumbnail (0-255)."""
    std: float
    """Its standard deviation."""


def signature(encoded: bytes) -> Signature:
    """The hashes and tone of an encoded image from one decode: the 64-bit pHash, the fine 255-bit
    hash and those of its centre crops (the confirmation of near pairs in look-alike and small sets:
    :func:`confirmed`), and the tone. A crop is resampled from the 64x64 thumbnail with sub-pixel
    precision (a 5 % crop of a 32 px decode is 1.6 px: whole pixels would shift it).

    >>> from PIL import Image
    >>> out = io.BytesIO()
    >>> Image.effect_noise((80, 80), 60).save(out, "PNG")
    >>> coarse, fine, crops, detail, mean, std = signature(out.getvalue())
    >>> coarse < 2**64, fine < 2**255, len(crops) == len(CROP_FRACTIONS), 0 < std < mean < 255
    (True, True, True, True)
    >>> detail > FINE_MIN_DETAIL  # noise has fine detail
    True
    """
    import cv2

    gray = np.asarray(_gray(encoded, _DRAFT), dtype=np.uint8)
    big = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    pixels = cv2.resize(big, (32, 32), interpolation=cv2.INTER_AREA)  # area averages: box thumbnails
    low = np.asarray(cv2.dct(pixels), dtype=np.float32)[:8, :8].ravel()
    coarse = _bits(low > _median(low[1:]))
    (fine, *crops), detail = _fine(big)
    return Signature(coarse, fine, tuple(crops), detail, float(pixels.mean()), float(pixels.std()))


def same_tone(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two thumbnails' ``(mean, std)`` agree as a copy's do (see :func:`phash_and_tone`).

    >>> same_tone((120.0, 40.0), (124.0, 43.0)), same_tone((216.0, 59.4), (200.0, 43.1))
    (True, False)
    """
    spread = max(a[1], b[1]) <= MAX_STD_RATIO * min(a[1], b[1]) + 2.0  # + 2: flat images
    return abs(a[0] - b[0]) <= MAX_MEAN_DIFFERENCE and spread


def dhash(encoded: bytes) -> int:
    """64-bit difference hash: a 9x8 grayscale thumbnail, bit = pixel brighter than its right neighbour.

    >>> from PIL import Image
    >>> out = io.BytesIO()
    >>> Image.linear_gradient("L").save(out, "PNG")  # brightness grows downwards: no left/right change
    >>> dhash(out.getvalue())
    0
    """
    from PIL import Image

    thumb = _gray(encoded, _DRAFT).resize((9, 8), Image.Resampling.BOX)
    pixels = np.asarray(thumb, dtype=np.int16)
    return _bits(pixels[:, :-1] > pixels[:, 1:])


def image_hash(encoded: bytes, method: Method = "phash") -> int:
    """The perceptual hash of an encoded image (``phash`` or ``dhash``), an int below 2**64."""
    return phash(encoded) if method == "phash" else dhash(encoded)


def hamming(a: int, b: int) -> int:
    """Bits in which two hashes differ.

    >>> hamming(0b1011, 0b0001)
    2
    """
    return (a ^ b).bit_count()


_BYTE_BITS = np.array([bin(k).count("1") for k in range(256)], dtype=np.uint8)


def bit_counts(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """Set bits of each uint64 (elementwise :func:`hamming` of XORed hashes): ``np.bitwise_count`` on
    numpy >= 2, a byte table on numpy 1.26 (the TF 2.15-2.17 stacks).

    >>> bit_counts(np.array([[0, 1], [3, 2**64 - 1]], dtype=np.uint64)).tolist()
    [[0, 1], [2, 64]]
    """
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(values), dtype=np.uint8)
    return _table_bit_counts(values)


def _table_bit_counts(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    """:func:`bit_counts` without ``np.bitwise_count``: each byte's bits from a 256-entry table."""
    as_bytes = np.ascontiguousarray(values, dtype=np.uint64).view(np.uint8).reshape(*values.shape, 8)
    return _BYTE_BITS[as_bytes].sum(axis=-1, dtype=np.uint8)

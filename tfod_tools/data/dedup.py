"""Exact and near-duplicate images, within one record set and between two (train/eval leakage).

Exact duplicates have the same encoded bytes (sha256). Near duplicates are the same picture
re-saved: re-encoded at another JPEG quality, resized, slightly cropped. They are found by a
perceptual hash of the decoded image and the Hamming distance between hashes:

- pHash (:func:`phash`, the default): the grayscale image reduced to a 32x32 thumbnail (box
  filter), its 2-D DCT (``cv2.dct``), the 8x8 lowest frequencies; bit = coefficient above the
  median of the 63 non-DC ones. 64 bits.
- dHash (:func:`dhash`): a 9x8 thumbnail; bit = pixel brighter than its right neighbour. 64 bits.

Both thresholds compare values of the same image against each other, so a change of brightness or
contrast leaves the hash alone. JPEGs are decoded at a reduced scale (``Image.draft``, the
decoder's own 1/2-1/8 DCT scaling) no smaller than 64 px a side: hashing costs about what decoding
costs, not more (``scripts/bench_dedup.py``; numbers in docs/benchmarks.md).

Two images are near duplicates when their pHashes differ in at most :data:`DEFAULT_MAX_DISTANCE`
bits. That default was measured (``scripts/bench_dedup.py``, docs/benchmarks.md): it finds
re-encoded (JPEG quality 60), resized (0.5x) and 5 %-cropped copies of textured synthetic images
while unrelated images stay farther apart.

>>> import io
>>> import numpy as np
>>> from PIL import Image
>>> rng = np.random.default_rng(0)
>>> def jpeg(pixels, quality=95):
...     out = io.BytesIO()
...     Image.fromarray(pixels).save(out, "JPEG", quality=quality)
...     return out.getvalue()
>>> base = (rng.random((8, 8, 3)) * 255).astype(np.uint8).repeat(16, 0).repeat(16, 1)
>>> other = (rng.random((8, 8, 3)) * 255).astype(np.uint8).repeat(16, 0).repeat(16, 1)
>>> a, b, c = jpeg(base), jpeg(base, quality=60), jpeg(other)
>>> hamming(image_hash(a), image_hash(b)) <= DEFAULT_MAX_DISTANCE
True
>>> hamming(image_hash(a), image_hash(c)) > DEFAULT_MAX_DISTANCE
True
>>> seen = ImageHashes()
>>> for k, data in enumerate([a, b, c, a]):
...     _ = seen.add("train.record", k, f"img-{k}", data)
>>> [(p.a.index, p.b.index, p.exact) for p in find_duplicates(seen)]
[(0, 3, True), (0, 1, False), (1, 3, False)]
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "MAX_LISTED_PAIRS",
    "DuplicatePair",
    "ImageHashes",
    "ImageRef",
    "dhash",
    "duplicates_report",
    "find_duplicates",
    "find_leaks",
    "hamming",
    "hash_records",
    "image_hash",
    "near_pairs",
    "phash",
]

DEFAULT_MAX_DISTANCE = 10
"""Largest pHash Hamming distance (of 64 bits) still called a near duplicate (measured, see module doc)."""
MAX_LISTED_PAIRS = 50
"""Pairs listed per kind in a report (all are counted)."""
_DRAFT = 64
_BLOCK = 2048
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
    return int.from_bytes(np.packbits(flags.ravel()).tobytes(), "big")


def phash(encoded: bytes) -> int:
    """64-bit DCT perceptual hash of an encoded image (see the module doc); raises on undecodable bytes.

    >>> from PIL import Image
    >>> out = io.BytesIO()
    >>> Image.new("RGB", (40, 30), (200, 10, 10)).save(out, "PNG")
    >>> phash(out.getvalue()) < 2**64
    True
    """
    import cv2
    from PIL import Image

    thumb = _gray(encoded, _DRAFT).resize((32, 32), Image.Resampling.BOX)
    pixels = np.asarray(thumb, dtype=np.float32)
    low = np.asarray(cv2.dct(pixels), dtype=np.float32)[:8, :8].ravel()
    median = float(np.median(low[1:]))
    return _bits(low > median)


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


@dataclass(frozen=True)
class ImageRef:
    """Where an image is: record file, record index, source id."""

    file: str
    index: int
    source_id: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready reference."""
        return {"file": self.file, "index": self.index, "source_id": self.source_id}

    def __str__(self) -> str:
        return f"{Path(self.file).name}#{self.index}" + (f" ({self.source_id})" if self.source_id else "")


@dataclass(frozen=True)
class DuplicatePair:
    """Two images that are exact (same bytes) or near (pHash within the threshold) duplicates."""

    a: ImageRef
    b: ImageRef
    distance: int
    exact: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready pair."""
        return {"a": self.a.to_dict(), "b": self.b.to_dict(), "distance": self.distance, "exact": self.exact}


@dataclass
class ImageHashes:
    """The hashes of a record set, one per decodable image (picklable, no image bytes kept)."""

    refs: list[ImageRef] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    undecodable: int = 0

    def __len__(self) -> int:
        return len(self.refs)

    def add(self, file: str | Path, index: int, source_id: str, encoded: bytes) -> bool:
        """Hash one image; False (and counted in ``undecodable``) when it cannot be decoded."""
        try:
            value = phash(encoded)
        except Exception:  # any decoder failure means "no hash"; inspect reports why
            self.undecodable += 1
            return False
        self.refs.append(ImageRef(str(file), int(index), source_id))
        self.hashes.append(value)
        self.digests.append(hashlib.sha256(encoded).digest())
        return True

    def array(self) -> npt.NDArray[np.uint64]:
        """The hashes as a uint64 array."""
        return np.asarray(self.hashes, dtype=np.uint64)


def hash_records(paths: str | Path | Sequence[str | Path]) -> ImageHashes:
    """Hash every image of TF OD API records (files, globs or ``prefix@N``)."""
    from tfod_tools.data.records import iter_image_records

    seen = ImageHashes()
    for file, index, record in iter_image_records(paths):
        seen.add(file, index, record.source_id, record.encoded)
    return seen


def near_pairs(
    a: npt.NDArray[np.uint64],
    b: npt.NDArray[np.uint64] | None = None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
) -> Iterator[tuple[int, int, int]]:
    """``(i, j, distance)`` of every pair within ``max_distance`` bits: ``i < j`` within ``a`` when ``b``
    is None, else ``a[i]`` against ``b[j]``. Blocks of rows against all columns in numpy
    (``np.bitwise_count``), so memory stays at block x n and no Python loop runs per pair.

    >>> h = np.array([0b0000, 0b0001, 0b1111], dtype=np.uint64)
    >>> list(near_pairs(h, max_distance=1))
    [(0, 1, 1)]
    >>> list(near_pairs(h[:1], h[1:], max_distance=4))
    [(0, 0, 1), (0, 1, 4)]
    """
    cols = a if b is None else b
    for start in range(0, len(a), _BLOCK):
        rows = a[start : start + _BLOCK]
        dist = np.bitwise_count(rows[:, None] ^ cols[None, :])
        hit = dist <= max_distance
        if b is None:  # upper triangle only: column index above the row's
            hit &= np.arange(len(cols))[None, :] > np.arange(start, start + len(rows))[:, None]
        i, j = np.nonzero(hit)
        for r, c in zip(i.tolist(), j.tolist(), strict=True):
            yield start + r, c, int(dist[r, c])


def _pairs(left: ImageHashes, right: ImageHashes | None, max_distance: int) -> list[DuplicatePair]:
    other = left if right is None else right
    exact: list[DuplicatePair] = []
    near: list[DuplicatePair] = []
    b = None if right is None else right.array()
    for i, j, d in near_pairs(left.array(), b, max_distance):
        same = left.digests[i] == other.digests[j]
        (exact if same else near).append(DuplicatePair(left.refs[i], other.refs[j], d, same))
    near.sort(key=lambda p: (p.distance, p.a.file, p.a.index, p.b.file, p.b.index))
    return exact + near


def find_duplicates(hashes: ImageHashes, max_distance: int = DEFAULT_MAX_DISTANCE) -> list[DuplicatePair]:
    """Pairs within one record set: exact duplicates first (in record order), then near ones by distance."""
    return _pairs(hashes, None, max_distance)


def find_leaks(
    train: ImageHashes, other: ImageHashes, max_distance: int = DEFAULT_MAX_DISTANCE
) -> list[DuplicatePair]:
    """Pairs of a ``train`` image and an ``other`` (eval) image that are exact or near duplicates.

    >>> a = ImageHashes([ImageRef("t", 0, "x")], [0b1], [b"1"])
    >>> b = ImageHashes([ImageRef("e", 0, "y"), ImageRef("e", 1, "z")], [0b1, 2**64 - 1], [b"1", b"2"])
    >>> [(p.b.index, p.distance, p.exact) for p in find_leaks(a, b)]
    [(0, 0, True)]
    """
    return _pairs(train, other, max_distance)


def duplicates_report(
    pairs: Sequence[DuplicatePair], images: int, max_distance: int = DEFAULT_MAX_DISTANCE
) -> dict[str, Any]:
    """JSON-ready summary: counts of exact and near pairs, up to :data:`MAX_LISTED_PAIRS` of each.

    >>> duplicates_report([], 3)["near_pairs"]
    0
    """
    exact = [p for p in pairs if p.exact]
    near = [p for p in pairs if not p.exact]
    return {
        "hash": "phash-64",
        "max_distance": max_distance,
        "images_hashed": images,
        "exact_pairs": len(exact),
        "near_pairs": len(near),
        "exact": [p.to_dict() for p in exact[:MAX_LISTED_PAIRS]],
        "near": [p.to_dict() for p in near[:MAX_LISTED_PAIRS]],
    }

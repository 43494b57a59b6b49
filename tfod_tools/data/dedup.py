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
decoder's own 1/2-1/8 DCT scaling) no smaller than 32 px a side: hashing costs about what decoding
costs, not more (``scripts/bench_dedup.py``; numbers in docs/benchmarks.md).

Two images are near duplicates when their pHashes differ in at most :data:`DEFAULT_MAX_DISTANCE`
bits and their thumbnails have the same tone (mean brightness within :data:`MAX_MEAN_DIFFERENCE`,
contrast within :data:`MAX_STD_RATIO`: :func:`same_tone`). That default was measured
(``scripts/bench_dedup.py``, docs/benchmarks.md): it finds re-encoded (JPEG quality 60), resized
(0.5x) and 5 %-cropped copies of textured synthetic images while unrelated images stay farther
apart. Where the images of a set look alike at thumbnail scale (unrelated pairs only a few bits
apart, as in X-rays of one protocol, measured from the set's own pair distances:
:func:`calibrated_distance`), and in sets too small to measure that, near pairs must also agree in
a finer hash, or one image's fine hash must agree with the other's centre crop (:data:`CROP_FRACTIONS`):
re-encoded, resized and centrally cropped copies are still found there, off-centre crops are not.

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
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from tfod_tools.data.image_hash import (
    CROP_FRACTIONS,
    FINE_MIN_DETAIL,
    MAX_MEAN_DIFFERENCE,
    MAX_STD_RATIO,
    Signature,
    bit_counts,
    dhash,
    hamming,
    image_hash,
    phash,
    phash_and_tone,
    same_tone,
    signature,
)

__all__ = [
    "CALIBRATION_MARGIN",
    "CALIBRATION_MIN_IMAGES",
    "CROP_FRACTIONS",
    "CROP_MAX_DISTANCE",
    "DEFAULT_MAX_DISTANCE",
    "FINE_MAX_DISTANCE",
    "FINE_MIN_DETAIL",
    "MAX_LISTED_PAIRS",
    "MAX_MEAN_DIFFERENCE",
    "MAX_STD_RATIO",
    "Calibration",
    "DuplicatePair",
    "HashEntry",
    "ImageHashes",
    "ImageRef",
    "Signature",
    "calibrated_distance",
    "confirmed",
    "dhash",
    "duplicates_report",
    "encoded_at",
    "find_duplicates",
    "find_leaks",
    "hamming",
    "hash_records",
    "image_entry",
    "image_hash",
    "near_pairs",
    "phash",
    "phash_and_tone",
    "same_tone",
    "signature",
    "thumbnail_png",
]

DEFAULT_MAX_DISTANCE = 10
"""Largest pHash Hamming distance (of 64 bits) still called a near duplicate (measured, see module doc)."""
CALIBRATION_MARGIN = 8
"""A set whose 1st-percentile pair distance is below threshold + this margin looks alike
(:func:`calibrated_distance`)."""
FINE_MAX_DISTANCE = 16
"""Largest fine-hash distance (of 255 bits) of a confirmed near pair in a look-alike set."""
CALIBRATION_MIN_IMAGES = 20
"""Sets smaller than this are not calibrated (too few pairs for a percentile): their near pairs are
always confirmed by the fine hash (:func:`calibrated_distance`)."""
CROP_MAX_DISTANCE = 12
"""Largest fine-hash distance between one image and the other's centre crop in a confirmed pair:
tighter than :data:`FINE_MAX_DISTANCE`, as each pair gets ``2 * len(CROP_FRACTIONS)`` such chances
(measured on X-ray-like images: 5 %-cropped copies 0-12 bits from their original's crop, unrelated
look-alikes 14 and more)."""
MAX_LISTED_PAIRS = 50
"""Pairs listed per kind in a report (all are counted)."""
_BLOCK = 2048


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


class HashEntry(NamedTuple):
    """What :class:`ImageHashes` keeps of one image (:func:`image_entry`), no image bytes."""

    phash: int
    tone: tuple[float, float]
    """Thumbnail ``(mean, std)``, rounded to 2 decimals."""
    fine: int
    crops: tuple[int, ...]
    detail: float
    """Rounded to 4 decimals."""
    digest: bytes
    """sha256 of the encoded bytes."""


def image_entry(encoded: bytes) -> HashEntry | None:
    """The hashes of one encoded image as :class:`ImageHashes` keeps them; None when it cannot be
    decoded (any decoder failure: inspect reports why).

    >>> image_entry(b"not an image") is None
    True
    """
    try:
        sig = signature(encoded)
    except Exception:  # any decoder failure means "no hash"
        return None
    tone = (round(sig.mean, 2), round(sig.std, 2))
    digest = hashlib.sha256(encoded).digest()
    return HashEntry(sig.phash, tone, sig.fine, sig.crops, round(sig.detail, 4), digest)


@dataclass
class ImageHashes:
    """The hashes of a record set, one per decodable image (picklable, no image bytes kept)."""

    refs: list[ImageRef] = field(default_factory=list)
    hashes: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    tones: list[tuple[float, float]] = field(default_factory=list)
    fine: list[int] = field(default_factory=list)
    crops: list[tuple[int, ...]] = field(default_factory=list)
    details: list[float] = field(default_factory=list)
    undecodable: int = 0

    def __len__(self) -> int:
        return len(self.refs)

    def add(self, file: str | Path, index: int, source_id: str, encoded: bytes) -> bool:
        """Hash one image; False (and counted in ``undecodable``) when it cannot be decoded."""
        return self.put(file, index, source_id, image_entry(encoded))

    def put(self, file: str | Path, index: int, source_id: str, entry: HashEntry | None) -> bool:
        """Keep one image's :func:`image_entry` (computed anywhere: a Beam worker); None counts as
        undecodable. :meth:`add` is ``put(..., image_entry(encoded))``."""
        if entry is None:
            self.undecodable += 1
            return False
        self.refs.append(ImageRef(str(file), int(index), source_id))
        self.hashes.append(entry.phash)
        self.tones.append(entry.tone)
        self.fine.append(entry.fine)
        self.crops.append(entry.crops)
        self.details.append(entry.detail)
        self.digests.append(entry.digest)
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


def encoded_at(refs: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    """The encoded image of each ``(record file, record index)`` wanted (read once per file, TF-free)."""
    from tfod_tools.data.records import iter_image_records

    wanted: dict[str, set[int]] = {}
    for file, index in refs:
        wanted.setdefault(file, set()).add(int(index))
    found: dict[tuple[str, int], bytes] = {}
    for file, indices in wanted.items():
        last = max(indices)
        for _, index, record in iter_image_records(file):
            if index in indices:
                found[(file, index)] = record.encoded
            if index >= last:
                break
    return found


def thumbnail_png(encoded: bytes, size: int = 160) -> bytes:
    """A PNG thumbnail, at most ``size`` px a side (the HTML report shows leak pairs side by side).

    >>> from PIL import Image
    >>> out = io.BytesIO()
    >>> Image.new("RGB", (640, 320), (0, 90, 0)).save(out, "JPEG")
    >>> Image.open(io.BytesIO(thumbnail_png(out.getvalue()))).size
    (160, 80)
    """
    from PIL import Image

    img: Image.Image = Image.open(io.BytesIO(encoded))
    img.draft("RGB", (size, size))
    img = img.convert("RGB")
    img.thumbnail((size, size))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def near_pairs(
    a: npt.NDArray[np.uint64],
    b: npt.NDArray[np.uint64] | None = None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
) -> Iterator[tuple[int, int, int]]:
    """``(i, j, distance)`` of every pair within ``max_distance`` bits: ``i < j`` within ``a`` when ``b``
    is None, else ``a[i]`` against ``b[j]``. Blocks of rows against all columns in numpy
    (:func:`~tfod_tools.data.image_hash.bit_counts`), so memory stays at block x n and no Python loop
    runs per pair.

    >>> h = np.array([0b0000, 0b0001, 0b1111], dtype=np.uint64)
    >>> list(near_pairs(h, max_distance=1))
    [(0, 1, 1)]
    >>> list(near_pairs(h[:1], h[1:], max_distance=4))
    [(0, 0, 1), (0, 1, 4)]
    """
    cols = a if b is None else b
    for start in range(0, len(a), _BLOCK):
        rows = a[start : start + _BLOCK]
        dist = bit_counts(rows[:, None] ^ cols[None, :])
        hit = dist <= max_distance
        if b is None:  # upper triangle only: column index above the row's
            hit &= np.arange(len(cols))[None, :] > np.arange(start, start + len(rows))[:, None]
        i, j = np.nonzero(hit)
        for r, c in zip(i.tolist(), j.tolist(), strict=True):
            yield start + r, c, int(dist[r, c])


def _pairs(
    left: ImageHashes, right: ImageHashes | None, max_distance: int, confirm: bool = False
) -> list[DuplicatePair]:
    """Exact pairs (same sha256, whatever ``max_distance``) in record order, then near ones by distance."""
    other = left if right is None else right
    by_digest: dict[bytes, list[int]] = {}
    for j, digest in enumerate(other.digests):
        by_digest.setdefault(digest, []).append(j)
    exact = [
        DuplicatePair(left.refs[i], other.refs[j], hamming(left.hashes[i], other.hashes[j]), True)
        for i, digest in enumerate(left.digests)
        for j in by_digest.get(digest, [])
        if right is not None or j > i
    ]
    near: list[DuplicatePair] = []
    if max_distance >= 0:
        b = None if right is None else right.array()
        for i, j, d in near_pairs(left.array(), b, max_distance):
            tones = (left.tones[i], other.tones[j]) if left.tones and other.tones else None
            if left.digests[i] == other.digests[j] or not (tones is None or same_tone(*tones)):
                continue
            if confirm and not confirmed(left, i, other, j):
                continue
            near.append(DuplicatePair(left.refs[i], other.refs[j], d, False))
    near.sort(key=lambda p: (p.distance, p.a.file, p.a.index, p.b.file, p.b.index))
    return exact + near


def confirmed(left: ImageHashes, i: int, right: ImageHashes, j: int) -> bool:
    """Whether image ``i`` of ``left`` and ``j`` of ``right`` agree in the fine hash: their fine hashes
    within :data:`FINE_MAX_DISTANCE` bits, or one's fine hash within :data:`CROP_MAX_DISTANCE` of the
    other's centre crop (a centrally cropped copy). True when either set has no fine hashes (nothing
    to confirm with), and when both images are smooth (detail below :data:`FINE_MIN_DETAIL`: their
    fine bits are noise).

    >>> a = ImageHashes(fine=[0], crops=[(2**40 - 1, 2**80 - 1)])
    >>> b = ImageHashes(fine=[2**40 - 1], crops=[(0, 0)])
    >>> confirmed(a, 0, b, 0), confirmed(a, 0, ImageHashes(fine=[2**20 - 1], crops=[(2**30 - 1,) * 2]), 0)
    (True, False)
    """
    if not left.fine or not right.fine:
        return True
    if left.details and right.details and max(left.details[i], right.details[j]) < FINE_MIN_DETAIL:
        return True
    a, b = left.fine[i], right.fine[j]
    if hamming(a, b) <= FINE_MAX_DISTANCE:
        return True
    if not left.crops or not right.crops:
        return False
    return any(hamming(a, c) <= CROP_MAX_DISTANCE for c in right.crops[j]) or any(
        hamming(c, b) <= CROP_MAX_DISTANCE for c in left.crops[i]
    )


class Calibration(NamedTuple):
    """How near pairs are decided for a set (:func:`calibrated_distance`)."""

    max_distance: int
    """pHash threshold."""
    pair_p1: float | None
    """1st percentile of the set's pair distances (None: too few images to tell)."""
    confirm: bool
    """Whether near pairs also need fine hashes within :data:`FINE_MAX_DISTANCE` (look-alike or small
    set: :func:`confirmed`)."""


def calibrated_distance(
    *sets: ImageHashes, max_distance: int = DEFAULT_MAX_DISTANCE, sample: int = 2048, seed: int = 0
) -> Calibration:
    """The pHash threshold, and whether near pairs need confirming, for the images of ``sets``.

    ``pair_p1`` is the 1st percentile of the Hamming distances between the images (a seeded sample of
    up to ``sample`` of them): nearly all those pairs are unrelated images. Sets whose images look
    alike at thumbnail scale (chest X-rays of one protocol, renders of one scene) have unrelated pairs
    closer than ``max_distance +`` :data:`CALIBRATION_MARGIN`; their near pairs must then also agree
    in the fine 255-bit hash (:func:`confirmed`): re-encoded, resized and centrally cropped copies
    pass, off-centre crops and unrelated look-alikes do not. Below :data:`CALIBRATION_MIN_IMAGES`
    images there are too few pairs to tell (and a few copies would be the closest of them), so near
    pairs are always confirmed: the safe side, costing spread-out sets only off-centre crops
    (``scripts/bench_dedup.py``, docs/benchmarks.md).

    >>> rng = np.random.default_rng(0)
    >>> spread = ImageHashes(hashes=rng.integers(0, 2**63, 200, dtype=np.uint64).tolist())
    >>> alike = ImageHashes(hashes=[int(v) & 0b111111 for v in spread.hashes])
    >>> calibrated_distance(spread).confirm, calibrated_distance(alike).confirm
    (False, True)
    >>> calibrated_distance(ImageHashes(hashes=spread.hashes[:10]))
    Calibration(max_distance=10, pair_p1=None, confirm=True)
    """
    values = np.concatenate([h.array() for h in sets]) if sets else np.zeros(0, np.uint64)
    if len(values) < CALIBRATION_MIN_IMAGES:
        return Calibration(max_distance, None, True)
    if len(values) > sample:
        values = np.random.default_rng(seed).choice(values, sample, replace=False)
    dist = bit_counts(values[:, None] ^ values[None, :])[np.triu_indices(len(values), k=1)]
    p1 = float(np.percentile(dist, 1))
    return Calibration(max_distance, p1, p1 - CALIBRATION_MARGIN < max_distance)


def find_duplicates(
    hashes: ImageHashes, max_distance: int = DEFAULT_MAX_DISTANCE, confirm: bool = False
) -> list[DuplicatePair]:
    """Pairs within one record set: exact duplicates first (in record order), then near ones by
    distance; ``confirm``: near pairs also need close fine hashes (:func:`calibrated_distance`)."""
    return _pairs(hashes, None, max_distance, confirm)


def find_leaks(
    train: ImageHashes, other: ImageHashes, max_distance: int = DEFAULT_MAX_DISTANCE, confirm: bool = False
) -> list[DuplicatePair]:
    """Pairs of a ``train`` image and an ``other`` (eval) image that are exact or near duplicates.

    >>> a = ImageHashes([ImageRef("t", 0, "x")], [0b1], [b"1"])
    >>> b = ImageHashes([ImageRef("e", 0, "y"), ImageRef("e", 1, "z")], [0b1, 2**64 - 1], [b"1", b"2"])
    >>> [(p.b.index, p.distance, p.exact) for p in find_leaks(a, b)]
    [(0, 0, True)]
    """
    return _pairs(train, other, max_distance, confirm)


def duplicates_report(
    pairs: Sequence[DuplicatePair],
    images: int,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    pair_p1: float | None = None,
    confirmed: bool = False,
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
        "default_max_distance": DEFAULT_MAX_DISTANCE,
        "unrelated_pair_distance_p1": pair_p1,
        "fine_hash_confirmed": confirmed,
        "images_hashed": images,
        "exact_pairs": len(exact),
        "near_pairs": len(near),
        "exact": [p.to_dict() for p in exact[:MAX_LISTED_PAIRS]],
        "near": [p.to_dict() for p in near[:MAX_LISTED_PAIRS]],
    }

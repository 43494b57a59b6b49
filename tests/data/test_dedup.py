"""Near-duplicate and leakage detection: planted copies found, unrelated images not, pair finder exact."""

from __future__ import annotations

import importlib.util
import io
import itertools
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from tfod_tools.data.dedup import (
    DEFAULT_MAX_DISTANCE,
    ImageHashes,
    dhash,
    find_duplicates,
    find_leaks,
    hamming,
    image_hash,
    near_pairs,
    phash,
)


def _load_bench() -> ModuleType:
    """scripts/bench_dedup.py, whose image generator and planted copies the tests share."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "bench_dedup.py"
    spec = importlib.util.spec_from_file_location("bench_dedup", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_BENCH = _load_bench()


def _jpeg(img: Image.Image, quality: int = 92) -> bytes:
    return bytes(_BENCH._jpeg(img, quality))


def _textured(seed: int) -> Image.Image:
    image: Image.Image = _BENCH.textured(np.random.default_rng(seed))
    return image


def _variants(img: Image.Image) -> dict[str, bytes]:
    out = io.BytesIO()
    img.save(out, "PNG")
    names = {"reencoded_q60": "reencoded", "resized_0.5x": "resized", "cropped_5pct": "cropped"}
    planted = {names[k]: v for k, v in _BENCH.copies(img).items()}
    return {**planted, "png": out.getvalue()}


@pytest.mark.parametrize("kind", ["reencoded", "resized", "cropped", "png"])
def test_planted_copies_are_within_the_default_distance(kind: str) -> None:
    for seed in range(6):
        img = _textured(seed)
        assert hamming(image_hash(_jpeg(img)), image_hash(_variants(img)[kind])) <= DEFAULT_MAX_DISTANCE


def test_unrelated_images_are_farther_than_the_default_distance() -> None:
    hashes = [phash(_jpeg(_textured(seed))) for seed in range(20)]
    closest = min(hamming(a, b) for a, b in itertools.combinations(hashes, 2))
    assert closest > DEFAULT_MAX_DISTANCE


def test_hashes_are_64_bit_and_brightness_invariant() -> None:
    img = _textured(1)
    brighter = Image.fromarray(np.clip(np.asarray(img, np.int16) + 30, 0, 255).astype(np.uint8))
    for fn in (phash, dhash):
        value = fn(_jpeg(img))
        assert 0 <= value < 2**64
        assert hamming(value, fn(_jpeg(brighter))) <= 4


def test_find_duplicates_reports_exact_and_near_separately() -> None:
    imgs = [_textured(seed) for seed in range(4)]
    data = [_jpeg(img) for img in imgs]
    seen = ImageHashes()
    for k, blob in enumerate(data):
        assert seen.add("a.record", k, f"img-{k}", blob)
    assert seen.add("a.record", 4, "copy-of-0", data[0])  # exact
    assert seen.add("a.record", 5, "resized-1", _variants(imgs[1])["resized"])  # near
    assert seen.add("a.record", 6, "cropped-2", _variants(imgs[2])["cropped"])  # near
    assert not seen.add("a.record", 7, "broken", b"not an image")
    assert seen.undecodable == 1 and len(seen) == 7
    pairs = find_duplicates(seen)
    exact = [(p.a.index, p.b.index) for p in pairs if p.exact]
    near = sorted((p.a.index, p.b.index) for p in pairs if not p.exact)
    assert exact == [(0, 4)]
    assert near == [(1, 5), (2, 6)]
    assert all(p.distance == 0 for p in pairs if p.exact)
    assert pairs[0].to_dict()["a"] == {"file": "a.record", "index": 0, "source_id": "img-0"}


def test_find_leaks_pairs_train_with_eval_only() -> None:
    imgs = [_textured(seed) for seed in range(10, 14)]
    train, other = ImageHashes(), ImageHashes()
    for k, img in enumerate(imgs[:3]):
        train.add("train.record", k, f"t{k}", _jpeg(img))
    train.add("train.record", 3, "t0-again", _jpeg(imgs[0]))  # a duplicate within train is no leak
    other.add("eval.record", 0, "e0", _variants(imgs[1])["reencoded"])
    other.add("eval.record", 1, "e1", _jpeg(imgs[3]))
    other.add("eval.record", 2, "e2", _jpeg(imgs[2]))
    leaks = find_leaks(train, other)
    assert [(p.a.index, p.b.index, p.exact) for p in leaks] == [(2, 2, True), (1, 0, False)]


@pytest.mark.parametrize("max_distance", [0, 3, 12, 20])
def test_near_pairs_equals_brute_force(max_distance: int) -> None:
    rng = np.random.default_rng(7)
    # clustered hashes (few random bit flips of 40 centres) so that every distance occurs
    centres = rng.integers(0, 2**63, size=40, dtype=np.uint64) * np.uint64(2)
    flips = rng.integers(0, 64, size=(1500, 6))
    hashes = centres[rng.integers(0, 40, size=1500)]
    for col in range(flips.shape[1]):
        keep = rng.random(1500) < 0.5
        hashes = np.where(keep, hashes ^ (np.uint64(1) << flips[:, col].astype(np.uint64)), hashes)
    a, b = hashes[:1300], hashes[1300:]
    ints_a, ints_b = [int(v) for v in a], [int(v) for v in b]
    within = {
        (i, j, hamming(ints_a[i], ints_a[j]))
        for i, j in itertools.combinations(range(len(ints_a)), 2)
        if hamming(ints_a[i], ints_a[j]) <= max_distance
    }
    assert set(near_pairs(a, max_distance=max_distance)) == within
    between = {
        (i, j, hamming(x, y))
        for (i, x), (j, y) in itertools.product(enumerate(ints_a), enumerate(ints_b))
        if hamming(x, y) <= max_distance
    }
    assert set(near_pairs(a, b, max_distance=max_distance)) == between
    assert len(within) > 0 or max_distance == 0


def test_look_alike_sets_are_calibrated_not_flagged() -> None:
    from tfod_tools.data.dedup import calibrated_distance
    from tfod_tools.data.synthetic import generate_images

    imgs = [
        Image.fromarray(s.pixels).convert("RGB") for s in generate_images("xray-like", "train", 40, seed=5)
    ]
    seen, copied = ImageHashes(), ImageHashes()
    for k, img in enumerate(imgs):
        seen.add("train.record", k, "", _jpeg(img))
        copied.add("eval.record", k, "", _jpeg(img, 60))
    limit, p1, confirm = calibrated_distance(seen)
    assert p1 is not None and confirm  # unrelated X-ray-like images are a few bits apart
    assert len([p for p in find_duplicates(seen, limit) if not p.exact]) > 10  # unconfirmed: false pairs
    assert [p for p in find_duplicates(seen, limit, confirm) if not p.exact] == []
    found = {(p.a.index, p.b.index) for p in find_leaks(seen, copied, limit, confirm)}
    assert found == {(k, k) for k in range(40)}  # every re-encoded copy, nothing else


def test_same_tone_rejects_look_alike_images_of_other_brightness() -> None:
    from tfod_tools.data.dedup import phash_and_tone, same_tone

    img = _textured(3)
    darker = Image.fromarray((np.asarray(img, np.float32) * 0.6).astype(np.uint8))
    a, b = phash_and_tone(_jpeg(img)), phash_and_tone(_jpeg(darker))
    assert hamming(a[0], b[0]) <= DEFAULT_MAX_DISTANCE and not same_tone(a[1:], b[1:])
    assert same_tone(a[1:], phash_and_tone(_variants(img)["cropped"])[1:])


def _xray(count: int, seed: int) -> list[Image.Image]:
    from tfod_tools.data.synthetic import generate_images

    return [
        Image.fromarray(s.pixels).convert("RGB")
        for s in generate_images("xray-like", "train", count, seed=seed)
    ]


def _set(images: list[bytes]) -> ImageHashes:
    seen = ImageHashes()
    for k, data in enumerate(images):
        assert seen.add("small.record", k, f"img-{k}", data)
    return seen


def _near(seen: ImageHashes) -> set[tuple[int, int]]:
    from tfod_tools.data.dedup import calibrated_distance

    limit, p1, confirm = calibrated_distance(seen)
    assert p1 is None and confirm  # too few images to calibrate: always confirmed
    return {(p.a.index, p.b.index) for p in find_duplicates(seen, limit, confirm) if not p.exact}


def test_small_look_alike_sets_have_no_false_pairs() -> None:
    unconfirmed = 0
    for seed in range(4):  # as one small record file of `tfod synth --kind xray-like` shows it
        seen = _set([_jpeg(img) for img in _xray(10, seed)])
        assert _near(seen) == set()
        unconfirmed += sum(not p.exact for p in find_duplicates(seen))  # the pHash alone
    assert unconfirmed > 0  # the case is real: unrelated look-alikes within the pHash threshold


@pytest.mark.parametrize("family", ["xray-like", "textured"])
def test_small_sets_still_find_planted_copies(family: str) -> None:
    imgs = _xray(5, 11) if family == "xray-like" else [_textured(seed) for seed in range(30, 35)]
    for kind in ("reencoded", "resized", "cropped"):
        seen = _set([_jpeg(img) for img in imgs] + [_variants(img)[kind] for img in imgs])
        assert _near(seen) == {(k, k + 5) for k in range(5)}, kind


def test_smooth_images_are_not_refuted_by_their_noisy_fine_hash() -> None:
    from tfod_tools.data.dedup import FINE_MAX_DISTANCE, FINE_MIN_DETAIL, confirmed, signature

    rng = np.random.default_rng(4)
    img = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize(
        (160, 120), Image.Resampling.BICUBIC
    )
    a, b = signature(_jpeg(img)), signature(_jpeg(img, 60))
    assert max(a.detail, b.detail) < FINE_MIN_DETAIL  # no detail beyond the pHash's frequencies
    assert hamming(a.fine, b.fine) > FINE_MAX_DISTANCE  # so the fine bits are JPEG noise
    seen = _set([_jpeg(img), _jpeg(img, 60)])
    assert confirmed(seen, 0, seen, 1) and _near(seen) == {(0, 1)}
    textured = signature(_jpeg(_textured(4)))
    assert textured.detail > FINE_MIN_DETAIL


def test_fine_bases_are_the_dct_of_the_thumbnail_and_of_its_centre_crops() -> None:
    import cv2

    from tfod_tools.data.image_hash import CROP_FRACTIONS, _fine_bases

    pixels = (np.random.default_rng(2).random((64, 64)) * 255).astype(np.float32)
    bases = _fine_bases()
    assert bases.shape == (1 + len(CROP_FRACTIONS), 16, 64)
    np.testing.assert_allclose(bases[0] @ pixels @ bases[0].T, cv2.dct(pixels)[:16, :16], atol=0.05)
    grid = np.arange(64, dtype=np.float64)
    for basis, keep in zip(bases[1:], CROP_FRACTIONS, strict=True):
        src = keep * (grid - 31.5) + 31.5  # the centre crop, sampled back onto 64x64 px (bilinear)
        rows = np.stack([np.interp(src, grid, row) for row in pixels])
        crop = np.stack([np.interp(src, grid, col) for col in rows.T]).T.astype(np.float32)
        np.testing.assert_allclose(basis @ pixels @ basis.T, cv2.dct(crop)[:16, :16], atol=0.05)


def test_centrally_cropped_copies_are_found_in_look_alike_sets() -> None:
    from tfod_tools.data.dedup import calibrated_distance

    imgs = _xray(40, 6)
    seen, cropped = _set([_jpeg(img) for img in imgs]), ImageHashes()
    for k, img in enumerate(imgs):
        cropped.add("eval.record", k, "", _variants(img)["cropped"])
    limit, _, confirm = calibrated_distance(seen)
    assert confirm
    found = {(p.a.index, p.b.index) for p in find_leaks(seen, cropped, limit, confirm)}
    assert found <= {(k, k) for k in range(40)}  # no copy paired with another image
    assert len(found) >= 36  # nearly every 5 %-cropped copy (the bench: 0.98-1.0)
    seen.crops.clear()  # the fine hash alone: crops are refuted
    assert len(find_leaks(seen, cropped, limit, confirm)) <= 4


def test_bit_counts_without_numpy_2_equal_numpy_2s() -> None:
    # numpy 1.26 (the TF 2.15-2.17 stacks) has no np.bitwise_count: the byte-table path must agree.
    from tfod_tools.data.image_hash import _table_bit_counts, bit_counts

    rng = np.random.default_rng(7)
    values = rng.integers(0, 2**63, size=(37, 5), dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=(37, 5), dtype=np.uint64
    )
    values[0, :3] = [0, 2**64 - 1, 2**63]
    expected = [[bin(int(v)).count("1") for v in row] for row in values]
    assert _table_bit_counts(values).tolist() == expected
    assert bit_counts(values).tolist() == expected
    assert _table_bit_counts(values[:, 0]).shape == (37,)

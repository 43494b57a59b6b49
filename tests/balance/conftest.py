"""Shared fixtures of the balance tests: small synthetic data sets (grayscale xray-like, RGB shapes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from tfod_tools.data.synthetic import SyntheticDataset, write_synthetic_dataset


@pytest.fixture(scope="session")
def xray(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """24 grayscale 96 px xray-like training images (3:1 opacity:nodule, a quarter negatives)."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("xray"), "xray-like", train_images=24, eval_images=4, seed=5, image_size=96
    )


@pytest.fixture(scope="session")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    """12 RGB 64 px shapes images."""
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("shapes"), "shapes", train_images=12, eval_images=2, seed=2, image_size=64
    )


def files_in(directory: Path) -> list[str]:
    """Names of every entry of ``directory`` (hidden temporary files included)."""
    return sorted(p.name for p in directory.iterdir())

"""Shared helpers of the Beam tests: pipelines on the in-process DirectRunner, files of a folder."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: Two worker processes: the one multi-processing configuration the tests run.
MULTI_PROCESSING = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def files_in(directory: Path) -> list[str]:
    """Every entry under ``directory``, relative, hidden scratch files and folders included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))

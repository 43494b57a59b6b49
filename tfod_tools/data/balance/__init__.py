"""``tfod balance``: rebalance a TF OD API record set with repeat counts and augmented copies.

:func:`balance` reads the input records twice without TensorFlow. The first pass verifies every
record (framing, CRCs, layout, class ids) and collects each image's classes; nothing is written
before it succeeds, so a corrupt input leaves no output behind. :mod:`.plan` turns the classes into a
repeat count per image, and :mod:`.write` writes the originals plus augmented copies
(:mod:`.augment`, recipe from :mod:`.recipes`) to shards, deterministically for a seed whatever the
worker count. A manifest ``PREFIX.manifest.json`` records inputs and their SHA-256, the recipe and
its hash, the seed, counts before and after, boxes dropped, skipped images and the shards.

>>> import tempfile, pathlib
>>> from tfod_tools.data.synthetic import write_synthetic_dataset
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> ds = write_synthetic_dataset(d, "xray-like", train_images=8, eval_images=0, seed=0)
>>> m = balance([ds.train_record], ds.label_map, d / "bal.record", recipe="aerial",
...             strategy="oversample", seed=1)
>>> m["counts_before"]["negative"], m["plan"]["records"] == sum(s["records"] for s in m["shards"])
({'images': 2}, True)
>>> (d / "bal.record.manifest.json").is_file()
True
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tfod_tools.data.balance.plan import NEGATIVE, STRATEGIES, Plan, make_plan
from tfod_tools.data.balance.recipes import RECIPES, Recipe, load_recipe
from tfod_tools.data.balance.sampling import sampling_config_text
from tfod_tools.data.balance.write import Runner, ScanItem, WriteResult, scan, write_balanced
from tfod_tools.data.classes import ClassLookup, category_names
from tfod_tools.data.records import input_record_files
from tfod_tools.errors import TfodError
from tfod_tools.fsutil import output_parents, sha256_file, write_text_atomic
from tfod_tools.odapi.label_map import LabelMap, read_label_map

__all__ = [
    "RECIPES",
    "STRATEGIES",
    "Prepared",
    "balance",
    "build_manifest",
    "check_paths",
    "group_file",
    "image_classes",
    "is_eval_split",
    "load_recipe",
    "make_plan",
    "manifest_path",
    "manifest_text",
    "prepare",
    "sampling_config",
    "write_sampling",
]

_EVAL_WORD = re.compile(r"(?<![a-z])(eval|evaluation|val|valid|validation|test|testing)(?![a-z])")


def is_eval_split(path: str | Path) -> bool:
    """Whether a record file's name marks an evaluation split (eval / val / test as a word).

    >>> [is_eval_split(p) for p in ("eval.record", "val2017.tfrecord", "train.record", "interval.rec")]
    [True, True, False, False]
    """
    return bool(_EVAL_WORD.search(Path(path).name.lower()))


def manifest_path(out: str | Path) -> Path:
    """``PREFIX.manifest.json`` next to the output.

    >>> manifest_path("data/train_bal.record").as_posix()
    'data/train_bal.record.manifest.json'
    """
    return Path(f"{out}.manifest.json")


def _output_paths(out: str | Path, shards: int, group_paths: Sequence[str], sampling: bool) -> list[Path]:
    names = [str(out)] if shards == 1 else [f"{out}-{i:05d}-of-{shards:05d}" for i in range(shards)]
    paths = [Path(n) for n in names] + [manifest_path(out)] + [Path(p) for p in group_paths]
    if sampling:
        paths.append(Path(f"{out}.sampling.config"))
    return paths


def check_paths(inputs: Sequence[Path], outputs: Sequence[Path], *, allow_eval: bool = False) -> None:
    """Refuse an evaluation split (unless ``allow_eval``) and an output that would overwrite an input."""
    for path in inputs:
        if not allow_eval and is_eval_split(path):
            raise TfodError(
                "refusing to augment an evaluation split (its name says eval/val/test): copies of "
                "evaluation images inflate and bias the metrics",
                path=path,
                fix="balance the training split, or pass --allow-eval if this really is training data",
            )
    resolved = {p.resolve(): p for p in inputs}
    for out in outputs:
        if out.resolve() in resolved:
            raise TfodError(
                "the output would overwrite an input", path=out, fix="choose another --out prefix"
            )


def image_classes(lookup: ClassLookup, items: Sequence[ScanItem]) -> list[list[int]]:
    """Each image's box classes as label map ids, by the API's rule (text first; unknown refused)."""
    boxes: list[list[int]] = []
    for item in items:
        texts = [k for k in item.classes if isinstance(k, str)]
        labels = [k for k in item.classes if not isinstance(k, str)]
        boxes.append(
            lookup.checked_ids(texts, labels, len(item.classes), file=item.file, index=item.record_index)
        )
    return boxes


def _class_name(lookup: ClassLookup, key: Any) -> str:
    """A class key (id, or text of a record without labels) as the API names its class."""
    if isinstance(key, (int, str)) and key != NEGATIVE:
        cid = lookup.resolve(key if isinstance(key, str) else int(key))
        names = category_names(lookup.label_map)
        if cid in names:
            return names[cid]
    return str(key)


def _counts(
    lookup: ClassLookup, images: dict[Any, int], boxes: dict[Any, int], negatives: int
) -> dict[str, dict[str, int]]:
    def name(key: Any) -> str:
        return _class_name(lookup, key)

    names = category_names(lookup.label_map).values()
    counts: dict[str, dict[str, int]] = {n: {"images": 0, "boxes": 0} for n in names}
    for key, n in images.items():
        counts.setdefault(name(key), {"images": 0, "boxes": 0})["images"] += n
    for key, n in boxes.items():
        counts.setdefault(name(key), {"images": 0, "boxes": 0})["boxes"] += n
    counts[NEGATIVE] = {"images": negatives}
    return counts


def _before(lookup: ClassLookup, boxes: list[list[int]]) -> dict[str, dict[str, int]]:
    images: dict[Any, int] = {}
    box_counts: dict[Any, int] = {}
    for labels in boxes:
        for c in set(labels):
            images[c] = images.get(c, 0) + 1
        for c in labels:
            box_counts[c] = box_counts.get(c, 0) + 1
    return _counts(lookup, images, box_counts, sum(1 for b in boxes if not b))


def group_file(out: str | Path, key: str, label_map: LabelMap) -> str:
    name = key if key == NEGATIVE else category_names(label_map)[int(key)]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "_"
    return f"{out}.group-{safe}"


@dataclass(frozen=True)
class Prepared:
    """The checked inputs of one run: record files, label map (and its file), recipe."""

    files: list[Path]
    label_map: LabelMap
    label_map_path: Path | None
    recipe: Recipe


def prepare(
    inputs: str | Path | Sequence[str | Path],
    label_map: str | Path | LabelMap,
    out: str | Path,
    *,
    recipe: str | Path | Recipe = "natural",
    shards: int = 1,
    enable: Sequence[str] = (),
    emit_sampling_config: bool = False,
    allow_eval: bool = False,
    on_bad_image: str = "fail",
) -> Prepared:
    """Every check that needs no record read: inputs, label map, output paths, recipe, options.

    Both the local run and ``tfod balance --beam`` (before it submits anything) call it.
    """
    files = input_record_files(inputs)
    lm = label_map if isinstance(label_map, LabelMap) else read_label_map(label_map)
    lm_path = None if isinstance(label_map, LabelMap) else Path(label_map)
    # Guards first, with the largest set of outputs this run could write.
    pre_groups = [group_file(out, str(i), lm) for i in lm.ids] + [group_file(out, NEGATIVE, lm)]
    check_paths(
        [*files, *([lm_path] if lm_path else [])],
        _output_paths(out, shards, pre_groups if emit_sampling_config else [], emit_sampling_config),
        allow_eval=allow_eval,
    )
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, enable=enable)
    if on_bad_image not in ("skip", "fail"):
        raise TfodError(f"unknown --on-bad-image {on_bad_image!r}", fix="use skip or fail")
    return Prepared(files, lm, lm_path, rec)


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest file's text (both runners write exactly this).

    >>> manifest_text({"seed": 1}).splitlines()
    ['{', '  "seed": 1', '}']
    """
    return json.dumps(manifest, indent=2) + "\n"


def balance(
    inputs: str | Path | Sequence[str | Path],
    label_map: str | Path | LabelMap,
    out: str | Path,
    *,
    recipe: str | Path | Recipe = "natural",
    strategy: str = "repeat-factor",
    threshold: float = 0.3,
    seed: int = 0,
    shards: int = 1,
    workers: int = 1,
    enable: Sequence[str] = (),
    emit_sampling_config: bool = False,
    allow_eval: bool = False,
    on_bad_image: str = "fail",
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Balance ``inputs`` into ``out`` (see module docs) and return the manifest (also written).

    ``progress(k)`` is called as ``k`` more input records are done, in each of the two passes
    (so it reaches twice the number of input records).
    """
    prep = prepare(
        inputs,
        label_map,
        out,
        recipe=recipe,
        shards=shards,
        enable=enable,
        emit_sampling_config=emit_sampling_config,
        allow_eval=allow_eval,
        on_bad_image=on_bad_image,
    )
    files, lm, lm_path, rec = prep.files, prep.label_map, prep.label_map_path, prep.recipe
    # The inputs' hashes (for the manifest) are computed on a thread while the scan parses. The
    # output's directory is created if missing, and removed again if the run fails.
    with (
        output_parents(out),
        ThreadPoolExecutor(1, thread_name_prefix="tfod-balance-hash") as hasher,
        Runner(rec, seed=seed, workers=workers) as runner,  # workers start while we scan
    ):
        hashes = [hasher.submit(sha256_file, f) for f in files]
        scanned = scan(files, progress)
        lookup = ClassLookup(lm)
        box_lists = image_classes(lookup, scanned)
        plan = make_plan([set(b) for b in box_lists], strategy=strategy, threshold=threshold, seed=seed)
        group_paths: dict[str, str] = {}
        if emit_sampling_config:
            group_paths = {key: group_file(out, key, lm) for key in plan.group_totals()}
        result = write_balanced(
            runner,
            scanned,
            plan.repeats,
            out,
            shards=shards,
            on_bad_image=on_bad_image,
            groups=dict(enumerate(plan.keys)) if emit_sampling_config else None,
            group_names=group_paths or None,
            progress=progress,
        )
        hashed = [{"path": str(f), "sha256": h.result()} for f, h in zip(files, hashes, strict=True)]
        manifest = build_manifest(hashed, lookup, lm_path, rec, plan, result, box_lists, seed, shards)
        if emit_sampling_config:
            manifest["sampling_config"] = write_sampling(out, lm_path, plan, result)
        write_text_atomic(manifest_path(out), manifest_text(manifest))
    return manifest


def sampling_config(
    lm_path: str | Path | None, plan: Plan, result: WriteResult
) -> tuple[list[dict[str, Any]], str]:
    """The sampling config of ``--emit-sampling-config``: its groups (each group file's manifest entry
    with its weight, the plan's share of the output) and the config's text naming ``lm_path``."""
    totals = plan.group_totals()
    keys = [k for k in totals if result.groups[k].records > 0]
    weight_sum = sum(totals[k] for k in keys) or 1
    weights = [totals[k] / weight_sum for k in keys]
    paths = [result.groups[k].path for k in keys]
    groups = [
        {"group": k, **result.groups[k].to_dict(), "weight": w} for k, w in zip(keys, weights, strict=True)
    ]
    return groups, sampling_config_text(paths, weights, label_map_path=str(lm_path or ""))


def write_sampling(out: str | Path, lm_path: Path | None, plan: Plan, result: WriteResult) -> dict[str, Any]:
    """Write :func:`sampling_config` to ``OUT.sampling.config``; returns its manifest entry."""
    groups, text = sampling_config(lm_path, plan, result)
    config = Path(f"{out}.sampling.config")
    write_text_atomic(config, text)
    return {"path": str(config), "groups": groups}


def build_manifest(
    inputs: list[dict[str, str]],
    lookup: ClassLookup,
    lm_path: Path | None,
    recipe: Recipe,
    plan: Plan,
    result: WriteResult,
    box_lists: list[list[int]],
    seed: int,
    shards: int,
) -> dict[str, Any]:
    def name(key: Any) -> str:
        return _class_name(lookup, key)

    plan_dict = plan.to_dict()
    for key in ("class_fraction", "class_repeat_factor"):
        plan_dict[key] = {name(int(k)): v for k, v in plan_dict[key].items()}
    plan_dict["group_totals"] = {
        (k if k == NEGATIVE else name(int(k))): v
        for k, v in plan.group_totals().items()  # per rarest class
    }
    names = category_names(lookup.label_map)
    plan_dict["no_copies"] = plan.no_copies(names)  # why nothing was added, and what would
    return {
        "tool": "tfod balance",
        "inputs": inputs,
        "label_map": None if lm_path is None else {"path": str(lm_path), "sha256": sha256_file(lm_path)},
        "seed": seed,
        "strategy": plan.strategy,
        "threshold": plan.threshold,
        "recipe": recipe.to_dict(),
        "recipe_sha256": recipe.sha256(),
        "plan": plan_dict,
        "counts_before": _before(lookup, box_lists),
        "counts_after": _counts(
            lookup, result.images_by_class, result.boxes_by_class, result.negative_images
        ),
        "boxes_dropped": {
            name(k): v for k, v in sorted(result.boxes_dropped.items(), key=lambda kv: str(kv[0]))
        },
        "skipped_images": {"count": len(result.skipped), "ids": result.skipped},
        "records": result.records,
        "num_shards": shards,
        "shards": [s.to_dict() for s in result.shards],
    }

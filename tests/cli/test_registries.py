"""One source of truth: findings, metric protocols, converters and recipes are registries.

A test-local finding / protocol / converter, registered here and removed again by its fixture,
shows up in the engine and in the CLI (choices, help, dispatch) with no other file edited; every
registered one is described; every choice option of the CLI lists the registry's names; every
command's ``--json`` / ``--quiet`` is the one shared definition.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import typer

from tfod_tools.cli.app import _load_commands, app, main
from tfod_tools.data.balance.recipes import RECIPES, load_recipe, recipe_names
from tfod_tools.data.convert import CONVERTERS, converter_names
from tfod_tools.data.convert.registry import register_converter, unregister_converter
from tfod_tools.diagnostics.engine import diagnose
from tfod_tools.diagnostics.findings import RULES, finding_rule, rules, unregister
from tfod_tools.diagnostics.model import Finding
from tfod_tools.errors import TfodError
from tfod_tools.evaluation import protocols as protocol_package
from tfod_tools.evaluation.protocols import (
    PROTOCOL_REGISTRY,
    MetricProtocol,
    ProtocolResult,
    parse_protocols,
    protocol_names,
    protocols,
    register_protocol,
    unregister_protocol,
)
from tfod_tools.evaluation.scoring import checkpoint_metrics
from tfod_tools.tensorboard.writer import EventWriter

REF = Path(__file__).resolve().parents[1] / "data" / "coco_val2014_100"
GT = REF / "instances_val2014_100.json"
DT = REF / "instances_val2014_fakebbox100_results.json"

# The order findings are listed in (tests and the report depend on it).
FINDING_ORDER = [
    "undefined_area_metric",
    "single_eval_point",
    "overfitting",
    "loss_problem",
    "learning_rate_never_decays",
    "learning_rate_ends_early",
    "best_checkpoint",
    "score_threshold_high",
    "config_findings",
    "eval_too_small",
    "class_absent_in_eval",
    "class_imbalance",
    "train_eval_mismatch",
    "train_eval_leak",
    "duplicate_images",
    "annotation_issue",
    "annotation_outliers",
    "anchor_coverage",
    "low_class_ap",
    "image_level",
    "likely_label_errors",
]


def _click_command(name: str) -> Any:
    _load_commands()
    group = typer.main.get_command(app)
    ctx = typer.Context(group)
    return group.get_command(ctx, name)  # type: ignore[attr-defined]


def _choices(command: str, option: str) -> list[str]:
    """The names ``option`` accepts, checked to be listed by ``tfod COMMAND --help``.

    Listed either as its ``<a|b|c>`` metavar or, for long lists (a short metavar such as
    ``TEMPLATE`` keeps 80-column help readable), as ``a | b | c`` in its help text.
    """
    cmd = _click_command(command)
    param = next(p for p in cmd.params if option in p.opts)
    choices = [str(c) for c in param.type_descriptor.choices]
    names, help_text = param.get_help_record(typer.Context(cmd))  # e.g. "--protocol <coco|voc07|voc>"
    metavar = names.rsplit(" ", 1)[-1]
    listed = metavar == f"<{'|'.join(choices)}>" or " | ".join(choices) in help_text
    assert listed, (names, help_text)
    return choices


def _model_dir(tmp_path: Path) -> Path:
    with EventWriter(tmp_path / "eval") as writer:
        writer.add_scalar("DetectionBoxes_Precision/mAP", 0.5, step=1000)
    return tmp_path


# -- findings ---------------------------------------------------------------------------------------


@pytest.fixture
def local_finding() -> Iterator[str]:
    @finding_rule(25)
    def test_local_finding(inputs: Any) -> Finding | None:
        """A test-local finding: always there, between single_eval_point and overfitting."""
        return Finding("test_local_finding", "info", f"seen {inputs.model_dir.name}", {}, "nothing")

    @finding_rule(26, needs=("config",))
    def test_local_needs_config(inputs: Any) -> Finding | None:
        """A test-local finding that needs a pipeline (so never runs here)."""
        raise AssertionError("needs=('config',) must skip this rule without a pipeline")

    yield "test_local_finding"
    unregister("test_local_finding")
    unregister("test_local_needs_config")


def test_findings_keep_their_order_and_are_described() -> None:
    names = [rule.name for rule in rules()]
    assert names == FINDING_ORDER
    assert all(rule.description for rule in rules())
    orders = [rule.order for rule in rules()]
    assert len(set(orders)) == len(orders)


def test_a_registered_finding_runs_in_the_engine_and_the_cli(
    local_finding: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model_dir = _model_dir(tmp_path)
    assert diagnose(model_dir).ids() == ["single_eval_point", local_finding, "best_checkpoint"]
    assert main(["diagnose", "--model-dir", str(model_dir), "--json", "-q"]) == 0
    ids = [f["id"] for f in json.loads(capsys.readouterr().out)["findings"]]
    assert local_finding in ids


def test_an_unregistered_finding_is_gone(tmp_path: Path) -> None:
    assert "test_local_finding" not in RULES
    assert diagnose(_model_dir(tmp_path)).ids() == ["single_eval_point", "best_checkpoint"]


def test_a_finding_without_a_docstring_is_refused() -> None:
    with pytest.raises(ValueError, match="docstring"):

        @finding_rule(999)
        def undocumented(inputs: Any) -> None:
            return None

    assert "undocumented" not in RULES


# -- metric protocols -------------------------------------------------------------------------------


@pytest.fixture
def local_protocol() -> Iterator[str]:
    def evaluate(data: Any, options: Any) -> ProtocolResult:
        return ProtocolResult({"images": len(data.images), "iou": options.iou}, ["toy result"])

    register_protocol(
        MetricProtocol("toy", "A test-local protocol", evaluate, tags=lambda data: {"Toy/images": 1.0})
    )
    yield "toy"
    unregister_protocol("toy")


def test_protocols_are_described_and_are_the_cli_choices() -> None:
    assert protocol_names() == ("coco", "voc07", "voc")
    assert all(p.description for p in protocols())
    assert _choices("metrics", "--protocol") == list(protocol_names())
    with pytest.raises(ValueError, match="description"):
        register_protocol(MetricProtocol("blank", " ", lambda data, options: ProtocolResult({}, [])))
    assert "blank" not in PROTOCOL_REGISTRY


def test_each_built_in_protocol_module_registers_its_own_protocols() -> None:
    modules = {p.name: p.evaluate.__module__ for p in protocols()}
    package = protocol_package.__name__
    assert modules == {"coco": f"{package}.coco", "voc07": f"{package}.voc", "voc": f"{package}.voc"}


DROPPED_IN = """
from tfod_tools.evaluation.protocols import MetricProtocol, ProtocolResult, register_protocol


def _evaluate(data, options):
    return ProtocolResult({"dropped_in": len(data.images)}, ["dropped-in result"])


register_protocol(MetricProtocol("dropin", "A protocol module dropped into the package", _evaluate, order=15))
"""


@pytest.fixture
def dropped_in_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module ``dropin.py`` in a folder on the package's ``__path__``, as if saved in the package."""
    (tmp_path / "dropin.py").write_text(DROPPED_IN)
    monkeypatch.setattr(protocol_package, "__path__", [*protocol_package.__path__, str(tmp_path)])
    monkeypatch.setattr(protocol_package._modules, "loaded", False)
    yield "dropin"
    unregister_protocol("dropin")
    sys.modules.pop(f"{protocol_package.__name__}.dropin", None)


def test_a_protocol_module_dropped_into_the_package_is_offered_with_no_other_file_edited(
    dropped_in_protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert protocol_names() == ("coco", dropped_in_protocol, "voc07", "voc")
    assert _choices("metrics", "--protocol") == list(protocol_names())
    assert (
        main(["metrics", "--gt", str(GT), "--dt", str(DT), "--protocol", dropped_in_protocol, "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out) == {"dropped_in": 100}


def test_a_registered_protocol_is_offered_by_tfod_metrics_and_evaluate(
    local_protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_protocol in _choices("metrics", "--protocol")
    assert main(["metrics", "--gt", str(GT), "--dt", str(DT), "--protocol", local_protocol, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"images": 100, "iou": 0.5}
    assert main(["metrics", "--gt", str(GT), "--dt", str(DT), "--protocol", local_protocol]) == 0
    assert "toy result" in capsys.readouterr().out
    assert parse_protocols("toy,coco") == ("coco", "toy")
    assert main(["evaluate", "--help"]) == 0
    assert "coco,voc,toy" in capsys.readouterr().out


def test_an_unknown_protocol_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--gt", str(GT), "--dt", str(DT), "--protocol", "toy"]) == 2
    words = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "'toy' is not one of 'coco', 'voc07', 'voc'" in words
    with pytest.raises(TfodError, match="unknown metrics toy"):
        parse_protocols("toy")


def test_checkpoint_metrics_reads_the_registry(local_protocol: str) -> None:
    from tfod_tools.data.model import AnnotatedSet, GroundTruth, ImageTable

    data = AnnotatedSet(
        images=ImageTable.from_sizes([1], [10], [10]),
        categories={1: "a"},
        ground_truth=GroundTruth.from_arrays([1], [[0, 0, 5, 5]], [1]),
    )
    assert checkpoint_metrics(data, ("toy",), {"Loss/total_loss": 2.0}) == {
        "Toy/images": 1.0,
        "Loss/total_loss": 2.0,
    }


# -- converters -------------------------------------------------------------------------------------


@pytest.fixture
def local_converter() -> Iterator[str]:
    @register_converter("toyfmt", order=99, accepts=("class_name",))
    def read_toy(annotations: Any, images: Any = None, *, class_name: str = "") -> Any:
        """A test-local format whose reader only says it was called."""
        raise TfodError(f"toy reader called with class {class_name}", path=annotations)

    yield "toyfmt"
    unregister_converter("toyfmt")


def test_converters_are_described_and_are_the_cli_choices() -> None:
    assert converter_names() == ("coco", "voc", "csv")
    assert all(c.description for c in CONVERTERS.values())
    assert _choices("convert", "--from") == list(converter_names())


def test_a_registered_converter_is_offered_and_dispatched_by_tfod_convert(
    local_converter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert local_converter in _choices("convert", "--from")
    args = ["convert", "--from", local_converter, "-a", str(tmp_path / "x"), "-o", str(tmp_path / "o")]
    assert main([*args, "--class-name", "dot", "-q"]) == 2
    assert "toy reader called with class dot" in capsys.readouterr().err
    assert main([*args, "--image-list", str(tmp_path / "ids.txt")]) == 2
    assert "--image-list is for --from voc only" in capsys.readouterr().err


def test_an_unknown_converter_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "--from", "toyfmt", "-a", str(tmp_path), "-o", str(tmp_path / "o")]) == 2
    words = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "'toyfmt' is not one of 'coco', 'voc', 'csv'" in words


# -- recipes ----------------------------------------------------------------------------------------


def test_recipes_are_the_shipped_yaml_files_and_are_described() -> None:
    folder = resources.files("tfod_tools") / "resources" / "augment"
    shipped = sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))
    assert list(recipe_names()) == shipped == list(RECIPES)
    for name in RECIPES:
        recipe = load_recipe(name)
        assert recipe.name == name and recipe.purpose.strip()
    help_line = next(p.help for p in _click_command("balance").params if "--recipe" in p.opts)
    assert all(name in help_line for name in RECIPES)


# -- shared options ---------------------------------------------------------------------------------


def test_every_json_and_quiet_option_is_the_shared_definition() -> None:
    from tfod_tools.cli.app import COMMAND_MODULES

    seen = {"--json": 0, "--quiet": 0}
    for name in COMMAND_MODULES:
        for param in _click_command(name).params:
            if "--json" in param.opts:
                seen["--json"] += 1
                assert param.help == "Print the result as JSON." and param.default is False, name
            if "--quiet" in param.opts:
                seen["--quiet"] += 1
                assert param.opts == ["--quiet", "-q"] or sorted(param.opts) == ["--quiet", "-q"], name
                assert param.help == "No progress output.", name
    assert seen["--json"] == len(COMMAND_MODULES)
    assert seen["--quiet"] >= 6


@pytest.mark.parametrize(
    ("command", "option", "names"),
    [
        ("metrics", "--iou-type", ["bbox", "segm"]),
        ("metrics", "--pixel-convention", ["continuous", "inclusive"]),
        ("curves", "--format", ["csv", "json", "md"]),
        ("synth", "--kind", ["shapes", "xray-like"]),
        ("synth", "--format", ["jpeg", "png"]),
        ("balance", "--strategy", ["repeat-factor", "oversample"]),
        ("balance", "--on-bad-image", ["fail", "skip"]),
        ("convert", "--on-bad-image", ["fail", "skip"]),
        ("convert", "--sixteen-bit", ["scale", "keep"]),
        ("pipeline", "--template", ["tiny-ssd", "tiny-fpnlite", "ssd-mobilenet-v2-fpnlite-320"]),
        ("train", "--eval", ["none", "continuous"]),
        ("train", "--eval-device", ["cpu", "auto"]),
    ],
)
def test_closed_choices_are_typed(command: str, option: str, names: list[str]) -> None:
    assert _choices(command, option) == names

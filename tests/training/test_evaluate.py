"""`restauro evaluate`: any folder of paintings, every mask kind and method, JSON + Markdown + PNG.

Tiny nets and a few z-steps: these check what the evaluation produces and guarantees (same masks
for every method, pixels outside the mask untouched, every registered method scored, typed errors),
never the quality figures themselves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from restauro.damage import EVAL_MASKS
from restauro.errors import DatasetError, InvalidParameter, WeightsUnavailable
from restauro.images import decode_image, encode_png
from tests.data import paintings_dir, squeezenet_weights, textured_image
from training import evaluate as ev
from training.cli import main

ALL_METHODS = ("cluster", "general", "oracle", "product", "telea", "navier_stokes")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder the bundle never saw: three painting-like images of different sizes."""
    root = tmp_path / "paintings"
    (root / "style").mkdir(parents=True)
    for i, (h, w) in enumerate([(90, 120), (100, 80), (96, 96)]):
        (root / "style" / f"p{i}.png").write_bytes(encode_png(textured_image(h, w, seed=i)))
    return root


def _options(registry: Path, folder: Path, **overrides) -> ev.EvalOptions:
    base = dict(
        registry=registry,
        images=folder,
        masks=EVAL_MASKS,
        limit=2,
        candidates=2,
        steps=2,
        perceptual_weights=squeezenet_weights(),
        diversity_samples=4,
        grid_paintings=2,
    )
    return ev.EvalOptions(**(base | overrides))


def test_every_method_with_json_markdown_and_grids(
    tiny_registry: Path, folder: Path, tmp_path: Path
) -> None:
    kinds = ("strokes", "cracks")  # every kind's shape is tested in tests/restauro/test_damage.py
    evaluation = ev.evaluate(_options(tiny_registry, folder, masks=kinds))
    written = ev.write_report(evaluation, tmp_path / "out")
    report = json.loads((tmp_path / "out/evaluation.json").read_text())
    methods = ALL_METHODS

    assert report["test_set"]["source"] == "external folder"
    assert report["test_set"]["paintings"] == 2
    assert set(report["masks"]) == set(kinds)
    assert len(report["rows"]) == 2 * len(kinds)
    for row in report["rows"]:
        assert set(row["scores"]) == set(methods)
        assert row["routed_to"] in (0, 1) and row["oracle_cluster"] in (0, 1)
        for scores in row["scores"].values():
            assert scores["outside_mask_changed"] == 0
            assert np.isfinite([scores[m] for m in ev.METRICS]).all()
            assert scores["perceptual"] >= 0
    for summary in report["masks"].values():
        assert set(summary["methods"]) == set(methods)
        assert {"cluster - general", "oracle - cluster"} <= set(summary["paired"])
        best = summary["best_gan"]
        assert best in ("cluster", "general", "product")
        assert f"{best} - telea" in summary["paired"]
        stats = summary["paired"]["cluster - general"]["psnr"]
        assert stats["n"] == 2 and stats["stderr"] is not None
    # the oracle is at least as good as the routed cluster on the metric it chooses by
    for row in report["rows"]:
        assert row["scores"]["oracle"]["psnr_hole"] >= row["scores"]["cluster"]["psnr_hole"]
    assert set(report["diversity"]["gans"]) == {"c0", "c1", "general"}
    assert all(score >= 0 for score in report["diversity"]["gans"].values())

    markdown = (tmp_path / "out/report.md").read_text()
    assert "uncalibrated" in markdown and "cluster - general" in markdown
    names = {p.name for p in written}
    for kind in kinds:
        grid = decode_image((tmp_path / "out" / f"grid_{kind}_1.png").read_bytes()).rgb
        cell = 128 + 4  # 64 px cells shown at 128 px, 4 px gaps
        assert grid.shape[1] == (2 + len(methods)) * cell  # original | damaged | methods
        assert grid.shape[0] == 18 + 2 * cell
        assert f"grid_{kind}_1.png" in markdown
    assert {"samples_c0.png", "samples_general.png"} <= names


def test_a_registered_variant_is_scored_on_the_same_mask_with_pixels_outside_kept(
    tiny_registry: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a variant registered in one line, as a new restoration option would be
    monkeypatch.setattr(ev, "METHODS", dict(ev.METHODS))
    ev.gan_variant("cluster_no_d", "routed", "no perceptual term", perceptual_weight=0.0)
    evaluation = ev.evaluate(
        _options(tiny_registry, folder, masks=("centre",), limit=1, diversity_samples=0)
    )
    report = evaluation.report
    assert report["methods"]["cluster_no_d"]["params"]["perceptual_weight"] == 0.0
    assert report["methods"]["cluster"]["params"]["perceptual_weight"] > 0
    assert set(report["rows"][0]["scores"]) == {*ALL_METHODS, "cluster_no_d"}
    entry = evaluation.grids["centre"][0]
    mask, original = entry["mask"], entry["original"]
    assert np.array_equal(entry["damaged"][~mask], original[~mask])
    for image in entry["images"].values():
        assert np.array_equal(image[~mask], original[~mask])
        assert not np.array_equal(image[mask], entry["damaged"][mask])  # the hole was filled


def test_classical_methods_only_and_no_perceptual_weights(
    tiny_registry: Path, folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from restauro.config import get_settings

    monkeypatch.delenv("RESTAURO_SQUEEZENET_WEIGHTS", raising=False)
    get_settings.cache_clear()
    try:
        evaluation = ev.evaluate(
            _options(
                tiny_registry,
                folder,
                masks=("centre",),
                methods=("telea", "navier_stokes"),
                perceptual_weights=None,
                size=48,
            )
        )
    finally:
        get_settings.cache_clear()
    report = evaluation.report
    assert report["size"] == 48 and not report["perceptual"]["available"]
    assert "skipped" in report["perceptual"]["note"] and "skipped" in report["diversity"]
    summary = report["masks"]["centre"]
    assert set(summary["methods"]) == {"telea", "navier_stokes"}
    assert "perceptual" not in summary["methods"]["telea"]
    assert summary["paired"] == {}  # no GAN method: no GAN comparison
    ev.write_report(evaluation, tmp_path / "out")
    assert "skipped" in (tmp_path / "out/report.md").read_text()


def test_the_training_folder_without_a_validation_split_is_refused(tiny_registry: Path) -> None:
    # the session's tiny bundle holds out nothing: only --all-images can test on its folder
    with pytest.raises(DatasetError, match="no validation split"):
        ev.evaluate(_options(tiny_registry, paintings_dir(), methods=("telea",)))
    evaluation = ev.evaluate(
        _options(
            tiny_registry,
            paintings_dir(),
            methods=("telea",),
            all_images=True,
            limit=1,
            masks=("centre",),
            diversity_samples=0,
        )
    )
    assert "INCLUDING paintings the bundle trained on" in evaluation.report["test_set"]["note"]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"masks": ("centre", "fire")}, InvalidParameter),
        ({"methods": ("cluster", "magic")}, InvalidParameter),
        ({"size": 16}, InvalidParameter),
        ({"diversity_samples": 1}, InvalidParameter),
        ({"candidates": 0}, InvalidParameter),
        ({"steps": 0}, InvalidParameter),
        ({"perceptual_weights": Path("/nonexistent/squeezenet.pth")}, WeightsUnavailable),
    ],
)
def test_bad_options_are_typed_errors(tiny_registry, folder, overrides, error) -> None:
    with pytest.raises(error):
        ev.evaluate(_options(tiny_registry, folder, **({"methods": ("telea",)} | overrides)))


def test_a_variant_with_an_unknown_parameter_fails_when_registered(monkeypatch) -> None:
    monkeypatch.setattr(ev, "METHODS", dict(ev.METHODS))
    with pytest.raises(InvalidParameter, match="no_such_knob"):
        ev.gan_variant("broken", "routed", no_such_knob=1)
    with pytest.raises(InvalidParameter, match="already registered"):
        ev.gan_variant("cluster", "routed")


def test_cli_writes_the_report_and_fails_in_one_line(
    tiny_registry, folder, tmp_path, monkeypatch, capsys
) -> None:
    def run(*args: object) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["restauro", "evaluate", *map(str, args)])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        return exit_info.value.code or 0, out.out, out.err

    common = ("--registry", tiny_registry, "--images", folder, "-q", "--limit", 1)
    flags = ("--masks", "cracks", "--methods", "telea,general", "--steps", 2, "--candidates", 2)
    code, out, _ = run(*common, *flags, "--diversity-samples", 0, "--out", tmp_path / "o")
    assert code == 0, out
    assert "cracks (1 paintings)" in out and "general - telea" in out
    assert (tmp_path / "o/report.md").is_file() and (tmp_path / "o/grid_cracks_1.png").is_file()
    streamed = (tmp_path / "o/rows.jsonl").read_text().splitlines()
    assert [json.loads(line)["mask"] for line in streamed] == ["cracks"]
    for bad, word in ((("--masks", "centre,fire"), "fire"), (("--threads", 0), "--threads")):
        code, _, err = run(*common, *bad)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and word in lines[0] and "Traceback" not in err

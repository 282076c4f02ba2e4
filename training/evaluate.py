"""``restauro evaluate``: how well does a bundle restore paintings it never saw, against what?

The product exists to restore paintings better than the alternatives, and its central claim is that
cluster-specialised DCGANs restore better than one general DCGAN. This measures both, as a product
feature an operator runs on any bundle and any folder of undamaged paintings:

- **Test paintings.** By default the bundle's validation split (paintings its GANs never trained
  on). A folder the bundle was not trained on is used whole; ``all_images`` uses every image of the
  training folder too (then the report says that training paintings are included).
- **Damage.** Each painting, centre-cropped to ``size``, gets each mask kind of
  :mod:`restauro.damage` (centre square, free-form strokes, cracks, blotches). A mask is a pure
  function of (kind, size, seed, painting path): every method restores exactly the same holes.
- **Methods** come from a small registry (:data:`METHODS`): the cluster the painting is routed to,
  the general DCGAN, the oracle cluster (the best cluster for this painting, judged against the
  undamaged original: an upper bound on what better routing could give), OpenCV Telea and
  Navier-Stokes. A new restoration variant is one line, a name plus ``InpaintParams`` overrides::

      gan_variant("cluster+finetune", "routed", "G fine-tuned per image", finetune_steps=100)

  GAN restorations go through the core's one entry point (:func:`_restore`), with the same seed
  for every method, so the figures measure what the service does.
- **Metrics.** PSNR and SSIM over the whole image and in the hole, L1 in the hole, and the
  uncalibrated SqueezeNet perceptual distance of :mod:`restauro.perceptual` (skipped, with a note,
  when no weights file is configured). Every restoration is also checked to leave the pixels
  outside the mask untouched.
- **Comparisons.** Paired differences with standard errors (same painting, same mask):
  cluster - general, oracle - cluster, and the best GAN method - Telea / Navier-Stokes.
- **Diversity** of every GAN of the bundle: the mean pairwise perceptual distance of N samples
  from a fixed seed, beside the same score for real test paintings. A collapsed GAN draws
  near-identical samples, so mode collapse shows as a low number, not only in a picture.

:func:`write_report` writes ``evaluation.json``, ``report.md`` and PNG grids (original | damaged |
each method) under an output folder.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from restauro.bundle import GENERAL, Bundle, Target
from restauro.damage import EVAL_MASKS, evaluation_mask
from restauro.dataset import FEATURE_SIDE, find_image_files, ingest
from restauro.errors import DatasetError, InvalidParameter
from restauro.images import center_crop_square, encode_png, from_model_range
from restauro.inpaint import InpaintParams
from restauro.metrics import hole_metrics, ns_baseline, telea_baseline
from restauro.progress import Progress, report
from restauro.registry import Registry
from restauro.request import AUTO, RestoreRequest
from restauro.restore import restore

ROUTED, GENERAL_TARGET, ORACLE = "routed", "general", "oracle"
GAN_TARGETS = (ROUTED, GENERAL_TARGET, ORACLE)

# metric -> True when higher is better
METRICS: dict[str, bool] = {
    "psnr": True,
    "ssim": True,
    "psnr_hole": True,
    "ssim_hole": True,
    "l1_hole": False,
    "perceptual": False,
}
PERCEPTUAL_NOTE = (
    "perceptual = uncalibrated LPIPS-style distance on SqueezeNet 1.1 (the shipped Caffe weights): "
    "unit-normalised channels of 7 layers, squared differences averaged over positions, summed; "
    "lower is better; comparable only between methods of one evaluation at one image size"
)


# --- the method registry -------------------------------------------------------------------------
@dataclass(frozen=True)
class Method:
    """One way of restoring a damaged painting.

    A GAN method names whose networks restore (``target``: the routed cluster, the general DCGAN,
    or the oracle cluster) and how: ``overrides`` of the evaluation's ``InpaintParams`` (the
    paper's engine, the GAN on every hole, so that cluster vs general compares GANs), or
    ``product_engine``: whatever engine ``restore()`` uses by default, i.e. what a user gets. A
    classical method is a function ``(damaged rgb, mask) -> restored rgb``.
    """

    name: str
    description: str
    target: str | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    classical: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    product_engine: bool = False

    @property
    def is_gan(self) -> bool:
        return self.target is not None


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add a method to the registry (a name may be registered once)."""
    if method.name in METHODS:
        raise InvalidParameter(f"evaluation method {method.name!r} is already registered")
    if (method.target is None) == (method.classical is None):
        raise InvalidParameter(f"method {method.name!r} needs exactly one of target / classical")
    if method.target is not None and method.target not in GAN_TARGETS:
        raise InvalidParameter(f"method {method.name!r}: target must be one of {GAN_TARGETS}")
    try:  # unknown or out-of-range parameters fail at registration, not after an hour of work
        replace(InpaintParams(), **dict(method.overrides))
    except TypeError as exc:
        raise InvalidParameter(f"method {method.name!r}: {exc}") from exc
    METHODS[method.name] = method
    return method


def gan_variant(name: str, target: str = ROUTED, description: str = "", **overrides: Any) -> Method:
    """Register a GAN restoration variant: a name, whose networks, and InpaintParams overrides."""
    text = description or f"{target} GAN with {overrides}"
    return register(Method(name, text, target=target, overrides=overrides))


gan_variant("cluster", ROUTED, "the GAN of the cluster the painting is routed to")
gan_variant("general", GENERAL_TARGET, "the general DCGAN trained on every painting")
gan_variant(
    "oracle", ORACLE, "best cluster per painting against the original: upper bound on routing"
)
register(
    Method(
        "product",
        "restore() with its default engine and routing: what a user of the service gets",
        target=ROUTED,
        product_engine=True,
    )
)
register(Method("telea", "OpenCV fast-marching inpainting (Telea 2004)", classical=telea_baseline))
register(Method("navier_stokes", "OpenCV Navier-Stokes (Bertalmio 2001)", classical=ns_baseline))


def resolve_methods(names: Sequence[str] | None) -> list[Method]:
    """The registered methods of these names (all, in registration order, for None)."""
    if names is None:
        return list(METHODS.values())
    unknown = [n for n in names if n not in METHODS]
    if unknown or not names:
        raise InvalidParameter(f"unknown methods {unknown}; registered: {', '.join(METHODS)}")
    return [METHODS[n] for n in dict.fromkeys(names)]


# --- options -------------------------------------------------------------------------------------
@dataclass
class EvalOptions:
    registry: Path
    images: Path | None = None  # None: the folder the bundle was trained on
    version: str | None = None
    all_images: bool = False  # every image of the folder, even those the bundle trained on
    masks: tuple[str, ...] = ("centre", "strokes")
    size: int | None = None  # None: the bundle's image size
    limit: int | None = None  # at most this many paintings (spread over the folder's styles)
    methods: tuple[str, ...] | None = None  # None: every registered method
    candidates: int | None = None  # None: InpaintParams' default
    steps: int | None = None  # None: InpaintParams' default
    seed: int = 0  # masks, latents and diversity samples
    device: str = "cpu"
    perceptual_weights: Path | None = None  # SqueezeNet 1.1 file; None: skip perceptual scores
    diversity_samples: int = 16  # per GAN; 0 = no diversity scores
    grid_paintings: int = 16  # paintings shown in the PNG grids, per mask kind
    rows_log: Path | None = None  # append each scored row here as a JSON line, as it completes


@dataclass
class Evaluation:
    """The JSON-able report, and the pictures of the first paintings for the grids."""

    report: dict[str, Any]
    grids: dict[str, list[dict[str, Any]]]  # mask -> [{path, original, damaged, method: rgb}]
    samples: dict[str, np.ndarray]  # GAN name -> its diversity samples (N x S x S x 3)


def _check(options: EvalOptions) -> None:
    unknown = sorted(set(options.masks) - set(EVAL_MASKS))
    if unknown or not options.masks:
        raise InvalidParameter(f"masks must be among {', '.join(EVAL_MASKS)}, got {unknown}")
    if options.size is not None and not 32 <= options.size <= FEATURE_SIDE:
        raise InvalidParameter(f"--size must lie in [32, {FEATURE_SIDE}], got {options.size}")
    if options.limit is not None and options.limit < 1:
        raise InvalidParameter(f"--limit must be >= 1, got {options.limit}")
    if options.diversity_samples == 1 or options.diversity_samples < 0:
        raise InvalidParameter("--diversity-samples must be 0 (off) or >= 2")
    if options.grid_paintings < 0:
        raise InvalidParameter("--grid-paintings must be >= 0")


# --- the run -------------------------------------------------------------------------------------
def evaluate(options: EvalOptions, progress: Progress | None = None) -> Evaluation:
    """Restore every test painting under every mask with every method, and score the results."""
    _check(options)
    methods = resolve_methods(options.methods)
    bundle = Registry(options.registry).load(options.version)
    size = options.size or bundle.image_size
    folder, source, paths, note = _test_paths(bundle, options)
    dataset = ingest(folder, options.limit, options.seed, progress=progress, include=paths)
    paintings = dataset.paintings
    base = InpaintParams()
    params = replace(
        base,
        candidates=base.candidates if options.candidates is None else options.candidates,
        steps=base.steps if options.steps is None else options.steps,
        seed=options.seed,
    )
    # the request's own bounds, checked before an hour of work rather than at the first GAN call
    RestoreRequest(candidates=params.candidates, steps=params.steps, seed=params.seed)
    perceptual, perceptual_note = _perceptual(options)
    if options.rows_log is not None:
        options.rows_log.parent.mkdir(parents=True, exist_ok=True)
        options.rows_log.write_text("")
    loads = [os.getloadavg()]
    started = time.perf_counter()

    rows: list[dict[str, Any]] = []
    grids: dict[str, list[dict[str, Any]]] = {kind: [] for kind in options.masks}
    seconds: dict[str, float] = dict.fromkeys((m.name for m in methods), 0.0)
    engines: dict[str, dict[str, Any]] = {}  # GAN method -> InpaintParams as restore() ran them
    total = len(paintings) * len(options.masks)
    for i, painting in enumerate(paintings):
        original = center_crop_square(painting.rgb, size)
        for j, kind in enumerate(options.masks):
            report(progress, "evaluate", i * len(options.masks) + j, total)
            mask = evaluation_mask(kind, size, options.seed, painting.path)
            damaged = original.copy()
            damaged[mask] = 0  # nothing of the hole may leak into any method
            outcome = _restore_all(bundle, methods, damaged, mask, original, params, options)
            row: dict[str, Any] = {
                "path": painting.path,
                "label": painting.label,
                "mask": kind,
                "hole_fraction": float(mask.mean()),
                **outcome.info,
                "scores": {},
            }
            names = list(outcome.images)
            distances = (
                perceptual.distances(
                    np.stack([outcome.images[n] for n in names]),
                    np.repeat(original[None], len(names), axis=0),
                )
                if perceptual is not None
                else None
            )
            for k, name in enumerate(names):
                image = outcome.images[name]
                scores = hole_metrics(image, original, mask)
                if distances is not None:
                    scores["perceptual"] = float(distances[k])
                scores["outside_mask_changed"] = int((image[~mask] != original[~mask]).any())
                scores["seconds"] = outcome.seconds[name]  # 0 when shared with another method
                row["scores"][name] = scores
                seconds[name] += outcome.seconds[name]
            for name, engine in outcome.engines.items():
                engines.setdefault(name, engine)
            rows.append(row)
            if options.rows_log is not None:  # a long run can be watched, and salvaged if cut
                with options.rows_log.open("a") as log:
                    log.write(json.dumps(row) + "\n")
            if len(grids[kind]) < options.grid_paintings:
                grids[kind].append(
                    {
                        "path": painting.path,
                        "original": original,
                        "damaged": damaged,
                        "mask": mask,
                        "images": outcome.images,
                    }
                )
    report(progress, "evaluate", total, total)
    evaluated = time.perf_counter()
    loads.append(os.getloadavg())

    diversity, samples = _diversity(bundle, perceptual, paintings, options, progress)
    methods_info = {
        m.name: {
            "description": m.description,
            "target": m.target,
            "engine": (
                ("restore() default" if m.product_engine else "evaluation") if m.is_gan else None
            ),
            "params": engines.get(m.name),  # as restore() ran them (None: classical / no row)
        }
        for m in methods
    }
    result = {
        "created": datetime.now(UTC).isoformat(),
        "bundle_version": bundle.version,
        "bundle": {
            "image_size": bundle.image_size,
            "features": bundle.manifest["features"]["kind"],
            "clusters": {str(c["id"]): c["size"] for c in bundle.manifest["clusters"]},
            "general_size": bundle.manifest.get("general", {}).get("size"),
            "training": bundle.manifest.get("training", {}),
        },
        "options": _jsonable(asdict(options)),
        "size": size,
        "test_set": {
            "folder": str(folder),
            "source": source,
            "note": note,
            "paintings": len(paintings),
            "rejected": len(dataset.rejected),
            "duplicates": len(dataset.duplicates),
        },
        "methods": methods_info,
        "perceptual": {"available": perceptual is not None, "note": perceptual_note},
        "masks": {kind: summarize(rows, kind, methods) for kind in options.masks},
        "diversity": diversity,
        "seconds": {
            "evaluate": evaluated - started,
            "diversity": time.perf_counter() - evaluated,
            "per_method": seconds,
            "per_restoration": {n: s / max(1, len(rows)) for n, s in seconds.items()},
        },
        "machine": _machine(options.device, loads),
        "rows": rows,
    }
    return Evaluation(result, grids, samples)


def _test_paths(bundle: Bundle, options: EvalOptions) -> tuple[Path, str, list[str], str]:
    """(folder, source, relative paths of the test paintings, a note for the report)."""
    dataset = bundle.manifest.get("dataset", {})
    trained_root = dataset.get("root")
    if options.images is None and trained_root is None:
        raise DatasetError(f"bundle {bundle.version} does not name its training folder: --images")
    folder = Path(options.images if options.images is not None else trained_root)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist or is not a folder")
    files = [p.relative_to(folder).as_posix() for p in find_image_files(folder)]
    if not files:
        raise DatasetError(f"no images (.jpg .jpeg .png .tif .tiff .webp) found below {folder}")
    held_out = set(dataset.get("validation", []))
    # The training folder (or a copy of it) is recognised by holding the validation paintings.
    is_training_folder = bool(held_out & set(files)) or (
        trained_root is not None and folder.resolve() == Path(trained_root).resolve()
    )
    if options.all_images:
        note = (
            "every image of the folder, INCLUDING paintings the bundle trained on"
            if is_training_folder
            else "every image of a folder the bundle was not trained on"
        )
        return folder, "all images", files, note
    if is_training_folder:
        chosen = sorted(held_out & set(files))
        if not chosen:
            raise DatasetError(
                f"bundle {bundle.version} has no validation split (trained with "
                "--validation-fraction 0): nothing held out; --all-images tests on every image"
            )
        return folder, "validation split", chosen, "paintings the bundle never trained on"
    return folder, "external folder", files, "a folder the bundle was not trained on"


def _perceptual(options: EvalOptions):
    """(PerceptualDistance or None, note): a missing weights file skips the metric, loudly."""
    from restauro.config import get_settings

    weights = options.perceptual_weights or get_settings().squeezenet_weights
    if weights is None:
        return None, (
            "perceptual distance and diversity skipped: no SqueezeNet 1.1 weights configured "
            "(RESTAURO_SQUEEZENET_WEIGHTS or --perceptual-weights)"
        )
    from restauro.perceptual import PerceptualDistance

    return PerceptualDistance(weights, options.device), f"{PERCEPTUAL_NOTE}; weights: {weights}"


# --- restorations --------------------------------------------------------------------------------
@dataclass
class _Outcome:
    images: dict[str, np.ndarray]
    seconds: dict[str, float]
    info: dict[str, Any]
    engines: dict[str, dict[str, Any]]


def _restore(
    bundle: Bundle,
    damaged: np.ndarray,
    mask: np.ndarray,
    params: InpaintParams,
    target: Target,
    device: str,
    product_engine: bool = False,
) -> tuple[np.ndarray, int | None, dict[str, Any]]:
    """The evaluation's one call into the core's entry point, so it measures what users get.

    ``target`` is ``"auto"`` (route, as the service does), ``"general"`` or a cluster id.
    ``params`` sets the engine; with ``product_engine`` only its candidates, steps and seed are
    passed and ``restore()`` chooses the rest, as it does for the service. Returns the best
    candidate, the cluster that restored it (None for the general DCGAN) and the engine's
    parameters as run.
    """
    request = RestoreRequest(
        target=target, candidates=params.candidates, steps=params.steps, seed=params.seed
    )
    engine = None if product_engine else params
    result = restore(damaged, mask, bundle, request, device=device, engine=engine)
    return result.candidates[0], result.plan.cluster, result.params.to_dict()


def _restore_all(
    bundle: Bundle,
    methods: list[Method],
    damaged: np.ndarray,
    mask: np.ndarray,
    original: np.ndarray,
    params: InpaintParams,
    options: EvalOptions,
) -> _Outcome:
    """Every method on one damaged painting; a GAN restoration shared by two methods runs once.

    The routed cluster's restoration is also that cluster's entry in the oracle's search (same
    networks, same parameters, same seed give the same result), so it is computed once.
    """
    cache: dict[tuple[Any, ...], tuple[np.ndarray, float, dict[str, Any]]] = {}
    info: dict[str, Any] = {}
    engines: dict[str, dict[str, Any]] = {}  # method -> the engine's parameters, as run
    images: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}

    def gan(target: Target, method: Method) -> tuple[np.ndarray, float]:
        method_params = replace(params, **dict(method.overrides))
        key = (method.product_engine, *sorted(method.overrides.items()))
        if (target, key) not in cache:
            t = time.perf_counter()
            image, cluster, engine = _restore(
                bundle, damaged, mask, method_params, target, options.device, method.product_engine
            )
            cache[(target, key)] = (image, time.perf_counter() - t, engine)
            if target == AUTO and cluster is not None:  # also that cluster's restoration
                info["routed_to"] = cluster
                cache[(cluster, key)] = (image, 0.0, engine)
        image, spent, engine = cache[(target, key)]
        engines.setdefault(method.name, engine)
        return image, spent

    for method in methods:
        if method.classical is not None:
            t = time.perf_counter()
            images[method.name] = method.classical(damaged, mask)
            seconds[method.name] = time.perf_counter() - t
            continue
        if method.target == ROUTED:
            images[method.name], seconds[method.name] = gan(AUTO, method)
        elif method.target == GENERAL_TARGET:
            images[method.name], seconds[method.name] = gan(GENERAL, method)
        else:  # oracle: every cluster, keep the one closest to the original (PSNR in the hole)
            tries = {c: gan(c, method) for c in bundle.cluster_ids}
            best = max(tries, key=lambda c: hole_metrics(tries[c][0], original, mask)["psnr_hole"])
            images[method.name] = tries[best][0]
            seconds[method.name] = sum(s for _, s in tries.values())
            info[f"{method.name}_cluster"] = best
    return _Outcome(images, seconds, info, engines)


# --- diversity -----------------------------------------------------------------------------------
def _diversity(
    bundle: Bundle,
    perceptual,
    paintings: list,
    options: EvalOptions,
    progress: Progress | None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Mean pairwise perceptual distance of N samples per GAN (fixed seed) and of real paintings."""
    n = options.diversity_samples
    if perceptual is None or n == 0:
        reason = "no perceptual weights" if perceptual is None else "--diversity-samples 0"
        return {"skipped": reason}, {}
    import torch

    scores: dict[str, Any] = {"samples": n, "seed": options.seed, "gans": {}}
    samples: dict[str, np.ndarray] = {}
    targets = bundle.targets()
    for i, target in enumerate(targets):
        report(progress, "diversity", i, len(targets))
        models = bundle.models(target, options.device)
        z = torch.randn(n, models.nz, generator=torch.Generator().manual_seed(options.seed))
        with torch.inference_mode():
            images = from_model_range(models.generator(z.to(options.device)))
        name = models.name
        samples[name] = images
        scores["gans"][name] = perceptual.mean_pairwise(images)
    report(progress, "diversity", len(targets), len(targets))
    real = [center_crop_square(p.rgb, bundle.image_size) for p in paintings[:n]]
    scores["real_paintings"] = perceptual.mean_pairwise(np.stack(real)) if len(real) >= 2 else None
    scores["real_count"] = len(real)
    return scores, samples


# --- summaries -----------------------------------------------------------------------------------
def _stats(values: Sequence[float]) -> dict[str, float | int | None]:
    arr = np.asarray(values, dtype=np.float64)
    n = len(arr)
    return {
        "mean": float(arr.mean()) if n else None,
        "std": float(arr.std(ddof=1)) if n > 1 else None,
        # the standard error of the mean: how far the mean would move on other paintings
        "stderr": float(arr.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
        "n": n,
    }


def summarize(rows: list[dict[str, Any]], kind: str, methods: list[Method]) -> dict[str, Any]:
    """Per method: mean / std / stderr of every metric; paired differences between methods."""
    rows = [r for r in rows if r["mask"] == kind]
    names = [m.name for m in methods]
    metrics = [m for m in METRICS if rows and all(m in r["scores"][names[0]] for r in rows)]
    per_method = {
        name: {metric: _stats([r["scores"][name][metric] for r in rows]) for metric in metrics}
        for name in names
    }
    for name in names:
        per_method[name]["outside_mask_changed"] = sum(
            r["scores"][name]["outside_mask_changed"] for r in rows
        )
        per_method[name]["seconds"] = _stats([r["scores"][name].get("seconds", 0.0) for r in rows])
    deployable = [m.name for m in methods if m.is_gan and m.target != ORACLE]
    best = (
        max(deployable, key=lambda n: per_method[n]["psnr"]["mean"])
        if rows and deployable
        else None
    )
    pairs = [("cluster", "general"), ("oracle", "cluster"), ("product", "cluster")]
    for a in dict.fromkeys([best, "product"]):
        pairs += [(a, "telea"), (a, "navier_stokes")]
    paired = {
        f"{a} - {b}": paired_difference(rows, a, b, metrics)
        for a, b in dict.fromkeys(pairs)
        if a in names and b in names and a != b
    }
    routed = [r["routed_to"] for r in rows if "routed_to" in r]
    summary: dict[str, Any] = {
        "paintings": len(rows),
        "hole_fraction": _stats([r["hole_fraction"] for r in rows]),
        "methods": per_method,
        "best_gan": best,
        "paired": paired,
    }
    if routed:
        summary["routed_to"] = {str(c): routed.count(c) for c in sorted(set(routed))}
    if routed and all("oracle_cluster" in r for r in rows):
        summary["routing_matches_oracle"] = float(
            np.mean([r["routed_to"] == r["oracle_cluster"] for r in rows])
        )
    return summary


def paired_difference(
    rows: list[dict[str, Any]], a: str, b: str, metrics: Sequence[str]
) -> dict[str, Any]:
    """Mean of (a - b) per painting, its standard error, and how often a is the better one."""
    out: dict[str, Any] = {}
    for metric in metrics:
        diff = np.array([r["scores"][a][metric] - r["scores"][b][metric] for r in rows])
        better = diff > 0 if METRICS[metric] else diff < 0
        out[metric] = {**_stats(diff), "a_better": float(better.mean()) if len(diff) else None}
    return out


# --- output --------------------------------------------------------------------------------------
def write_report(evaluation: Evaluation, out: Path) -> list[Path]:
    """``evaluation.json``, ``report.md``, ``grid_<mask>_<page>.png`` and ``samples_<gan>.png``."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "evaluation.json", out / "report.md"]
    for kind, entries in evaluation.grids.items():
        for page, start in enumerate(range(0, len(entries), GRID_ROWS), start=1):
            path = out / f"grid_{kind}_{page}.png"
            path.write_bytes(encode_png(comparison_grid(entries[start : start + GRID_ROWS])))
            written.append(path)
    for name, images in evaluation.samples.items():
        path = out / f"samples_{name}.png"
        path.write_bytes(encode_png(sample_grid(images)))
        written.append(path)
    evaluation.report["files"] = [p.name for p in written]
    written[0].write_text(json.dumps(evaluation.report, indent=2) + "\n")
    written[1].write_text(format_markdown(evaluation.report))
    return written


GRID_ROWS = 8
_HOLE_COLOUR = (255, 0, 255)  # magenta: no painting uses it much, so the hole stands out


def comparison_grid(entries: list[dict[str, Any]]) -> np.ndarray:
    """Rows of original | damaged (hole in magenta) | each method, under a header of names.

    Cells are enlarged (nearest neighbour: every pixel stays visible as it is) to at least 128 px.
    """
    if not entries:
        return np.full((16, 16, 3), 255, np.uint8)
    size = entries[0]["original"].shape[0]
    scale = max(1, int(np.ceil(128 / size)))
    cell, gap = size * scale, 4
    names = ["original", "damaged", *entries[0]["images"]]
    header = 18
    height = header + len(entries) * (cell + gap)
    width = len(names) * (cell + gap)
    grid = np.full((height, width, 3), 255, np.uint8)
    for col, name in enumerate(names):
        origin = (col * (cell + gap) + 2, 13)
        cv2.putText(grid, name[:18], origin, cv2.FONT_HERSHEY_SIMPLEX, 0.38, 0, 1, cv2.LINE_AA)
    for row, entry in enumerate(entries):
        damaged = entry["damaged"].copy()
        damaged[entry["mask"]] = _HOLE_COLOUR
        pictures = [entry["original"], damaged, *entry["images"].values()]
        top = header + row * (cell + gap)
        for col, picture in enumerate(pictures):
            big = np.repeat(np.repeat(picture, scale, axis=0), scale, axis=1)
            left = col * (cell + gap)
            grid[top : top + cell, left : left + cell] = big
    return grid


def sample_grid(images: np.ndarray, columns: int = 8) -> np.ndarray:
    """A GAN's diversity samples side by side, so the number can be checked by eye."""
    n, size = len(images), images.shape[1]
    rows = -(-n // columns)
    grid = np.full((rows * (size + 2), min(n, columns) * (size + 2), 3), 255, np.uint8)
    for i, image in enumerate(images):
        top, left = (i // columns) * (size + 2), (i % columns) * (size + 2)
        grid[top : top + size, left : left + size] = image
    return grid


def _fmt(stat: dict[str, Any] | None, digits: int) -> str:
    if not stat or stat.get("mean") is None:
        return "-"
    err = stat.get("stderr")
    return f"{stat['mean']:.{digits}f}" + (f" ± {err:.{digits}f}" if err is not None else "")


PAIRED_NOTE = (
    "Paired differences (same painting, same mask): mean of a - b ± standard error, and in "
    "brackets the share of paintings where a is the better one."
)
_COLUMNS = [
    ("psnr", "PSNR dB", 2),
    ("ssim", "SSIM", 3),
    ("psnr_hole", "PSNR hole", 2),
    ("ssim_hole", "SSIM hole", 3),
    ("l1_hole", "L1 hole", 3),
    ("perceptual", "perceptual*", 3),
]


def format_markdown(result: dict[str, Any]) -> str:
    """The human-readable report: one table per mask kind, paired differences, diversity."""
    test, machine, bundle = result["test_set"], result["machine"], result["bundle"]
    sizes = " / ".join(str(v) for v in bundle["clusters"].values())
    lines = [
        f"# Evaluation of bundle {result['bundle_version']}",
        "",
        f"- Created {result['created'][:19]} UTC on {machine['device']} "
        f"({machine['cpu_threads']} torch threads; load average "
        f"{machine['load_before'][0]:.2f} before, {machine['load_after'][0]:.2f} after).",
        f"- Bundle: {bundle['features']} features, K = {len(bundle['clusters'])} (cluster sizes "
        f"{sizes}; general {bundle['general_size']}), {bundle['image_size']} px.",
        f"- Test set: {test['paintings']} paintings from `{test['folder']}` ({test['source']}: "
        f"{test['note']}); evaluated at {result['size']} px (centre crops).",
        f"- Restoration parameters: {_params_line(result)}.",
        f"- Time: {result['seconds']['evaluate']:.0f} s restoring and scoring, "
        f"{result['seconds']['diversity']:.0f} s diversity.",
        "",
        "Mean ± standard error over paintings. Higher is better except L1 and perceptual.",
        "",
    ]
    for kind, summary in result["masks"].items():
        hole = summary["hole_fraction"]["mean"]
        lines += [
            f"## Mask: {kind} ({summary['paintings']} paintings, mean hole {hole:.1%})",
            "",
        ]
        metrics = [c for c in _COLUMNS if c[0] in next(iter(summary["methods"].values()))]
        lines.append("| method | " + " | ".join(c[1] for c in metrics) + " | s / painting |")
        lines.append("|---|" + "---:|" * (len(metrics) + 1))
        for name, stats in summary["methods"].items():
            cells = [_fmt(stats[m], d) for m, _, d in metrics]
            per = stats["seconds"]["mean"] if "seconds" in stats else None
            if per is None:  # a report written before per-row seconds: the mean over all masks
                per = result["seconds"]["per_restoration"].get(name, 0.0)
            flag = " (CHANGED PIXELS OUTSIDE THE MASK)" if stats["outside_mask_changed"] else ""
            lines.append(f"| {name}{flag} | " + " | ".join(cells) + f" | {per:.2f} |")
        lines += ["", PAIRED_NOTE, ""]
        lines.append("| a - b | " + " | ".join(c[1] for c in metrics) + " |")
        lines.append("|---|" + "---:|" * len(metrics))
        for pair, stats in summary["paired"].items():
            cells = [
                f"{_fmt(stats[m], d)} ({stats[m]['a_better']:.0%})" if m in stats else "-"
                for m, _, d in metrics
            ]
            lines.append(f"| {pair} | " + " | ".join(cells) + " |")
        if "routed_to" in summary:
            routed = ", ".join(f"c{c}: {n}" for c, n in summary["routed_to"].items())
            lines += ["", f"Routed to: {routed}."]
        if "routing_matches_oracle" in summary:
            lines.append(
                f"Routing picked the oracle's cluster for {summary['routing_matches_oracle']:.0%}"
                " of the paintings."
            )
        grids = [f for f in result.get("files", []) if f.startswith(f"grid_{kind}_")]
        if grids:
            lines += ["", "Grids: " + ", ".join(f"[{g}]({g})" for g in grids)]
        lines.append("")
    lines += ["## Diversity of the GANs", ""]
    diversity = result["diversity"]
    if "skipped" in diversity:
        lines.append(f"Skipped: {diversity['skipped']}.")
    else:
        lines += [
            f"Mean pairwise perceptual distance of {diversity['samples']} samples per GAN "
            f"(seed {diversity['seed']}); higher = more varied, a collapsed GAN scores low. "
            f"Reference: {diversity['real_count']} real test paintings at "
            f"{result['bundle']['image_size']} px.",
            "",
            "| GAN | diversity |",
            "|---|---:|",
        ]
        for name, score in diversity["gans"].items():
            lines.append(f"| [{name}](samples_{name}.png) | {score:.3f} |")
        if diversity.get("real_paintings") is not None:
            lines.append(f"| real paintings | {diversity['real_paintings']:.3f} |")
    lines += ["", f"(*) {result['perceptual']['note']}.", ""]
    return "\n".join(lines)


def _params_line(result: dict[str, Any]) -> str:
    """The common search parameters, then what each GAN method runs differently."""
    gans = {n: m["params"] for n, m in result["methods"].items() if m.get("params")}
    if not gans:
        return "no GAN method"
    base_name = "cluster" if "cluster" in gans else next(iter(gans))
    base = gans[base_name]
    line = f"{base['candidates']} candidates, {base['steps']} z-steps, seed {base['seed']}"
    for name, params in gans.items():
        changed = {k: v for k, v in params.items() if base.get(k) != v}
        if changed:
            line += f"; {name} differs from {base_name} in {changed}"
    return line


def format_summary(result: dict[str, Any]) -> str:
    """A terminal table per mask kind: whole-image PSNR, hole PSNR, perceptual; key gains."""
    lines = []
    for kind, summary in result["masks"].items():
        lines.append(f"{kind} ({summary['paintings']} paintings)")
        has_perceptual = "perceptual" in next(iter(summary["methods"].values()))
        header = f"  {'method':<16}{'PSNR dB':>16}{'PSNR hole':>16}{'SSIM':>16}"
        lines.append(header + (f"{'perceptual':>16}" if has_perceptual else ""))
        for name, s in summary["methods"].items():
            line = f"  {name:<16}{_fmt(s['psnr'], 2):>16}{_fmt(s['psnr_hole'], 2):>16}"
            line += f"{_fmt(s['ssim'], 3):>16}"
            if has_perceptual:
                line += f"{_fmt(s['perceptual'], 3):>16}"
            lines.append(line)
        for pair, stats in summary["paired"].items():
            text = f"  {pair}: PSNR {_fmt(stats['psnr'], 2)} dB"
            if "perceptual" in stats:
                text += f", perceptual {_fmt(stats['perceptual'], 3)}"
            lines.append(text)
    diversity = result["diversity"]
    if "gans" in diversity:
        scores = ", ".join(f"{n} {s:.2f}" for n, s in diversity["gans"].items())
        real = diversity.get("real_paintings")
        lines.append(f"diversity: {scores}" + (f" (real paintings {real:.2f})" if real else ""))
    else:
        lines.append(f"diversity: skipped ({diversity['skipped']})")
    if not result["perceptual"]["available"]:
        lines.append(result["perceptual"]["note"])
    return "\n".join(lines)


def _machine(device: str, loads: list[tuple[float, float, float]]) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_threads": torch.get_num_threads(),
        "device": name,
        "torch": torch.__version__,
        "load_before": list(loads[0]),
        "load_after": list(loads[-1]),
    }


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {
        k: str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
        for k, v in data.items()
    }

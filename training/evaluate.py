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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from restauro.bundle import GENERAL, Bundle, Target
from restauro.damage import EVAL_MASKS, evaluation_mask
from restauro.dataset import FEATURE_SIDE, find_image_files, ingest
from restauro.errors import DatasetError, InvalidParameter
from restauro.images import center_crop_square, from_model_range
from restauro.inpaint import InpaintParams
from restauro.metrics import hole_metrics
from restauro.progress import Progress, report
from restauro.registry import Registry
from restauro.request import AUTO, RestoreRequest
from restauro.restore import restore
from training.eval_methods import (
    GAN_TARGETS,
    GENERAL_TARGET,
    METHODS,
    ORACLE,
    ROUTED,
    Method,
    gan_variant,
    register,
    resolve_methods,
)
from training.eval_report import (
    METRICS,
    PERCEPTUAL_NOTE,
    format_markdown,
    format_summary,
    paired_difference,
    summarize,
    write_report,
)

# The evaluation's public face: the run here, its methods and its report beside it.
__all__ = [
    "GAN_TARGETS",
    "GENERAL_TARGET",
    "METHODS",
    "METRICS",
    "ORACLE",
    "ROUTED",
    "EvalOptions",
    "Evaluation",
    "Method",
    "evaluate",
    "format_markdown",
    "format_summary",
    "gan_variant",
    "paired_difference",
    "register",
    "resolve_methods",
    "summarize",
    "write_report",
]


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

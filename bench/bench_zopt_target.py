"""Can the z-optimization reach the quality of Yeh et al.'s plain 1,500 steps in <= 5 s? (issue 3)

"Quality" here is the objective the search minimizes: the best total loss (contextual +
lambda * perceptual) among the 8 candidates. The reference is Yeh et al.'s plain recipe (Adam lr
0.01, 1,500 steps, no early stop, no encoder); each fast configuration is timed to the first step
where its best loss is within 1% of the reference's final loss, and its own final loss is compared
with the reference. Paintings are held-out paintings of a trained bundle, centre-cropped to the
model size, with a central square hole (25% of the area) or a random damage mask, routed to their
cluster as the service would.

Then seconds per step at 8 candidates for the bundle's width and for the standard DCGAN width
(ngf = ndf = 64, random weights: timing does not depend on the weights), in the memory layouts
and thread counts worth trying, and torch.compile's steady speed and cold compile time, so the
time at standard width can be projected as steps needed x seconds per step.

``--encoder`` (issue 3, "encoder-initialised z"): trains an encoder per cluster the paintings
route to (on that cluster's generator and its training members, never the held-out paintings;
cached under var/bench/encoders/<bundle version>/, the bundle itself is left untouched), then
compares the shipped InpaintParams without and with the encoder on the same references.

    .venv/bin/python bench/bench_zopt_target.py --registry var/bench/registry --paintings 8 \\
        [--compile] [--out var/bench/zopt_target.json]
    .venv/bin/python bench/bench_zopt_target.py --skip-speed --encoder \\
        --reference-from var/bench/zopt_quality.json --out var/bench/zopt_encoder.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from restauro.damage import random_damage_masks
from restauro.dataset import ingest
from restauro.dcgan import DCGANConfig, Discriminator, Generator
from restauro.encoder import Encoder, EncoderConfig, EncoderSettings, train_encoder
from restauro.images import center_crop_square, read_image, to_model_range
from restauro.inpaint import InpaintParams, ZOptimizer
from restauro.registry import Registry
from restauro.safetensors_io import load_module_state, save_module

REPO = Path(__file__).resolve().parents[1]
REFERENCE = InpaintParams(candidates=8, steps=1500, lr=0.01, patience=0, encoder_fraction=0.0)
WITHIN = 0.01  # a loss within 1% of the reference's counts as reaching it

# Fast configurations, all 8 candidates and no encoder. Curves are recorded in full (no early
# stop) up to `steps` unless a patience is named.
PRUNED = replace(REFERENCE, lr=0.1, steps=150, schedule="cosine", keep=2, prune_after=25)
CANDIDATES: dict[str, InpaintParams] = {
    "lr 0.1": replace(REFERENCE, lr=0.1, steps=200),
    "lr 0.1 cosine 150": replace(REFERENCE, lr=0.1, steps=150, schedule="cosine"),
    "lr 0.2 cosine 100": replace(REFERENCE, lr=0.2, steps=100, schedule="cosine"),
    "lr 0.1 cosine 150, keep 2 after 25": PRUNED,
    "lr 0.2 cosine 100, keep 2 after 20": replace(PRUNED, lr=0.2, steps=100, prune_after=20),
    "lr 0.1 cosine 150, keep 2 after 25, patience 40": replace(PRUNED, patience=40),
}
PRODUCT = replace(InpaintParams(), encoder_fraction=0.0)
# A second pass (--second-pass, reusing the references of a first run with --reference-from).
SECOND_PASS: dict[str, InpaintParams] = {
    "lr 0.1 200, keep 2 after 25": replace(REFERENCE, lr=0.1, steps=200, keep=2, prune_after=25),
    "lr 0.1 cosine 300, keep 2 after 25": replace(PRUNED, steps=300),
}
# --encoder: the shipped params without and with the encoder (which only acts when passed).
SHIPPED = InpaintParams()
ENCODER_PASS: dict[str, InpaintParams] = {
    "default, no encoder": PRODUCT,
    "default + encoder (fraction 0.5, noise 0.1)": SHIPPED,
    "encoder fraction 1.0, noise 0.1": replace(SHIPPED, encoder_fraction=1.0),
    "encoder fraction 0.5, noise 0.3": replace(SHIPPED, encoder_noise=0.3),
    "encoder fraction 0.5, noise 0.03": replace(SHIPPED, encoder_noise=0.03),
}
ENCODER_SETTINGS = EncoderSettings(epochs=3, steps_per_epoch=100, batch_size=32, seed=0)


@dataclass
class Run:
    final: float  # best total loss at the end
    seconds: float  # wall time of the whole optimize() call
    steps: int
    curve: list[float]
    stamps: list[float]  # seconds since the call started, after each step
    start: float = math.nan  # best loss at step 1, i.e. of the starting latents

    def reach(self, level: float) -> tuple[int | None, float | None]:
        """(steps, seconds) until the best loss first got within WITHIN of ``level``."""
        bound = level + WITHIN * abs(level)
        for i, value in enumerate(self.curve):
            if value <= bound:
                return i + 1, self.stamps[i]
        return None, None


def run(models, params: InpaintParams, target: torch.Tensor, missing: torch.Tensor) -> Run:
    stamps: list[float] = []
    start = time.perf_counter()

    def progress(stage: str, done: int, total: int) -> None:
        stamps.append(time.perf_counter() - start)

    result = ZOptimizer(params).optimize(
        models.generator,
        models.discriminator,
        target,
        missing,
        encoder=models.encoder,  # None unless --encoder; encoder_fraction 0 ignores it anyway
        nz=models.config.nz,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    first = result.curve[0] if result.curve else math.nan
    return Run(float(result.total[0]), seconds, result.steps, result.curve, stamps, first)


def load_problems(
    bundle, images: Path, count: int
) -> list[tuple[str, int, np.ndarray, np.ndarray, str]]:
    """(path, cluster, painting at model size, mask, mask kind) for held-out paintings."""
    size = bundle.image_size
    held = sorted(bundle.manifest.get("dataset", {}).get("validation", []))
    if not held:
        raise SystemExit(f"bundle {bundle.version} has no held-out paintings")
    rng = np.random.default_rng(0)
    step = max(1, len(held) // count)
    paths = held[::step][:count]
    damage = random_damage_masks(len(paths), size, rng, 0.1, 0.3)
    square = np.zeros((size, size), dtype=bool)
    square[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True  # 25% of the area
    out = []
    for i, rel in enumerate(paths):
        rgb = center_crop_square(read_image(images / rel).rgb, size)
        mask, kind = (square, "square 25%") if i % 2 == 0 else (damage[i], "random")
        damaged = rgb.copy()
        damaged[mask] = 0
        cluster = bundle.route(damaged, mask).cluster
        out.append((rel, cluster, rgb, mask, kind))
    return out


def quality_section(
    bundle,
    images: Path,
    count: int,
    out: Path | None = None,
    references: dict[str, dict] | None = None,
    encoders: dict[int, torch.nn.Module] | None = None,
) -> dict:
    """Per painting: the reference run (or its figures from a previous run), then each config."""
    problems = load_problems(bundle, images, count)
    if encoders is not None:  # untimed: oneDNN sets up its kernels on a net's first batch shapes
        for cluster in sorted(encoders):
            models = replace(bundle.models(cluster), encoder=encoders[cluster])
            _, _, rgb, mask, _ = problems[0]
            missing = torch.from_numpy(mask.astype(np.float32))[None, None]
            run(models, replace(SHIPPED, steps=30), to_model_range(rgb), missing)
    rows = []
    print(f"\n## Reaching the plain 1,500-step loss ({len(problems)} held-out paintings)")
    for index, (rel, cluster, rgb, mask, kind) in enumerate(problems):
        models = bundle.models(cluster)
        if encoders is not None:
            models = replace(models, encoder=encoders[cluster])
        target = to_model_range(rgb)
        missing = torch.from_numpy(mask.astype(np.float32))[None, None]
        if references and rel in references:
            known = references[rel]
            ref = Run(known["final"], known["seconds"], known["steps"], [], [])
            row = {"path": rel, "cluster": cluster, "mask": kind, "reference": known}
        else:
            ref = run(models, replace(REFERENCE, seed=index), target, missing)
            row = {"path": rel, "cluster": cluster, "mask": kind, "reference": _summary(ref, ref)}
        for name, params in CANDIDATES.items():
            row[name] = _summary(run(models, replace(params, seed=index), target, missing), ref)
        rows.append(row)
        if out is not None:  # a long run: keep what is done
            out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
        print(
            f"- {index}: c{cluster}, {kind}: L_ref {ref.final:.2f} in {ref.seconds:.1f} s; "
            + "; ".join(
                f"{n}: ratio {row[n]['ratio']:.3f}, reach {row[n]['reach_steps']} steps "
                f"{_fmt(row[n]['reach_s'])} s"
                for n in CANDIDATES
            ),
            flush=True,
        )
    print(
        "\n| configuration | steps run | reached L_ref (1%) | steps to reach (median) "
        "| steps to reach (max) | s to reach (median / mean) | s total (mean) "
        "| final / L_ref (median / mean / max) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in ["reference", *CANDIDATES]:
        cells = [r[name] for r in rows]
        reached = [c for c in cells if c["reach_s"] is not None]
        ratios = [c["ratio"] for c in cells]
        print(
            f"| {name} | {statistics.median(c['steps'] for c in cells):.0f} "
            f"| {len(reached)}/{len(cells)} "
            f"| {_med([c['reach_steps'] for c in reached])} "
            f"| {max((c['reach_steps'] for c in reached), default='-')} "
            f"| {_med([c['reach_s'] for c in reached])} / {_mean([c['reach_s'] for c in reached])} "
            f"| {statistics.mean(c['seconds'] for c in cells):.2f} "
            f"| {statistics.median(ratios):.3f} / {statistics.mean(ratios):.3f} "
            f"/ {max(ratios):.3f} |"
        )
    return {"rows": rows}


def _summary(r: Run, ref: Run) -> dict:
    steps, seconds = r.reach(ref.final)
    return {
        "final": r.final,
        "ratio": r.final / ref.final,
        "seconds": r.seconds,
        "steps": r.steps,
        "reach_steps": steps,
        "reach_s": seconds,
        "s_per_step": r.seconds / max(r.steps, 1),
        "start_ratio": r.start / ref.final,
    }


def _fmt(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f}"


def _med(values: list[float]) -> str:
    return "-" if not values else f"{statistics.median(values):.2f}"


def _mean(values: list[float]) -> str:
    return "-" if not values else f"{statistics.mean(values):.2f}"


def train_encoders(
    bundle, images: Path, clusters: set[int], cache: Path, settings: EncoderSettings
) -> tuple[dict[int, Encoder], dict]:
    """One encoder per cluster, trained on its generator and its training members, or reloaded.

    E is trained through a copy of G (in NCHW), so the bundle's cached G is left untouched.
    """
    members = json.loads((bundle.path / "clustering" / "members.json").read_text())
    encoders: dict[int, Encoder] = {}
    info: dict = {}
    cache.mkdir(parents=True, exist_ok=True)
    for cluster in sorted(clusters):
        models = bundle.models(cluster)
        weights, log = cache / f"c{cluster}.safetensors", cache / f"c{cluster}.json"
        config = EncoderConfig(image_size=models.config.image_size, nz=models.config.nz)
        if weights.exists() and log.exists():
            encoder = Encoder(config)
            encoder.load_state_dict(load_module_state(weights))
            info[str(cluster)] = json.loads(log.read_text())
            print(f"c{cluster}: encoder reloaded from {weights}")
        else:
            paths = [p for p, c in members.items() if c == cluster]
            start = time.perf_counter()
            real = ingest(images, include=paths).training_images(config.image_size)
            read = time.perf_counter() - start
            generator = copy.deepcopy(models.generator).to(memory_format=torch.contiguous_format)
            start = time.perf_counter()
            result = train_encoder(generator, real, config, settings)
            seconds = time.perf_counter() - start
            encoder = result.encoder
            save_module(encoder, weights)
            info[str(cluster)] = {
                "paintings": len(real),
                "read_s": read,
                "train_s": seconds,
                "load_after": os.getloadavg()[0],
                "settings": {k: v for k, v in vars(settings).items()},
                "history": result.history,
            }
            log.write_text(json.dumps(info[str(cluster)], indent=2) + "\n")
        entry = info[str(cluster)]
        first, last = entry["history"][0], entry["history"][-1]
        print(
            f"c{cluster}: {entry['paintings']} paintings, trained in {entry['train_s']:.0f} s; "
            + ", ".join(f"{k} {first[k]:.3f} -> {last[k]:.3f}" for k in LOSSES),
            flush=True,
        )
        encoders[cluster] = encoder.eval().requires_grad_(False)
    return encoders, info


LOSSES = ("loss_z", "loss_rec", "loss_real")


def encoder_summary(rows: list[dict]) -> None:
    """The head start itself: the best loss of the starting latents, before any step."""
    print("\n| configuration | loss at step 1 / L_ref (median / min / max) |")
    print("|---|---|")
    for name in CANDIDATES:
        starts = [r[name]["start_ratio"] for r in rows]
        print(
            f"| {name} | {statistics.median(starts):.2f} / {min(starts):.2f} / {max(starts):.2f} |"
        )


def seconds_per_step(generator, discriminator, nz: int, steps: int, candidates: int = 8) -> float:
    size = 64
    target = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    missing = torch.zeros(1, 1, size, size)
    missing[..., 16:48, 16:48] = 1
    warm = InpaintParams(candidates=candidates, steps=3, patience=0)
    ZOptimizer(warm).optimize(generator, discriminator, target, missing, nz=nz)
    timed = replace(warm, steps=steps)
    start = time.perf_counter()
    ZOptimizer(timed).optimize(generator, discriminator, target, missing, nz=nz)
    return (time.perf_counter() - start) / steps


def nets(width: int, channels_last: bool):
    config = DCGANConfig(image_size=64, nz=100, ngf=width, ndf=width)
    torch.manual_seed(0)
    g, d = Generator(config).eval(), Discriminator(config).eval()
    if channels_last:
        g, d = g.to(memory_format=torch.channels_last), d.to(memory_format=torch.channels_last)
    return g, d


def speed_section(use_compile: bool, steps: int) -> dict:
    out: dict = {}
    print("\n## Seconds per step, 64 px, 8 candidates (random weights)")
    print("| width (ngf = ndf) | layout | threads | s/step |")
    print("|---|---|---|---|")
    for width in (32, 64):
        for layout in ("NCHW", "channels_last"):
            for threads in (1, 2):
                torch.set_num_threads(threads)
                g, d = nets(width, layout == "channels_last")
                sec = seconds_per_step(g, d, 100, steps)
                out[f"{width}/{layout}/{threads}"] = sec
                print(f"| {width} | {layout} | {threads} | {sec:.4f} |", flush=True)
    torch.set_num_threads(2)
    if use_compile:
        for width in (32, 64):
            g, d = nets(width, False)
            g, d = torch.compile(g), torch.compile(d)
            start = time.perf_counter()
            seconds_per_step(g, d, 100, 1)
            cold = time.perf_counter() - start
            sec = seconds_per_step(g, d, 100, steps)
            out[f"{width}/compile"] = {"s_per_step": sec, "cold_s": cold}
            print(f"| {width} | torch.compile (NCHW) | 2 | {sec:.4f} (cold compile {cold:.0f} s) |")
    return out


def project(report: dict, bundle) -> None:
    """Time to reach the reference at standard width: the measured time x s/step ratio 64 / 32.

    The 8-candidate step ratio is applied to the whole run; for pruned runs (fewer candidates
    after pruning) that is an approximation.
    """
    g = bundle.models("general").generator
    weight = next(g.parameters())
    layout = "channels_last" if weight.is_contiguous(memory_format=torch.channels_last) else "NCHW"
    width = bundle.models("general").config.ngf
    speed = report["speed"]
    factor = speed[f"64/{layout}/2"] / speed[f"{width}/{layout}/2"]
    print(f"\n## Projected to the standard width (ngf = ndf = 64), {layout}, 2 threads")
    print(f"s/step ratio 64 / {width} at 8 candidates: {factor:.2f}")
    print("| configuration | s to reach L_ref (median / max) at width 64 | s total (mean) |")
    print("|---|---|---|")
    rows = report["quality"]["rows"]
    for name in ["reference", *CANDIDATES]:
        reach = [r[name]["reach_s"] for r in rows if r[name]["reach_s"] is not None]
        total = statistics.mean(r[name]["seconds"] for r in rows)
        if reach:
            cell = f"{statistics.median(reach) * factor:.2f} / {max(reach) * factor:.2f}"
        else:
            cell = "never"
        print(f"| {name} | {cell} | {total * factor:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, default=REPO / "var/bench/registry")
    parser.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("RESTAURO_TEST_DATA", REPO.parent / "shared/data/paintings"))
        / "images",
    )
    parser.add_argument("--paintings", type=int, default=8)
    parser.add_argument("--speed-steps", type=int, default=30)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--reference-from", type=Path, help="JSON of a previous run")
    parser.add_argument("--second-pass", action="store_true", help="the SECOND_PASS configs")
    parser.add_argument(
        "--product", action="store_true", help="only InpaintParams() as shipped (no encoder)"
    )
    parser.add_argument(
        "--encoder", action="store_true", help="shipped params without / with a trained encoder"
    )
    parser.add_argument("--encoder-epochs", type=int, default=ENCODER_SETTINGS.epochs)
    parser.add_argument("--encoder-steps", type=int, default=ENCODER_SETTINGS.steps_per_epoch)
    parser.add_argument("--encoder-cache", type=Path, help="default var/bench/encoders/<version>")
    parser.add_argument("--train-only", action="store_true", help="with --encoder: no inpainting")
    parser.add_argument("--out", type=Path, default=REPO / "var/bench/zopt_target.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}, load average at start {load[0]:.2f}"
    )
    report: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_start": load}
    if not args.skip_speed:
        report["speed"] = speed_section(args.compile, args.speed_steps)
    if not args.skip_quality:
        bundle = Registry(args.registry).load()
        print(f"bundle {bundle.version}, model width {bundle.models('general').config.ngf}")
        report["bundle"] = bundle.version
        references = None
        if args.reference_from:
            previous = json.loads(args.reference_from.read_text())
            rows = previous.get("quality", previous)["rows"]
            references = {r["path"]: r["reference"] for r in rows}
        if args.second_pass or args.product:
            CANDIDATES.clear()
            CANDIDATES.update(SECOND_PASS if args.second_pass else {"default": PRODUCT})
        encoders = None
        if args.encoder:
            CANDIDATES.clear()
            CANDIDATES.update(ENCODER_PASS)
            settings = replace(
                ENCODER_SETTINGS, epochs=args.encoder_epochs, steps_per_epoch=args.encoder_steps
            )
            cache = args.encoder_cache or REPO / "var/bench/encoders" / bundle.version
            clusters = {p[1] for p in load_problems(bundle, args.images, args.paintings)}
            encoders, report["encoders"] = train_encoders(
                bundle, args.images, clusters, cache, settings
            )
        if not args.train_only:
            report["quality"] = quality_section(
                bundle,
                args.images,
                args.paintings,
                args.out.with_suffix(".partial.json"),
                references,
                encoders,
            )
            if args.encoder:
                encoder_summary(report["quality"]["rows"])
    if "speed" in report and "quality" in report:
        project(report, bundle)
    report["load_end"] = os.getloadavg()
    print(f"\nload average at end {report['load_end'][0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

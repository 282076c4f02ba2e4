"""Paired differences between methods of two ``restauro evaluate`` runs on the same test set.

Two bundles (say, cluster GANs trained with and without an option) are evaluated separately, with
the same paintings, masks and seeds; rows are matched by (painting, mask) and the per-painting
differences are summarised as in the evaluation's own paired table: mean ± standard error, and
the share of paintings where A is the better one.

    .venv/bin/python bench/compare_evaluations.py var/eval/ema/evaluation.json:cluster \\
        var/eval/base/evaluation.json:cluster [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from training.evaluate import METRICS, paired_difference


def _load(spec: str) -> dict[tuple[str, str], dict[str, Any]]:
    """EVALUATION.json:METHOD -> {(painting, mask): that method's scores}."""
    path, _, method = spec.rpartition(":")
    report = json.loads(Path(path).read_text())
    return {(r["path"], r["mask"]): r["scores"][method] for r in report["rows"]}


def compare(a_spec: str, b_spec: str) -> dict[str, Any]:
    a, b = _load(a_spec), _load(b_spec)
    common = sorted(set(a) & set(b))
    if not common:
        raise SystemExit("the two evaluations share no (painting, mask)")
    out: dict[str, Any] = {"a": a_spec, "b": b_spec, "masks": {}}
    for kind in sorted({k for _, k in common}):
        keys = [key for key in common if key[1] == kind]
        rows = [{"scores": {"a": a[key], "b": b[key]}} for key in keys]
        metrics = [
            m for m in METRICS if all(m in r["scores"]["a"] and m in r["scores"]["b"] for r in rows)
        ]
        out["masks"][kind] = paired_difference(rows, "a", "b", metrics)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a", help="EVALUATION.json:METHOD")
    parser.add_argument("b", help="EVALUATION.json:METHOD")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = compare(args.a, args.b)
    print(f"A = {args.a}\nB = {args.b}")
    for kind, metrics in result["masks"].items():
        parts = []
        for metric, s in metrics.items():
            parts.append(f"{metric} {s['mean']:+.3f} ± {s['stderr']:.3f} [{s['a_better']:.0%}]")
        print(f"{kind} (n={next(iter(metrics.values()))['n']}): " + "; ".join(parts))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""``make demo``: train a small bundle, serve it, restore a damaged painting over HTTP.

Everything runs on this machine with nothing else installed: the bundled public-domain sample
(demo/paintings), the embedded broker (no Redis), curl for the request. Outputs land in
demo-output/. Run it again and it reuses the bundle it trained (``--retrain`` to train anew).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "demo/paintings"
STATE = ROOT / "var/demo"
OUT = ROOT / "demo-output"
RESTAURO = [sys.executable, "-m", "training.cli"]


def step(message: str) -> None:
    print(f"\n==> {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def train(registry: Path, retrain: bool) -> None:
    if not retrain and (registry / "current").is_file():
        step(f"reusing the demo bundle in {registry} (pass --retrain to train a new one)")
        return
    step("training a small bundle on the demo sample (2 clusters + general DCGAN, CPU)")
    cmd = [
        *RESTAURO,
        "train",
        "--images",
        str(SAMPLE),
        "--registry",
        str(registry),
        "--clusters",
        "2",
        "--epochs",
        "20",
        "--batch-size",
        "32",
        "--width",
        "32",
        "--validation-fraction",
        "0",
        "--seed",
        "0",
    ]
    print(" ".join(cmd[2:]).replace("training.cli", "restauro"), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def damage(painting: Path) -> tuple[np.ndarray, np.ndarray]:
    """A painting with two losses of paint: a blotch and a scratch."""
    rgb = cv2.cvtColor(cv2.imread(str(painting)), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 3), (w // 10, h // 14), 30, 0, 360, 255, -1)
    cv2.line(mask, (w // 6, 3 * h // 4), (w // 2, 2 * h // 3), 255, max(3, w // 50))
    return rgb, mask


def side_by_side(original, mask, restored, telea) -> np.ndarray:
    shown = original.copy()
    shown[mask > 0] = (255, 0, 255)
    panels = [original, shown, restored, telea]
    labels = ["original", "damaged", "Restauro (best)", "OpenCV Telea"]
    out = []
    for panel, label in zip(panels, labels, strict=True):
        p = cv2.copyMakeBorder(panel, 24, 4, 4, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cv2.putText(p, label, (6, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(p)
    return np.hstack(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        raise SystemExit("make demo talks to the API with curl: install curl first")

    registry = STATE / "registry"
    train(registry, args.retrain)

    OUT.mkdir(exist_ok=True)
    painting = sorted((SAMPLE / "Rococo").glob("*.jpg"))[3]
    original, mask = damage(painting)
    damaged = original.copy()
    damaged[mask > 0] = 0
    cv2.imwrite(str(OUT / "damaged.png"), cv2.cvtColor(damaged, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(OUT / "mask.png"), mask)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        RESTAURO_RESULTS_DIR=str(STATE / "results"),
        RESTAURO_STATE_DIR=str(STATE / "broker"),
    )
    env.pop("RESTAURO_BROKER_URL", None)  # the embedded default: no Redis needed
    step(f"starting `restauro serve` on {base} (API + worker, embedded broker)")
    log = (OUT / "server.log").open("w")  # closed in the finally below
    server = subprocess.Popen(
        [*RESTAURO, "serve", "--registry", str(registry), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get_json(f"{base}/readyz").get("status") == "ready":
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print((OUT / "server.log").read_text()[-3000:], file=sys.stderr)
                raise SystemExit("the server did not become ready; see demo-output/server.log")
            time.sleep(0.5)

        step("POSTing the damaged painting with curl")
        curl = [
            "curl",
            "-sS",
            "-F",
            f"image=@{OUT / 'damaged.png'}",
            "-F",
            f"mask=@{OUT / 'mask.png'}",
            "-F",
            f"candidates={args.candidates}",
            f"{base}/v1/restorations",
        ]
        print(" ".join(curl), flush=True)
        job = json.loads(subprocess.run(curl, check=True, capture_output=True, text=True).stdout)
        print(json.dumps(job, indent=2))
        job_url = f"{base}/v1/restorations/{job['id']}"

        step("polling until the worker has restored it")
        while True:
            status = get_json(job_url)
            progress = status.get("progress") or {}
            print(f"  {status['status']} {progress}", flush=True)
            if status["status"] in ("succeeded", "failed"):
                break
            time.sleep(1)
        if status["status"] != "succeeded":
            raise SystemExit(f"restoration failed: {status.get('error')}")

        for cand in status["candidates"]:  # best first; the API numbers them from 1
            target = OUT / f"restored_{cand['n']}.png"
            subprocess.run(["curl", "-fsS", "-o", str(target), base + cand["url"]], check=True)
        restored = cv2.cvtColor(cv2.imread(str(OUT / "restored_1.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(restored[mask == 0], damaged[mask == 0]), "pixels outside changed"
        telea = cv2.inpaint(damaged, mask, 5, cv2.INPAINT_TELEA)
        grid = side_by_side(original, mask, restored, telea)
        cv2.imwrite(str(OUT / "side_by_side.png"), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
        (OUT / "result.json").write_text(json.dumps(status, indent=2) + "\n")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    step("done")
    print(f"cluster {status.get('cluster')} restored {painting.name}")
    print(
        f"restorations:  {OUT}/restored_1.png (best) ... restored_{len(status['candidates'])}.png"
    )
    print(f"side by side:  {OUT / 'side_by_side.png'}")
    print(f"job result:    {OUT / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

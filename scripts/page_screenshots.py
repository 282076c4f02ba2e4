"""Screenshots of the restoration page for the docs: empty, mask painted, results compared.

Runs the real thing: ``python -m service`` with its worker (the embedded SQLite broker, nothing
else needed), a painting from the shared corpus, and headless chromium taking the steps a
conservator would (tests/browser.py). Writes docs/page-empty.png, docs/page-mask.png and
docs/page-compare.png.

    .venv/bin/python scripts/page_screenshots.py --registry var/shots/registry \\
        [--painting PATH] [--out docs] [--steps 150]
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402

from restauro.images import encode_png, read_image  # noqa: E402
from tests.browser import paint, start_chrome, text, wait  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.data import paintings_dir  # noqa: E402
from tests.integration.harness import environment, stop, wait_until  # noqa: E402

# Scratches and a loss, as fractions of the scan: what a damaged canvas looks like.
STROKES = [
    [(0.12, 0.20), (0.30, 0.34), (0.45, 0.41), (0.58, 0.52)],
    [(0.70, 0.15), (0.66, 0.30), (0.69, 0.45)],
    [(0.20, 0.72), (0.28, 0.70), (0.36, 0.74), (0.44, 0.71)],
]
LOSS = [[(0.78, 0.70), (0.84, 0.74), (0.80, 0.80), (0.76, 0.76), (0.80, 0.72)]]


def default_painting() -> Path:
    return sorted(paintings_dir().rglob("*.jpg"))[7]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--registry", type=Path, default=REPO / "var/shots/registry")
    parser.add_argument("--painting", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    parser.add_argument("--size", type=int, default=640, help="longer side of the scan, px")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="restauro-shots-"))
    painting = args.painting or default_painting()
    # The corpus' paintings are 256 px; a scan is larger, so enlarge it to --size for the page.
    rgb = read_image(painting).rgb
    scale = args.size / max(rgb.shape[:2])
    scan = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    scan_path = root / f"{painting.stem}.png"
    scan_path.write_bytes(encode_png(scan))

    env = environment(args.registry.resolve(), root, None)
    port = free_port()
    log = root / "serve.log"
    cmd = [sys.executable, "-m", "service", "--with-worker", "--port", str(port)]
    serve = subprocess.Popen(
        cmd, env=env, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    chrome = None
    try:
        import httpx

        def ready() -> bool:
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 120, serve, log)
        chrome = start_chrome(root / "downloads", width=1280, height=1180)
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        def find(element_id: str):
            return chrome.find_element(By.ID, element_id)

        chrome.get(base)
        wait(lambda: "clusters" in text(chrome, "bundle-info"), what="the models")
        time.sleep(1.0)  # the cluster thumbnails
        args.out.mkdir(parents=True, exist_ok=True)
        chrome.save_screenshot(str(args.out / "page-empty.png"))

        find("scan-file").send_keys(str(scan_path))
        wait(lambda: "×" in text(chrome, "scan-info"), what="the scan")
        size = find("brush-size")
        size.send_keys(Keys.HOME)
        for _ in range(10):
            size.send_keys(Keys.RIGHT)
        paint(chrome, STROKES)
        for _ in range(20):
            size.send_keys(Keys.RIGHT)
        paint(chrome, LOSS)
        wait(lambda: "damage:" in text(chrome, "mask-info"), what="the mask")
        chrome.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
        find("steps").send_keys(str(args.steps))
        find("seed").send_keys("7")
        chrome.execute_script("window.scrollTo(0, 0)")
        chrome.save_screenshot(str(args.out / "page-mask.png"))

        find("submit").click()
        wait(
            lambda: find("job-status").get_attribute("data-status") in ("succeeded", "failed"),
            timeout=900,
            what="the restoration",
        )
        if find("job-status").get_attribute("data-status") != "succeeded":
            raise SystemExit(f"the restoration failed: {text(chrome, 'error-text')}")
        loaded = "return [...document.querySelectorAll('#compare img')].every(i => i.naturalWidth)"
        wait(lambda: chrome.execute_script(loaded), what="the images")
        time.sleep(1.5)  # the smooth scroll to the results
        chrome.execute_script(
            "document.getElementById('step-results').scrollIntoView({block: 'start'});"
            "window.scrollBy(0, -8);"
        )
        time.sleep(0.3)
        chrome.save_screenshot(str(args.out / "page-compare.png"))
        print(f"wrote {args.out}/page-empty.png, page-mask.png, page-compare.png")
    finally:
        if chrome is not None:
            chrome.quit()
        stop(serve, signal.SIGINT)


if __name__ == "__main__":
    main()

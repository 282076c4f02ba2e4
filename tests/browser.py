"""A real headless browser for the restoration page: Debian's chromium driven by Selenium.

``scripts/ensure-browser.sh`` (run by ``make test``) installs chromium and chromedriver when they
are missing. Nothing is downloaded here: Selenium is pointed at the system's chromedriver, so its
own driver manager never runs. Used by tests/service/test_page_browser.py and by
scripts/page_screenshots.py, which take the same steps a person would.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, or None where either is missing."""
    browser = next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def start_chrome(downloads: Path, width: int = 1360, height: int = 1500) -> Any:
    """A headless chromium that saves downloads into ``downloads`` without asking."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    found = find_browser()
    if found is None:
        raise RuntimeError("chromium and chromedriver are not installed")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)
    downloads.mkdir(parents=True, exist_ok=True)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    chrome.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    chrome.set_script_timeout(60)
    return chrome


def wait(check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the page is still changing: try again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


def wait_for_file(folder: Path, pattern: str, timeout: float = 30) -> Path:
    """A finished download matching ``pattern`` in ``folder`` (chromium writes *.crdownload
    first)."""

    def done() -> Path | None:
        files = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        return files[0] if len(files) == 1 else None

    return wait(done, timeout, f"a downloaded {pattern} in {folder}")


def paint(chrome: Any, strokes: list[list[tuple[float, float]]]) -> None:
    """Drag the brush along each stroke; points are fractions (0..1) of the canvas' box."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    canvas = chrome.find_element(By.ID, "mask-canvas")
    box = canvas.rect
    for points in strokes:
        # Offsets are from the element's centre in Selenium 4.
        def offset(p: tuple[float, float]) -> tuple[int, int]:
            return int((p[0] - 0.5) * box["width"]), int((p[1] - 0.5) * box["height"])

        x, y = offset(points[0])
        actions = ActionChains(chrome, duration=20)
        actions.move_to_element_with_offset(canvas, x, y).click_and_hold()
        for p in points[1:]:
            nx, ny = offset(p)
            actions.move_by_offset(nx - x, ny - y)
            x, y = nx, ny
        actions.release().perform()


def text(chrome: Any, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return chrome.find_element(By.ID, element_id).text

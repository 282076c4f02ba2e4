"""The restoration page in a real headless chromium against the real stack (uvicorn API, a worker
process, Redis), with API keys on: a person's path from an empty page to a downloaded proposal.

Skipped where no browser can be installed (scripts/ensure-browser.sh, run by ``make test``,
installs Debian's chromium and chromedriver); a failure under ``CI=true``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis

from restauro.images import decode_image, encode_png
from tests.browser import find_browser, paint, start_chrome, text, wait, wait_for_file
from tests.conftest import _missing, synthetic_scan
from tests.integration.harness import environment, start_api, start_worker, stop

pytestmark = pytest.mark.integration

KEY = "page-test-key"


@pytest.fixture
def chrome(tmp_path: Path):
    if find_browser() is None:
        _missing("chromium/chromedriver not installed (scripts/ensure-browser.sh installs them)")
    pytest.importorskip("selenium", reason="selenium is a dev dependency (pip install -e .[dev])")
    driver = start_chrome(tmp_path / "downloads")
    yield driver
    driver.quit()


@pytest.fixture
def stack(tiny_registry: Path, redis_url: str, tmp_path: Path):
    env = environment(tiny_registry, tmp_path, redis_url, RESTAURO_API_KEYS=json.dumps([KEY]))
    api, base = start_api(env, tmp_path / "api.log")
    worker = start_worker(env, tmp_path / "worker.log")
    yield base
    stop(worker)
    stop(api)
    redis.Redis.from_url(redis_url).flushdb()


def test_paint_submit_compare_download(chrome, stack: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    scan = synthetic_scan(120, 160, seed=3)
    scan_path = tmp_path / "scan.png"
    scan_path.write_bytes(encode_png(scan))
    find = lambda element_id: chrome.find_element(By.ID, element_id)  # noqa: E731

    chrome.get(stack)
    # Keys are on and none was entered: the API's refusal is shown in words, not a dead page.
    wait(lambda: find("error").is_displayed(), what="the missing-key message")
    assert "X-API-Key" in text(chrome, "error-text") and "API key" in text(chrome, "error-text")
    find("api-key").send_keys(KEY, Keys.TAB)
    wait(lambda: "clusters" in text(chrome, "bundle-info"), what="the models")
    assert not find("error").is_displayed()
    targets = [e.get_attribute("value") for e in chrome.find_elements(By.NAME, "target")]
    assert targets == ["auto", "cluster:0", "cluster:1", "general"]
    assert not find("submit").is_enabled()  # nothing to restore yet

    find("scan-file").send_keys(str(scan_path))
    wait(lambda: "160 × 120" in text(chrome, "scan-info"), what="the scan")
    find("brush-size").send_keys(Keys.END)  # the largest brush, then a few steps smaller
    for _ in range(150):
        find("brush-size").send_keys(Keys.LEFT)
    assert text(chrome, "brush-size-value") == "50 px"
    paint(chrome, [[(0.3, 0.4), (0.5, 0.45), (0.6, 0.5)]])
    wait(lambda: "damage:" in text(chrome, "mask-info"), what="the painted mask")
    find("tool-eraser").click()
    paint(chrome, [[(0.6, 0.5), (0.62, 0.5)]])  # erase a little of it again
    find("tool-brush").click()
    assert find("submit").is_enabled()

    chrome.find_element(By.CSS_SELECTOR, 'input[value="cluster:1"]').click()
    chrome.find_element(By.CSS_SELECTOR, "details.advanced summary").click()
    for name, value in (("candidates", "2"), ("steps", "3"), ("seed", "5")):
        find(name).clear()
        find(name).send_keys(value)
    find("submit").click()

    wait(
        lambda: find("job-status").get_attribute("data-status") in ("succeeded", "failed"),
        timeout=180,
        what="the job to end",
    )
    assert find("job-status").get_attribute("data-status") == "succeeded", text(
        chrome, "error-text"
    )
    cards = chrome.find_elements(By.CSS_SELECTOR, "#candidates-list .candidate")
    ranks = [c.get_attribute("data-rank") for c in cards]
    assert len(ranks) >= 2 and ranks == [str(n) for n in range(1, len(ranks) + 1)]
    loaded = "return [...document.querySelectorAll('#compare img')].map(i => i.naturalWidth)"
    wait(lambda: chrome.execute_script(loaded) == [160, 160], what="original and proposal")
    assert "cluster 1" in text(chrome, "job-detail") or "c1" in text(chrome, "job-detail")

    # Compare: the slider moves the cut, the toggle and 100% zoom switch views.
    find("compare-position").send_keys(Keys.HOME)
    assert (
        chrome.execute_script(
            "return document.getElementById('compare').style.getPropertyValue('--cut')"
        )
        == "0%"
    )
    find("mode-toggle").click()
    find("show-original").click()
    assert "original" in text(chrome, "show-original")
    find("compare-full").click()
    assert "full" in find("compare").get_attribute("class")

    cards[1].click()
    downloads = tmp_path / "downloads"
    find("download-candidate").click()
    restored = decode_image(wait_for_file(downloads, "restored-*-2.png").read_bytes()).rgb
    find("download-mask").click()
    mask = decode_image(wait_for_file(downloads, "mask-*.png").read_bytes()).rgb[..., 0] > 0
    find("download-result").click()
    result = json.loads(wait_for_file(downloads, "result-*.json").read_text())

    assert restored.shape == scan.shape
    assert 0 < mask.sum() < mask.size
    assert np.array_equal(restored[~mask], scan[~mask])  # only the painted pixels changed
    assert not np.array_equal(restored[mask], scan[mask])
    assert [c["rank"] for c in result["candidates"]] == [int(r) for r in ranks]
    assert result["target"] == "c1" and result["params"]["seed"] == 5

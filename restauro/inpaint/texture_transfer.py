"""Detail at full resolution: the painting's own brushwork, placed by the GAN's structure.

A completion drawn at 64 px and upscaled 3-4x to the scan is a blur: the generator decided the
colours and shapes (the low frequencies) but nothing finer than a model pixel. Paintings are made
of that finer detail (brush marks, canvas weave, craquelure), and the pixels around the hole are
full of it. So the hole's image is split into bands at ``sigma``:

* the **low band** (Gaussian of ``sigma``) comes from the guide, the method's completion;
* the **high band** is quilted from the painting around the hole (image quilting texture
  transfer, Efros & Freeman 2001): the hole is covered block by block in raster order, each block
  taken from the fully known place of the window whose low band best matches the guide's there
  *and* whose high band best continues what is already in place (the painting at the hole's edge,
  the blocks already laid), and each block is cut into its neighbours along the seam where they
  differ least (a minimum-error boundary cut).

This is texture transfer with the GAN as the correspondence map: structure from the model,
brushwork from the painting, copied whole (never averaged, which would blur it again). Block
search is ``cv2.matchTemplate`` at ``1/match_scale`` resolution, refined at full resolution around
the best match. The painting's low band is a normalised convolution over known pixels only, so
the hole's fill never leaks into what it is matched against, and pixels outside ``region`` are
returned exactly as given.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class DetailResult:
    """The guide with transferred detail (float32 H x W x 3) and how the transfer went."""

    image: np.ndarray
    transferred: bool  # False: no fully known patch to copy from, the guide was returned as is
    mean_cost: float  # mean matching cost per patch pixel and channel (low band, 0-255 units)


def low_band(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low band of ``image`` computed from the pixels where ``weight`` is 1 only."""
    w = weight.astype(np.float32)
    num = cv2.GaussianBlur(image * w[..., None], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(w, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return num / np.maximum(den, 1e-6)[..., None]


def transfer_detail(
    guide: np.ndarray,
    known: np.ndarray,
    region: np.ndarray,
    sigma: float,
    *,
    block: int = 16,
    match_scale: int = 2,
    high_weight: float = 1.0,
    gain: float = 1.0,
) -> DetailResult:
    """``guide``'s low band plus the painting's high band inside ``region``; elsewhere the guide.

    ``guide`` (H x W x 3, uint8 or float) is the window: the painting on ``known`` pixels, the
    method's completion on ``region``; ``known`` (H x W bool) are the pixels detail may be copied
    from (never the hole, nor other damage); ``region`` (H x W bool) where detail is placed.
    ``high_weight`` weighs the continuity of the high band against the match of the low band;
    ``gain`` scales the copied high band (1: as detailed as the painting around the hole; less
    trades detail for fidelity: copied brush marks never fall exactly where the lost ones were).
    Deterministic: the same inputs give the same output.
    """
    g = guide.astype(np.float32)
    region = region.astype(bool)
    known = known.astype(bool) & ~region
    height, width = region.shape
    block = int(min(block, height, width))
    if not region.any() or block < 4:
        return DetailResult(g, False, float("nan"))
    painting_low = low_band(g, known, sigma)
    high = np.where(known[..., None], g - painting_low, 0.0).astype(np.float32)
    guide_low = cv2.GaussianBlur(g, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    quilt = _Quilt(painting_low, high, known, block, max(1, int(match_scale)), high_weight)
    if not quilt.has_sources:
        return DetailResult(g, False, float("nan"))
    canvas, costs = quilt.cover(guide_low, region)
    out = g.copy()
    out[region] = guide_low[region] + gain * canvas[region]
    return DetailResult(out, True, float(np.mean(costs)) if costs else float("nan"))


class _Quilt:
    """The window's fully known blocks (the sources) and the search for the best one."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        known: np.ndarray,
        block: int,
        scale: int,
        high_weight: float,
    ) -> None:
        self.low, self.high, self.known = low, high, known
        self.block, self.scale = block, scale
        self.w_high = float(high_weight)
        self.overlap = max(2, block // 4)
        self.valid = _fully_known(known, block)  # top-left corners of fully known blocks
        self.has_sources = bool(self.valid.any())
        height, width = known.shape
        small = (max(1, width // scale), max(1, height // scale))
        self.small_block = max(2, block // scale)
        self.low_s = cv2.resize(low, small, interpolation=cv2.INTER_AREA)
        self.high_s = cv2.resize(high, small, interpolation=cv2.INTER_AREA)
        known_s = cv2.resize(known.astype(np.float32), small, interpolation=cv2.INTER_AREA)
        self.valid_s = _fully_known(known_s >= 0.999, self.small_block)
        if not self.valid_s.any():  # too small to search coarsely: search at full resolution
            self.scale, self.small_block = 1, block
            self.low_s, self.high_s, self.valid_s = low, high, self.valid

    def cover(self, guide_low: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, list[float]]:
        """The high band over ``region``, quilted block by block; and each block's match cost."""
        b, step = self.block, self.block - self.overlap
        height, width = region.shape
        ys, xs = np.nonzero(region)
        canvas = self.high.copy()
        defined = self.known.copy()
        costs: list[float] = []
        for top in _starts(int(ys.min()), int(ys.max()) + 1, b, step, height):
            for left in _starts(int(xs.min()), int(xs.max()) + 1, b, step, width):
                rows, cols = slice(top, top + b), slice(left, left + b)
                todo = region[rows, cols]
                if not todo.any():
                    continue
                target_low = guide_low[rows, cols]
                target_high = canvas[rows, cols]
                weight = defined[rows, cols].astype(np.float32)
                sy, sx, cost = self._best(target_low, target_high, weight)
                costs.append(cost)
                patch = self.high[sy : sy + b, sx : sx + b]
                take = todo & _boundary_cut(target_high, patch, defined[rows, cols] & todo)
                take |= todo & ~defined[rows, cols]
                canvas[rows, cols][take] = patch[take]
                defined[rows, cols] |= todo
        return canvas, costs

    def _best(
        self, target_low: np.ndarray, target_high: np.ndarray, weight: np.ndarray
    ) -> tuple[int, int, float]:
        """Top-left corner of the best source block: coarse search, then refined around it."""
        s, bs = self.scale, self.small_block
        if s > 1:
            size = (bs, bs)
            tl = cv2.resize(target_low, size, interpolation=cv2.INTER_AREA)
            th = cv2.resize(target_high * weight[..., None], size, interpolation=cv2.INTER_AREA)
            ws = cv2.resize(weight, size, interpolation=cv2.INTER_AREA)
            th = th / np.maximum(ws, 1e-6)[..., None]
        else:
            tl, th, ws = target_low, target_high, weight
        score = self._scores(self.low_s, self.high_s, self.valid_s, tl, th, ws)
        cy, cx = np.unravel_index(int(np.argmin(score)), score.shape)
        if s == 1:
            return int(cy), int(cx), float(score[cy, cx]) / target_low.size
        best = (np.inf, int(cy) * s, int(cx) * s)
        b = self.block
        for y in range(max(0, cy * s - s), min(self.valid.shape[0], cy * s + s + 1)):
            for x in range(max(0, cx * s - s), min(self.valid.shape[1], cx * s + s + 1)):
                if not self.valid[y, x]:
                    continue
                dl = self.low[y : y + b, x : x + b] - target_low
                dh = (self.high[y : y + b, x : x + b] - target_high) * weight[..., None]
                cost = float((dl * dl).sum() + self.w_high * (dh * dh).sum())
                if cost < best[0]:
                    best = (cost, y, x)
        if not np.isfinite(best[0]):  # no valid corner near the coarse one: take the coarse one
            y, x = _nearest_valid(self.valid, best[1], best[2])
            return y, x, float(score[cy, cx]) / target_low.size
        return best[1], best[2], best[0] / target_low.size

    def _scores(
        self,
        low: np.ndarray,
        high: np.ndarray,
        valid: np.ndarray,
        target_low: np.ndarray,
        target_high: np.ndarray,
        weight: np.ndarray,
    ) -> np.ndarray:
        score = cv2.matchTemplate(low, np.ascontiguousarray(target_low), cv2.TM_SQDIFF)
        if weight.any() and self.w_high > 0:
            mask = np.repeat(weight[..., None], 3, axis=2).astype(np.float32)
            score += self.w_high * cv2.matchTemplate(
                high, np.ascontiguousarray(target_high, dtype=np.float32), cv2.TM_SQDIFF, mask=mask
            )
        score[~valid[: score.shape[0], : score.shape[1]]] = np.inf
        return score


def _fully_known(known: np.ndarray, block: int) -> np.ndarray:
    """For each top-left corner, whether the block x block square there is all known."""
    height, width = known.shape
    if block > height or block > width:
        return np.zeros((max(height - block + 1, 0), max(width - block + 1, 0)), dtype=bool)
    unknown = cv2.integral((~known).astype(np.uint8))
    count = (
        unknown[block:, block:]
        - unknown[:-block, block:]
        - unknown[block:, :-block]
        + unknown[:-block, :-block]
    )
    return count == 0


def _nearest_valid(valid: np.ndarray, y: int, x: int) -> tuple[int, int]:
    vy, vx = np.nonzero(valid)
    i = int(np.argmin((vy - y) ** 2 + (vx - x) ** 2))
    return int(vy[i]), int(vx[i])


def _starts(lo: int, hi: int, block: int, step: int, extent: int) -> list[int]:
    """Block origins covering [lo, hi) with the given step, every block inside [0, extent)."""
    first = max(0, min(lo - (block - step), extent - block))
    out = []
    pos = first
    while True:
        out.append(min(pos, extent - block))
        if pos + block >= hi or pos + block >= extent:
            break
        pos += step
    return sorted(set(out))


def _boundary_cut(old: np.ndarray, new: np.ndarray, overlap: np.ndarray) -> np.ndarray:
    """Which pixels of a block take ``new`` where it overlaps already placed ``old`` pixels.

    The minimum-error boundary of image quilting: the seam runs where old and new differ least,
    found by dynamic programming along the block's left and top overlaps; pixels beyond the seam
    (towards the block's inside) take the new block, pixels before it keep the old one.
    """
    b = old.shape[0]
    take = np.ones(old.shape[:2], dtype=bool)
    if not overlap.any():
        return take
    err = ((old - new) ** 2).sum(axis=2)
    err = np.where(overlap, err, 0.0)
    left = overlap.any(axis=0).nonzero()[0]
    top = overlap.any(axis=1).nonzero()[0]
    width_left = int(left.max()) + 1 if len(left) and left.min() == 0 else 0
    height_top = int(top.max()) + 1 if len(top) and top.min() == 0 else 0
    if 0 < width_left < b:
        seam = _seam(err[:, :width_left])  # one column per row
        take &= np.arange(b)[None, :] >= seam[:, None]
    if 0 < height_top < b:
        seam = _seam(err[:height_top, :].T)
        take &= np.arange(b)[:, None] >= seam[None, :]
    return take | ~overlap


def _seam(err: np.ndarray) -> np.ndarray:
    """Minimum-cost vertical path through ``err`` (rows x cols): the column in every row."""
    rows, cols = err.shape
    cost = err.astype(np.float64).copy()
    for y in range(1, rows):
        prev = cost[y - 1]
        left = np.r_[np.inf, prev[:-1]]
        right = np.r_[prev[1:], np.inf]
        cost[y] += np.minimum(np.minimum(left, prev), right)
    path = np.empty(rows, dtype=np.int64)
    path[-1] = int(np.argmin(cost[-1]))
    for y in range(rows - 2, -1, -1):
        c = path[y + 1]
        lo, hi = max(0, c - 1), min(cols, c + 2)
        path[y] = lo + int(np.argmin(cost[y, lo:hi]))
    return path

"""The weighted context mask W of Yeh et al. (2017).

A known pixel next to the hole says much more about what the hole should contain than one far
away, so the contextual loss weighs each known pixel by the fraction of missing pixels in a small
window around it. Known pixels with no missing neighbour weigh 0, and missing pixels always weigh 0
(they are what we are looking for).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restauro.errors import InvalidParameter


def context_weights(
    missing: torch.Tensor, window: int = 7, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """W for masks ``N x 1 x H x W`` (or ``H x W``); ``missing`` is 1 where a pixel is unknown.

    ``valid`` (same shape, 1 = a real pixel of the painting) marks padding that is neither known
    nor missing: it weighs 0 and is not counted as missing either. Pixels beyond the border of the
    array are not counted (zero padding), so the border does not look like damage.
    """
    if window < 1 or window % 2 == 0:
        raise InvalidParameter(f"context window must be a positive odd number, got {window}")
    squeeze = missing.dim() == 2
    m = missing.float()
    if squeeze:
        m = m[None, None]
    v = torch.ones_like(m) if valid is None else (valid.float()[None, None] if squeeze else valid)
    v = v.float()
    hole = m * v
    kernel = torch.ones(1, 1, window, window, dtype=m.dtype, device=m.device)
    count = F.conv2d(hole, kernel, padding=window // 2)
    weights = count / float(window * window) * (1.0 - m) * v
    return weights[0, 0] if squeeze else weights

"""Poisson blending of a generated completion into the hole (Pérez et al. 2003).

The generator gets the structure right but rarely the exact brightness and colour of the painting
around the hole, so pasting G(z) leaves visible seams. Poisson blending keeps the completion's
gradients inside the hole and takes its boundary values from the painting: with h = f - g (f the
result, g the completion) this is a membrane problem, Laplace(h) = 0 inside the hole and
h = painting - g on the known pixels around it.

We solve it ourselves instead of calling ``cv2.seamlessClone``, which shifts results when the mask
touches the image border, needs a one-pixel margin, and recenters the patch: here a hole pixel on
the image border simply has fewer neighbours (a Neumann condition), and only hole pixels change.
Small holes use a sparse LU factorization shared by all candidates and channels; very large ones
use conjugate gradients started from the solution at half resolution.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

DIRECT_LIMIT = 250_000  # unknowns up to which a sparse LU factorization is cheap (~1 s)
_REGULARIZER = 1e-8  # makes a hole with no known neighbour solvable (its correction is then 0)


class PoissonBlender:
    """One hole (any shape, several components allowed): build the system once, blend many."""

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = np.ascontiguousarray(mask.astype(bool))
        h, w = self.mask.shape
        self.index = np.full((h, w), -1, dtype=np.int64)
        ys, xs = np.nonzero(self.mask)
        self.ys, self.xs = ys, xs
        self.count = len(ys)
        self.index[ys, xs] = np.arange(self.count)
        rows, cols, diag = [], [], np.zeros(self.count)
        # For each direction: which hole pixels have an in-image neighbour, and is it in the hole?
        self._known_neighbours: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            ny, nx = ys + dy, xs + dx
            inside = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
            diag += inside
            sel = np.nonzero(inside)[0]
            neighbour = self.index[ny[sel], nx[sel]]
            in_hole = neighbour >= 0
            rows.append(sel[in_hole])
            cols.append(neighbour[in_hole])
            known = sel[~in_hole]
            self._known_neighbours.append((known, ny[known], nx[known]))
        rows_all = np.concatenate([*rows, np.arange(self.count)])
        cols_all = np.concatenate([*cols, np.arange(self.count)])
        values = np.concatenate(
            [-np.ones(sum(len(r) for r in rows)), diag + _REGULARIZER * (diag.max(initial=1))]
        )
        self.matrix = sp.csc_matrix((values, (rows_all, cols_all)), shape=(self.count,) * 2)
        self._lu = spla.splu(self.matrix) if 0 < self.count <= DIRECT_LIMIT else None

    def correction(self, difference: np.ndarray) -> np.ndarray:
        """h on the hole pixels (count x C), ``difference`` = painting - completion (H x W x C)."""
        diff = difference.reshape(*self.mask.shape, -1).astype(np.float64)
        rhs = np.zeros((self.count, diff.shape[2]))
        for which, ny, nx in self._known_neighbours:
            np.add.at(rhs, which, diff[ny, nx])
        if self.count == 0:
            return rhs
        if self._lu is not None:
            return self._lu.solve(rhs)
        return self._iterative(rhs, diff)

    def _iterative(self, rhs: np.ndarray, diff: np.ndarray) -> np.ndarray:
        """Conjugate gradients from the half-resolution solution (the membrane is smooth)."""
        h, w = self.mask.shape
        size = (max(1, w // 2), max(1, h // 2))
        small_mask = (
            cv2.resize(self.mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
        )
        small_diff = cv2.resize(diff.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        coarse = PoissonBlender(small_mask)
        field = np.zeros((*small_mask.shape, diff.shape[2]), dtype=np.float32)
        field[coarse.mask] = coarse.correction(small_diff.reshape(*small_mask.shape, -1))
        guess = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, -1)
        preconditioner = sp.diags(1.0 / self.matrix.diagonal())
        out = np.empty_like(rhs)
        for c in range(rhs.shape[1]):
            out[:, c], _ = spla.cg(
                self.matrix,
                rhs[:, c],
                x0=guess[self.ys, self.xs, c].astype(np.float64),
                rtol=1e-4,
                maxiter=400,
                M=preconditioner,
            )
        return out

    def blend(self, completion: np.ndarray, painting: np.ndarray) -> np.ndarray:
        """The painting with the hole filled by the seam-free completion (uint8, H x W x C).

        Pixels outside the mask are copied from ``painting`` untouched.
        """
        out = painting.copy()
        if self.count == 0:
            return out
        source = completion.astype(np.float64)
        correction = self.correction(painting.astype(np.float64) - source)
        values = source[self.ys, self.xs] + correction
        out[self.ys, self.xs] = np.clip(np.rint(values), 0, 255).astype(painting.dtype)
        return out


def paste(completion: np.ndarray, painting: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The raw generator output in the hole, nothing else changed (no blending)."""
    out = painting.copy()
    out[mask] = completion[mask]
    return out


def poisson_blend(completion: np.ndarray, painting: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One-shot :meth:`PoissonBlender.blend`."""
    return PoissonBlender(mask).blend(completion, painting)

"""Holes of a full-resolution scan and the context window each is restored from.

A scan is 4000 x 3000 pixels; the generator sees 64 or 128. So each hole (a connected component of
the mask) is restored from a square window around it, large enough to give the generator context
(the hole's bounding box times ``context_factor``) and no smaller than the model's input (so small
holes are not blown up from a few pixels). Holes whose windows overlap are restored together:
restored apart, each would see the other's damaged pixels as context, and the two completions
would disagree where they meet.

A window is square so the patch is resized without distortion. It is shifted to lie inside the
image where possible; where the image is smaller than the window (small images, huge holes) the
window overhangs and the overhang is padding that weighs nothing in the loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """Rows [top, bottom) and columns [left, right)."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left

    def clip(self, height: int, width: int) -> Box:
        return Box(
            max(self.top, 0), max(self.left, 0), min(self.bottom, height), min(self.right, width)
        )

    def union(self, other: Box) -> Box:
        return Box(
            min(self.top, other.top),
            min(self.left, other.left),
            max(self.bottom, other.bottom),
            max(self.right, other.right),
        )

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.top, self.left, self.bottom, self.right)


@dataclass(frozen=True)
class HoleGroup:
    """Holes restored together from one square window."""

    labels: tuple[int, ...]  # component labels (in the label image of :func:`find_hole_groups`)
    bbox: Box  # bounding box of the group's hole pixels
    window: Box  # square, may overhang the image
    wanted_side: int  # side the context rule asked for, before capping to the image
    hole_pixels: int

    @property
    def side(self) -> int:
        return self.window.height

    def visible_window(self, height: int, width: int) -> Box:
        """The part of the window that lies inside the image."""
        return self.window.clip(height, width)


def square_window(bbox: Box, height: int, width: int, context_factor: float, min_side: int):
    """(window, wanted side): a square around ``bbox``, shifted into the image where it fits."""
    longest = max(bbox.height, bbox.width)
    wanted = max(math.ceil(longest * context_factor), min_side)
    side = max(min(wanted, max(height, width)), longest)
    top = _place(bbox.top, bbox.bottom, side, height)
    left = _place(bbox.left, bbox.right, side, width)
    return Box(top, left, top + side, left + side), wanted


def _place(start: int, stop: int, side: int, extent: int) -> int:
    """Start of a span of ``side`` centred on [start, stop), inside [0, extent) if it fits."""
    centre = (start + stop) / 2
    begin = math.floor(centre - side / 2)
    if side <= extent:
        return min(max(begin, 0), extent - side)
    return -((side - extent) // 2)  # overhang equally on both sides


def find_hole_groups(
    mask: np.ndarray, context_factor: float, min_side: int
) -> tuple[np.ndarray, list[HoleGroup]]:
    """Label image (int32, 0 = known) and the groups of holes whose windows do not overlap."""
    height, width = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S
    )
    members: list[list[int]] = [[label] for label in range(1, count)]
    boxes = [
        Box(
            int(s[cv2.CC_STAT_TOP]),
            int(s[cv2.CC_STAT_LEFT]),
            int(s[cv2.CC_STAT_TOP] + s[cv2.CC_STAT_HEIGHT]),
            int(s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH]),
        )
        for s in stats[1:]
    ]
    areas = [int(s[cv2.CC_STAT_AREA]) for s in stats[1:]]
    while True:
        windows = [square_window(b, height, width, context_factor, min_side)[0] for b in boxes]
        parent = _merge_overlapping([w.clip(height, width) for w in windows])
        if len(set(parent)) == len(parent):
            break
        merged: dict[int, int] = {}
        new_members, new_boxes, new_areas = [], [], []
        for i, root in enumerate(parent):
            if root not in merged:
                merged[root] = len(new_members)
                new_members.append([])
                new_boxes.append(boxes[i])
                new_areas.append(0)
            j = merged[root]
            new_members[j] += members[i]
            new_boxes[j] = new_boxes[j].union(boxes[i])
            new_areas[j] += areas[i]
        members, boxes, areas = new_members, new_boxes, new_areas
    groups = []
    for group_labels, box, area in zip(members, boxes, areas, strict=True):
        window, wanted = square_window(box, height, width, context_factor, min_side)
        groups.append(HoleGroup(tuple(sorted(group_labels)), box, window, wanted, area))
    groups.sort(key=lambda g: (g.bbox.top, g.bbox.left))
    return labels, groups


def _merge_overlapping(windows: list[Box]) -> list[int]:
    """Union-find roots: windows that overlap (directly or through others) share a root."""
    n = len(windows)
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n < 2:
        return parent
    arr = np.array([w.as_tuple() for w in windows])
    top, left, bottom, right = arr.T
    for i in range(n - 1):
        overlap = (
            (top[i + 1 :] < bottom[i])
            & (top[i] < bottom[i + 1 :])
            & (left[i + 1 :] < right[i])
            & (left[i] < right[i + 1 :])
        )
        for j in np.nonzero(overlap)[0] + i + 1:
            a, b = root(i), root(int(j))
            if a != b:
                parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(n)]

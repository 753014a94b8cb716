"""PushT's geometry, and the coverage that scores an episode, computed the same way in every process.

The geometry is gym-pusht's (Chi et al. 2023's PushT): the block is two 30-pixel-thick rectangles, a
120 x 30 bar and a 30 x 90 stem, given in the block's own frame with the origin at the middle of the
bar's outer edge; a pose (x, y, θ) puts that origin at (x, y) and turns the block by θ. The goal is
the pose (256, 256, π/4). Coverage is the fraction of the goal T's area the block covers.

gym-pusht computes it with shapely (GEOS) on a MultiPolygon of the two rectangles, and GEOS returns
the area with a last-bit jitter that changes from one process to the next (measured: the same
trajectory scored 0.9951789525755818 in one run and 0.995178952575582 in another), so two runs of one
evaluation would not write identical scores. Here the two rectangles of each T touch along an edge
and never overlap, so area(block ∩ goal) = Σ_ij area(R_i ∩ G_j), each a convex polygon clipped by
another (Sutherland & Hodgman 1974) and measured by the shoelace formula: plain float64 arithmetic in a
fixed order, so the same pose gives the same bits everywhere (and gym-pusht's value to about 1e-14).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import UserError

__all__ = ["GOAL_POSE", "AGENT_RADIUS", "WORKSPACE", "TEE", "KEYPOINTS", "tee_polygons", "coverage",
           "clip_convex", "polygon_area"]

GOAL_POSE = (256.0, 256.0, math.pi / 4)
AGENT_RADIUS = 15.0
WORKSPACE = 512.0
_SCALE = 30.0
# the two rectangles of the T in the block's frame (gym-pusht's add_tee, scale 30, length 4)
TEE = (np.array([[-2, 1], [2, 1], [2, 0], [-2, 0]], dtype=np.float64) * _SCALE,
       np.array([[-0.5, 1], [-0.5, 4], [0.5, 4], [0.5, 1]], dtype=np.float64) * _SCALE)


# The 9 keypoints of the block in its own frame, as the demonstrations record them (data/keypoint):
# the mean of R(-θ)(k - (x, y)) over all 25,650 recorded states, to 0.1 px (each state within 2.2 px).
KEYPOINTS = np.array([[9.3, 90.0], [-61.0, -1.2], [60.9, -1.4], [-0.3, 25.5], [-14.1, 122.8],
                      [39.0, 32.9], [-40.0, 32.7], [-16.8, 62.9], [23.5, -1.7]], dtype=np.float64)


def tee_polygons(pose: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    """The two rectangles of the T at pose (x, y, θ) as (4, 2) arrays of pixel corners (x right, y down)."""
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape != (3,):
        raise UserError(f"A pose is (x, y, θ): shape (3,), got {pose.shape}.")
    x, y, theta = (float(v) for v in pose)
    c, s = math.cos(theta), math.sin(theta)
    rot = np.array([[c, -s], [s, c]])
    return [part @ rot.T + np.array([x, y]) for part in TEE]


def polygon_area(points: list[tuple[float, float]]) -> float:
    """The signed area of a polygon (the shoelace formula): > 0 when its corners run counter-clockwise
    in (x, y); 0 for fewer than 3 points."""
    n = len(points)
    if n < 3:
        return 0.0
    return sum(points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
               for i in range(n)) / 2


Points = list[tuple[float, float]]


def clip_convex(subject: Points, clip: Points) -> Points:
    """The intersection of a convex polygon `subject` with a convex polygon `clip` (Sutherland-Hodgman):
    `subject` is clipped by each edge of `clip` in turn. Both as lists of (x, y) corners, either order."""
    sign = 1.0 if polygon_area(clip) > 0 else -1.0
    out = list(subject)
    for i in range(len(clip)):
        if not out:
            break
        (ax, ay), (bx, by) = clip[i], clip[(i + 1) % len(clip)]

        def side(p, ax=ax, ay=ay, bx=bx, by=by):  # > 0 inside (left of a->b for a counter-clockwise clip)
            return sign * ((bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax))

        points, out = out, []
        for j in range(len(points)):
            p, q = points[j], points[(j + 1) % len(points)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                out.append(p)
            if (sp >= 0) != (sq >= 0):  # the edge p->q crosses the clip line: add the crossing
                w = sp / (sp - sq)
                out.append((p[0] + w * (q[0] - p[0]), p[1] + w * (q[1] - p[1])))
    return out


def coverage(pose: Sequence[float] | np.ndarray, goal: Sequence[float] = GOAL_POSE) -> float:
    """The fraction of the goal T's area that the block at `pose` (x, y, θ) covers: gym-pusht's coverage,
    computed reproducibly (see the module's docstring)."""
    block = [[tuple(map(float, c)) for c in part] for part in tee_polygons(pose)]
    target = [[tuple(map(float, c)) for c in part] for part in tee_polygons(goal)]
    inside = sum(abs(polygon_area(clip_convex(r, g))) for r in block for g in target)
    return inside / sum(abs(polygon_area(g)) for g in target)

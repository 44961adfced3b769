"""Zones: where a fixed camera's people are counted, as polygons in pixels of the video's frame.

A zone is written as its corners, ``x,y`` pairs apart by spaces or ``;``: ``10,10 600,10 600,300 10,300``
(in a URL the spaces become ``+`` or ``%20``). :class:`Zones` holds the include zones and the
ignore zones and, called on a point, says whether it is counted: inside an include zone (anywhere
when there is none) and in no ignore zone. :class:`~maskdetect.core.tracking.FaceTracker` takes it as
its ``zone``: a track is a person only if its face's centre was counted in at least one frame.

Every mistake is a :class:`ZoneError` that says what to do: a corner that is not ``x,y``, fewer than
three corners, a polygon without area or crossing itself, and (:meth:`Zones.check_frame`, once the
frame's size is known) a corner outside the frame.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

MAX_CORNERS = 100  # per zone: a region to count in, not a traced outline (and crossing edges is checked in O(n²))
MAX_ZONES = 16  # of each kind
EXAMPLE = "10,10 600,10 600,300 10,300"
SYNTAX = f"its corners as x,y pixel pairs apart by spaces or ';', e.g. \"{EXAMPLE}\""
_SEPARATORS = re.compile(r"[\s;]+")

Point = tuple[float, float]


class ZoneError(ValueError):
    """A zone that cannot be used; the message says what to do."""


def _number(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _shown(point: Point) -> str:
    return ",".join(str(_number(v)) for v in point)


def _named(name: str, text: str) -> str:
    """How a message names a zone: the option or parameter, then its text (cut short)."""
    return f"{name} \"{text if len(text) <= 60 else text[:57] + '...'}\""


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    """``p``, collinear with a-b, lies within the segment's bounding box."""
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    """Whether segments a-b and c-d share a point (crossing, touching or overlapping)."""
    d1, d2, d3, d4 = _cross(c, d, a), _cross(c, d, b), _cross(a, b, c), _cross(a, b, d)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return ((d1 == 0 and _on_segment(a, c, d)) or (d2 == 0 and _on_segment(b, c, d))
            or (d3 == 0 and _on_segment(c, a, b)) or (d4 == 0 and _on_segment(d, a, b)))


def _crossing(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first two edges (numbered from 1: edge i joins corners i and i+1) that cross or fold back, if any."""
    n = len(points)
    edges = [(points[i], points[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            (a, b), (c, d) = edges[i], edges[j]
            if j == i + 1 or (i == 0 and j == n - 1):  # neighbours share a corner: they may only fold back onto each other
                shared, before, after = (b, a, d) if j == i + 1 else (a, b, c)
                if _cross(shared, before, after) == 0 and (
                    (before[0] - shared[0]) * (after[0] - shared[0]) + (before[1] - shared[1]) * (after[1] - shared[1]) > 0
                ):
                    return i + 1, j + 1
            elif _segments_meet(a, b, c, d):
                return i + 1, j + 1
    return None


@dataclass(frozen=True)
class Polygon:
    """One zone: at least three corners (x, y) in pixels of the frame, in order around it."""

    corners: tuple[Point, ...]

    @cached_property
    def _contour(self) -> np.ndarray:
        return np.array(self.corners, np.float32).reshape(-1, 1, 2)

    def __contains__(self, point: Point) -> bool:
        """Inside or on the edge."""
        return cv2.pointPolygonTest(self._contour, (float(point[0]), float(point[1])), False) >= 0

    def as_list(self) -> list[list[int | float]]:
        return [[_number(x), _number(y)] for x, y in self.corners]

    def __str__(self) -> str:
        return " ".join(_shown(point) for point in self.corners)


def parse_polygon(text: str) -> Polygon:
    """A zone from its text form (see :data:`SYNTAX`); a corner repeated at once, or closing the ring, is dropped."""
    tokens = [token for token in _SEPARATORS.split(text.strip()) if token]
    if not tokens:
        raise ZoneError(f"is empty: give {SYNTAX}")
    corners: list[Point] = []
    numbers: list[int] = []  # each corner's place in the text, for the messages
    for number, token in enumerate(tokens, 1):
        parts = token.split(",")
        try:
            if len(parts) != 2 or "_" in token:
                raise ValueError
            point = (float(parts[0]), float(parts[1]))
        except ValueError:
            raise ZoneError(f"corner {number} {token!r} is not x,y: give each corner as two numbers joined by a comma "
                            f"(no space), the corners apart by spaces or ';', e.g. \"{EXAMPLE}\"") from None
        if not all(map(math.isfinite, point)):
            raise ZoneError(f"corner {number} ({token}) is not a finite number: give pixel coordinates")
        if not corners or point != corners[-1]:
            corners.append(point)
            numbers.append(number)
    if len(corners) > 1 and corners[0] == corners[-1]:
        corners.pop()  # the ring closed by repeating its first corner
        numbers.pop()
    if len(corners) < 3:
        raise ZoneError(f"has {len(corners)} distinct corner{'s' * (len(corners) != 1)}: a zone needs 3 or more, "
                        f"e.g. \"{EXAMPLE}\"")
    if len(corners) > MAX_CORNERS:
        raise ZoneError(f"has {len(corners)} corners, over the {MAX_CORNERS} a zone may have: give a simpler polygon")
    if all(_cross(corners[0], corners[1], point) == 0 for point in corners[2:]):
        raise ZoneError("has no area (its corners lie on one line): give the corners around the region to count")
    crossing = _crossing(corners)
    if crossing is not None:
        (a, b), (c, d) = ((numbers[edge - 1], numbers[edge % len(corners)]) for edge in crossing)
        raise ZoneError(f"crosses itself (the edge from corner {a} to {b} meets the one from corner {c} to {d}): "
                        "list the corners in order around the zone's edge")
    return Polygon(tuple(corners))


@dataclass(frozen=True)
class Zones:
    """Where people are counted: in any ``include`` zone (anywhere when there is none) and in no ``ignore`` zone."""

    include: tuple[Polygon, ...] = ()
    ignore: tuple[Polygon, ...] = ()

    def __post_init__(self):
        if len(self.include) > MAX_ZONES or len(self.ignore) > MAX_ZONES:
            raise ZoneError(f"{len(self.include)} zones and {len(self.ignore)} zones to ignore: give at most {MAX_ZONES} of each")

    def __call__(self, point: Point) -> bool:
        return (not self.include or any(point in zone for zone in self.include)) and not any(point in zone for zone in self.ignore)

    @property
    def everywhere(self) -> bool:
        """No zone given: every point counts."""
        return not self.include and not self.ignore

    def check_frame(self, size: tuple[int, int], names: tuple[str, str] = ("zone", "ignore zone")) -> None:
        """ZoneError naming the first corner outside a ``size`` (width, height) frame; ``names``: what the messages call each kind."""
        width, height = size
        for kind, name in zip((self.include, self.ignore), names):
            for zone in kind:
                for corner, (x, y) in enumerate(zone.corners, 1):
                    if not (0 <= x <= width and 0 <= y <= height):
                        raise ZoneError(f"{_named(name, str(zone))} corner {corner} ({_shown((x, y))}) is outside the {width}x{height} "
                                        f"frame: give corners within x 0-{width} and y 0-{height} (pixels of the video, from its top left)")

    def as_dict(self) -> dict[str, list]:
        """The zones as JSON: lists of [x, y] corners per zone."""
        return {"include": [zone.as_list() for zone in self.include], "ignore": [zone.as_list() for zone in self.ignore]}


def parse_zones(include: Iterable[str] = (), ignore: Iterable[str] = (), names: tuple[str, str] = ("zone", "ignore zone")) -> Zones:
    """:class:`Zones` from the text of each zone; a message names the zone (by ``names``, and its text) and says what to do."""
    parsed: list[tuple[Polygon, ...]] = []
    for texts, name in zip((list(include), list(ignore)), names):
        zones = []
        for text in texts:
            try:
                zones.append(parse_polygon(text))
            except ZoneError as error:
                raise ZoneError(f"{_named(name, text)} {error}") from None
        parsed.append(tuple(zones))
    return Zones(*parsed)

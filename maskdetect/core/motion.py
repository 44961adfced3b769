"""The camera's own motion between video frames, so that faces can be followed on the scene, not the screen.

:class:`CameraMotion` follows corner points of the background from one processed frame to the next
(sparse optical flow on a reduced grey copy, faces masked out) and fits a similarity transform
(shift, turn, zoom) to them with RANSAC. Chained, these give each frame a 3x3 matrix from *scene*
coordinates (the first frame's pixels) to the frame's pixels. In scene coordinates a poster stays
put while the camera pans, and a track predicted there survives the pan.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

WIDTH = 320  # px: frames are reduced to this width to follow the background (faster, and steadier on noise)
MAX_POINTS = 200  # corners followed per frame
MIN_POINTS = 12  # fewer matching corners than this: the motion is not trusted, and taken as none
RANSAC_PX = 1.0  # px at WIDTH: a corner further than this from the fitted motion moves on its own (a person, a car)
FACE_MARGIN = 0.5  # each face's box grown by this share of its size on every side before it is masked out


class CameraMotion:
    """Per processed frame, :meth:`update` gives the 3x3 matrix from scene coordinates to that frame's pixels."""

    def __init__(self, width: int = WIDTH):
        self.width = width
        self._previous: np.ndarray | None = None
        self._previous_faces: list = []
        self.to_frame = np.eye(3)  # scene -> the latest frame
        self.step = np.eye(3)  # the frame before -> the latest frame

    def update(self, grey: np.ndarray, faces: Sequence[Sequence[float]] = ()) -> np.ndarray:
        """The frame (uint8 grey, full size) and the boxes of its faces, kept out of the background."""
        scale = self.width / grey.shape[1] if grey.shape[1] > self.width else 1.0
        small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
        if self._previous is not None and self._previous.shape == small.shape:
            step = self._step(self._previous, small, self._mask(small.shape, [*self._previous_faces, *faces], scale))
            to_full = np.diag([1 / scale, 1 / scale, 1.0])
            self.step = np.eye(3) if step is None else to_full @ step @ np.linalg.inv(to_full)
            self.to_frame = self.step @ self.to_frame
        self._previous, self._previous_faces = small, list(faces)
        return self.to_frame

    def _mask(self, shape, faces, scale) -> np.ndarray:
        mask = np.full(shape, 255, np.uint8)
        for box in faces:
            xmin, ymin, xmax, ymax = (float(v) * scale for v in box[:4])
            grow = FACE_MARGIN * max(xmax - xmin, ymax - ymin)
            cv2.rectangle(mask, (int(xmin - grow), int(ymin - grow)), (int(xmax + grow), int(ymax + 3 * grow)), 0, -1)
        return mask

    def _step(self, previous: np.ndarray, current: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        corners = cv2.goodFeaturesToTrack(previous, MAX_POINTS, 0.01, 8, mask=mask, blockSize=3)
        if corners is None or len(corners) < MIN_POINTS:
            return None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, winSize=(15, 15), maxLevel=3)
        found = status.ravel() == 1
        if found.sum() < MIN_POINTS:
            return None
        matrix, inliers = cv2.estimateAffinePartial2D(corners[found], moved[found], method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX)
        if matrix is None or inliers is None or inliers.sum() < MIN_POINTS:
            return None
        return np.vstack([matrix, [0.0, 0.0, 1.0]])


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 2)
    mapped = np.hstack([points, np.ones((len(points), 1))]) @ matrix.T
    return mapped[:, :2] / mapped[:, 2:]

"""Faces in frames: dlib detection, linking detections into tracks, and VoxCeleb crops.

Boxes are float arrays ``[x0, y0, x1, y1]`` in full-resolution pixel coordinates.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import dlib
import numpy as np

from .errors import X2FaceError

# VoxCeleb (and the X2Face release) crop the detector's box enlarged 1.6x about its centre.
VOXCELEB_SCALE = 1.6
# The landmarks of dlib's 68 that place a face's crop: the nose (27-35) and the eyes
# (36-47), which expressions move little (brows, lips and jaw move).
ALIGNING_LANDMARKS = slice(27, 48)
# Where those lie in a VoxCeleb crop, in crop units: their mean over the crops the default
# model was trained on (`benchmarks/crop_landmarks.py`: 6,606 faces of 81 training tracks,
# crops of dlib's HOG boxes). The HOG box snaps to its image pyramid's scales, 6/5 apart,
# so its size relative to the face depends on the face's size in the searched image (9 %
# spread over the training crops; up to 38 % too large on faces found small in a 1080p
# wide shot; pumping by up to a fifth at each detection on a face that zooms). Boxes
# placed by these landmarks crop every face as the training crops did on average.
CROP_LANDMARKS = np.array([
    [0.4946, 0.3594], [0.4939, 0.4077], [0.4930, 0.4557], [0.4919, 0.5055], [0.4392, 0.5481], [0.4657, 0.5574],
    [0.4943, 0.5653], [0.5235, 0.5572], [0.5514, 0.5481], [0.3196, 0.3758], [0.3501, 0.3574], [0.3871, 0.3573],
    [0.4201, 0.3793], [0.3856, 0.3867], [0.3489, 0.3873], [0.5754, 0.3787], [0.6081, 0.3567], [0.6454, 0.3570],
    [0.6773, 0.3750], [0.6468, 0.3866], [0.6098, 0.3861]])


# dlib's HOG detector misses faces smaller than about this many pixels across.
SMALLEST_FACE = 80
# dlib's face descriptors of one person lie closer than this (dlib's own threshold: 99.38 %
# right on LFW pairs); a mean over frames decides (benchmarks/README.md, "Where the constants come from").
SAME_PERSON = 0.6
# Boxes within this many mean box sides of each other are one face (box_distance).
SAME_PLACE = 0.75
# A followed face that detection misses (a hand or a phone over part of it) is still there
# if HOG, searched around it with the face at FIND_NEAR_SIDE pixels, scores it at least
# this (dlib's detector keeps scores above 0; benchmarks/README.md, "Where the constants come from").
FIND_NEAR_SCORE = -0.9
# The face's side, in pixels, in the image searched for it (HOG's window is 80).
FIND_NEAR_SIDE = 100
# At a detection, a followed face is the detection (or HOG's find near it) within this many
# box sides of where its landmarks put it in this frame: farther is something else that
# looks like a face (a hand of its tone beside it), however near.
REFOUND = 0.25
# A followed face that no detection confirms is followed by its landmarks alone for at most
# this many detections (a hand over the mouth and chin hides it from HOG), then dropped,
# and only while its box still looks like the face when last confirmed: their LOOK_SIDE
# grey thumbnails correlate at least SAME_LOOK (a face gone leaves the background).
UNCONFIRMED_DETECTIONS = 2
LOOK_SIDE, SAME_LOOK = 16, 0.3
# Two boxes of one frame are one face found twice where either lies this much inside the
# other (their intersection over the smaller's area).
INSIDE = 0.7


def similarity_factor(source: np.ndarray, target: np.ndarray) -> complex:
    """The complex factor (scale and rotation) of the least-squares similarity taking the
    points ``source`` to ``target`` (complex arrays x + iy); their means give the shift."""
    source, target = source - source.mean(), target - target.mean()
    return np.vdot(source, target) / np.vdot(source, source).real


def aligned_face_box(landmarks: np.ndarray) -> np.ndarray:
    """The face box whose VoxCeleb crop has the ``ALIGNING_LANDMARKS`` of dlib's 68
    ``landmarks`` where ``CROP_LANDMARKS`` has them: the least-squares similarity's scale
    and place (the crop stays upright; a tilted face keeps its tilt inside it)."""
    # dlib's integer pixel positions; +0.5 puts them in the boxes' continuous coordinates.
    found = landmarks[ALIGNING_LANDMARKS, 0] + 0.5 + 1j * (landmarks[ALIGNING_LANDMARKS, 1] + 0.5)
    template = CROP_LANDMARKS[:, 0] + 1j * CROP_LANDMARKS[:, 1]
    similarity = similarity_factor(template, found)
    centre = found.mean() + similarity * (0.5 + 0.5j - template.mean())
    half = abs(similarity) / 2
    return face_box_of(np.array([centre.real - half, centre.imag - half, centre.real + half, centre.imag + half]))


class FaceDetector:
    """dlib's HOG face detector, run on a frame resized for speed, with each box placed by
    the face's landmarks (``aligned_face_box``). Use one in the thread that made it.

    HOG finds faces down to about ``SMALLEST_FACE`` pixels; ``max_side`` bounds the longer side of the
    frame it searches, trading the smallest findable face for speed. Frames smaller than
    ``min_side`` are usually tight face crops (VoxCeleb-style clips): their faces touch
    the border, where HOG's window does not fit, so they are padded and enlarged first.
    """

    def __init__(self, max_side: int = 640, min_side: int = 448) -> None:
        self.max_side = max_side
        self.min_side = min_side
        self._detector = _hog_detector()
        self._landmarks = LandmarkDetector()

    def detect(self, rgb: np.ndarray) -> np.ndarray:
        """All faces in an (H, W, 3) uint8 frame, as (N, 4) boxes, largest first."""
        longest = max(rgb.shape[:2])
        pad = longest // 4 if longest < self.min_side else 0
        searched = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else rgb
        height, width = searched.shape[:2]
        scale = min(self.max_side, max(self.min_side, longest)) / longest
        if scale != 1.0:
            searched = cv2.resize(searched, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        found = self._detector(np.ascontiguousarray(searched), 0)
        boxes = np.array([_corners(r) for r in found], dtype=np.float64).reshape(-1, 4)
        return largest_first(np.array([self.placed(rgb, box) for box in boxes / scale - pad]).reshape(-1, 4))

    def placed(self, rgb: np.ndarray, hog_box: np.ndarray) -> np.ndarray:
        """The face HOG boxed in ``hog_box``, boxed by its landmarks (``align``). They are
        found again inside the first aligned box: the predictor starts from its box, which
        HOG may have made a third too large."""
        return self.align(rgb, self.align(rgb, hog_box))

    def align(self, rgb: np.ndarray, face_box: np.ndarray) -> np.ndarray:
        """The face in ``face_box`` (this frame's, or the same face's in the frame before),
        boxed by its landmarks (``aligned_face_box``)."""
        return aligned_face_box(self._landmarks(rgb, face_box))

    def visibility(self, rgb: np.ndarray, face_box: np.ndarray) -> float:
        """How clearly the face in ``face_box`` shows: HOG's score for it (``near``), lower
        where something covers part of it (medians over 6 held-out clips: 1.2-2.4 in full
        view, -0.3-0.8 behind a hand, 0.7-1.8 beside a phone), ``FIND_NEAR_SCORE`` where it
        finds none."""
        near = self.near(rgb, face_box)
        return FIND_NEAR_SCORE if near is None else near[1]

    def near(self, rgb: np.ndarray, face_box: np.ndarray, within: float = SAME_PLACE) -> tuple[np.ndarray, float] | None:
        """HOG's box and score for the face nearest ``face_box`` (within ``within`` box
        sides), even one ``detect`` misses (a hand or a phone over part of it): searched in
        twice the box around it, the face shrunk or enlarged to ``FIND_NEAR_SIDE``, down to a
        score of ``FIND_NEAR_SCORE``; None if none."""
        centre, side = (face_box[:2] + face_box[2:]) / 2, float(face_box[2] - face_box[0])
        region = np.concatenate([centre - side, centre + side])
        found, scores, _ = self._detector.run(crop(rgb, region, 2 * FIND_NEAR_SIDE), 0, FIND_NEAR_SCORE)
        pixel = side / FIND_NEAR_SIDE  # frame pixels per searched pixel
        near = []
        for rectangle, score in zip(found, scores):
            box = np.tile(region[:2], 2) + pixel * np.array(_corners(rectangle))
            if score >= FIND_NEAR_SCORE and (distance := box_distance(face_box, box)) <= within:
                near.append((distance, box, float(score)))
        return None if not near else min(near, key=lambda item: item[0])[1:]


def _corners(rectangle: dlib.rectangle) -> list[int]:
    """A dlib rectangle as a box [x0, y0, x1, y1] (dlib's right and bottom are inclusive)."""
    return [rectangle.left(), rectangle.top(), rectangle.right() + 1, rectangle.bottom() + 1]


class FaceFollower:
    """Face boxes frame after frame: dlib detection every ``detect_every`` frames, and in
    between each face found again by its landmarks inside its box in the frame before
    (about 3 ms a face instead of tens of milliseconds for a detection).

    At a detection each followed face is first placed by its landmarks in this frame, then
    confirmed by the detection within ``REFOUND`` of that place, or by HOG's find near it
    (``FaceDetector.near``: a hand or a phone over part of the face), its box placed by its
    landmarks. Unconfirmed, it is followed by its landmarks for up to
    ``UNCONFIRMED_DETECTIONS`` detections (not across a possible shot cut), then taken by a
    detection within ``SAME_PLACE`` (a face that moved faster than its landmarks followed). A detection
    that is one of the followed faces found again (``distinct_faces``) is not a new face."""

    def __init__(self, detect_every: int = 1, max_side: int = 640) -> None:
        self.detect_every = max(1, detect_every)
        self.detector = FaceDetector(max_side=max_side)
        self._frames_seen = 0
        self._boxes = np.zeros((0, 4))
        self._unconfirmed = np.zeros(0, dtype=int)  # detections since each box was last confirmed
        self._looks = np.zeros((0, LOOK_SIDE * LOOK_SIDE))  # each box's look when last confirmed (look_of)

    def __call__(self, rgb: np.ndarray, *, detect: bool = False) -> np.ndarray:
        """(N, 4) face boxes in this frame (the next frame of a video); ``detect`` detects
        in it whatever frame it is (a frame that may begin a new shot)."""
        if detect or self._frames_seen % self.detect_every == 0 or not len(self._boxes):
            self._detect(rgb, may_be_a_cut=detect)
        else:
            aligned = np.array([self.detector.align(rgb, box) for box in self._boxes]).reshape(-1, 4)
            rows = distinct_faces(aligned)
            self._boxes, self._unconfirmed, self._looks = aligned[rows], self._unconfirmed[rows], self._looks[rows]
        self._frames_seen += 1
        return self._boxes

    def _detect(self, rgb: np.ndarray, *, may_be_a_cut: bool) -> None:
        found = self.detector.detect(rgb)
        followed, unconfirmed, looks, taken = [], [], [], set()
        for box, misses, look in zip(self._boxes, self._unconfirmed, self._looks):
            if (refound := self._refind(rgb, box, misses, look, found, taken, may_be_a_cut)) is not None:
                followed.append(refound[0])
                unconfirmed.append(refound[1])
                looks.append(look if refound[1] else look_of(rgb, refound[0]))
        fresh = [box for i, box in enumerate(found) if i not in taken]
        boxes = np.array(followed + fresh).reshape(-1, 4)
        misses = np.array(unconfirmed + [0] * len(fresh), dtype=int)
        looks = np.array(looks + [look_of(rgb, box) for box in fresh]).reshape(-1, LOOK_SIDE * LOOK_SIDE)
        rows = distinct_faces(boxes)  # followed faces first: they win over a detection of themselves
        rows = [rows[i] for i in np.argsort(-_areas(boxes[rows]), kind="stable")]
        self._boxes, self._unconfirmed, self._looks = boxes[rows], misses[rows], looks[rows]

    def _refind(self, rgb: np.ndarray, box: np.ndarray, misses: int, look: np.ndarray, found: np.ndarray,
                taken: set[int], may_be_a_cut: bool) -> tuple[np.ndarray, int] | None:
        """A followed face's box in a frame searched for faces (``found``; the rows taken
        by followed faces are added to ``taken``) and its detections unconfirmed; None if lost."""
        placed = self.detector.align(rgb, box)
        distance, nearest = min(((box_distance(placed, other), i) for i, other in enumerate(found) if i not in taken),
                                default=(np.inf, -1))
        if distance <= REFOUND:
            taken.add(nearest)
            return found[nearest], 0
        near = self.detector.near(rgb, placed)
        if near is not None and box_distance(placed, near[0]) <= REFOUND:
            return self.detector.placed(rgb, near[0]), 0
        if (not may_be_a_cut and misses < UNCONFIRMED_DETECTIONS and box_distance(box, placed) <= REFOUND
                and float(look_of(rgb, placed) @ look) >= SAME_LOOK):
            return placed, misses + 1
        if distance <= SAME_PLACE:
            taken.add(nearest)
            return found[nearest], 0
        return None if near is None else (self.detector.placed(rgb, near[0]), 0)


def look_of(rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    """The face in ``box`` as a ``LOOK_SIDE`` grey thumbnail, zero mean and unit length (the
    dot product of two is their correlation)."""
    grey = cv2.cvtColor(crop(rgb, box, LOOK_SIDE), cv2.COLOR_RGB2GRAY).astype(np.float64).ravel()
    grey -= grey.mean()
    return grey / max(float(np.linalg.norm(grey)), 1e-6)


def distinct_faces(boxes: np.ndarray) -> list[int]:
    """The rows of (N, 4) ``boxes`` of one frame that are not a face found twice: a box
    within ``SAME_PLACE`` of an earlier one, or lying ``INSIDE`` it or it inside the box,
    is left out (the earlier one stays), in their order."""
    rows: list[int] = []
    for row, box in enumerate(boxes):
        if all(box_distance(box, boxes[other]) > SAME_PLACE and _inside(box, boxes[other]) < INSIDE for other in rows):
            rows.append(row)
    return rows


def _inside(a: np.ndarray, b: np.ndarray) -> float:
    """The intersection of boxes ``a`` and ``b`` over the smaller one's area."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = float(_areas(np.stack([a, b])).min())
    return width * height / smaller if smaller > 0 else 0.0


def _areas(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def largest_first(boxes: np.ndarray) -> np.ndarray:
    """(N, 4) ``boxes`` ordered by area, largest first (ties keep their order)."""
    return boxes[np.argsort(-_areas(boxes), kind="stable")]


def voxceleb_box(face_box: np.ndarray, scale: float = VOXCELEB_SCALE) -> np.ndarray:
    """The square crop box: the face box's longer side times ``scale``, same centre."""
    x0, y0, x1, y1 = face_box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) * scale / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def face_box_of(crop_box: np.ndarray, scale: float = VOXCELEB_SCALE) -> np.ndarray:
    """The (square) face box that ``voxceleb_box`` enlarged into ``crop_box``."""
    centre = (crop_box[:2] + crop_box[2:]) / 2
    half = (crop_box[2:] - crop_box[:2]) / 2 / scale
    return np.concatenate([centre - half, centre + half])


def to_crop_grid(points: np.ndarray, crop_box: np.ndarray) -> np.ndarray:
    """Frame points (dlib's integer pixel positions, (N, 2)) in a crop's grid coordinates
    ([-1, 1] across the crop box, as ``grid_sample`` reads them)."""
    x0, y0, x1, y1 = crop_box
    return ((points + 0.5 - np.array([x0, y0])) / np.array([x1 - x0, y1 - y0]) * 2 - 1).astype(np.float32)


def crop_matrix(box: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 affine map from frame pixels to a ``size`` x ``size`` crop of ``box``, in
    OpenCV's pixel indices (a pixel's centre at its index). Boxes are continuous (a
    pixel's centre at index + 0.5), as in ``to_crop_grid`` and ``render.composite``, so
    crops of one box at any size show the same content at the same grid coordinates."""
    x0, y0, x1, y1 = box
    sx, sy = size / (x1 - x0), size / (y1 - y0)
    return np.array([[sx, 0.0, (0.5 - x0) * sx - 0.5], [0.0, sy, (0.5 - y0) * sy - 0.5]])


def crop(frame: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Resample ``box`` of ``frame`` to a square crop; parts outside the frame are black."""
    scale = (box[2] - box[0]) / size
    if scale <= 1:
        return cv2.warpAffine(frame, crop_matrix(box, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    # INTER_AREA is not applied by warpAffine: shrink first so the crop does not alias, and
    # only the part of the frame the box covers (a whole 1080p frame costs 10x more).
    height, width = frame.shape[:2]
    left, top = max(0, int(np.floor(box[0])) - 1), max(0, int(np.floor(box[1])) - 1)
    right, bottom = min(width, int(np.ceil(box[2])) + 1), min(height, int(np.ceil(box[3])) + 1)
    if right <= left or bottom <= top:
        return np.zeros((size, size, *frame.shape[2:]), frame.dtype)
    shrunk = (max(1, round((right - left) / scale)), max(1, round((bottom - top) / scale)))
    small = cv2.resize(frame[top:bottom, left:right], shrunk, interpolation=cv2.INTER_AREA)
    fx, fy = shrunk[0] / (right - left), shrunk[1] / (bottom - top)
    moved = np.array([(box[0] - left) * fx, (box[1] - top) * fy, (box[2] - left) * fx, (box[3] - top) * fy])
    return cv2.warpAffine(small, crop_matrix(moved, size), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def cells_in_frame(box: np.ndarray, size: int, height: int, width: int) -> np.ndarray:
    """(size, size) bool: the pixels of a ``size`` crop of ``box`` (``crop``) made from a
    frame of ``height`` x ``width`` alone, none of the black beyond its edges mixed in (each
    crop pixel reads the frame over its own extent, or a frame pixel either side where it is
    smaller than one)."""
    def within(start: float, end: float, limit: int) -> np.ndarray:
        step = (end - start) / size
        centres = start + (np.arange(size) + 0.5) * step
        reach = max(step, 1.0) / 2
        return (centres - reach >= -1e-6) & (centres + reach <= limit + 1e-6)

    return within(box[1], box[3], height)[:, None] & within(box[0], box[2], width)[None, :]


def box_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How far apart two boxes are, in units of their mean side; inf if their sizes differ
    by more than half (then they are not the same face at nearly the same time)."""
    side_a, side_b = a[2] - a[0], b[2] - b[0]
    if max(side_a, side_b) > 1.5 * min(side_a, side_b):
        return float("inf")
    centre_a, centre_b = (a[:2] + a[2:]) / 2, (b[:2] + b[2:]) / 2
    return float(np.linalg.norm(centre_a - centre_b) / ((side_a + side_b) / 2))


@dataclass
class Track:
    """One face followed through analysed frames (not necessarily every one)."""

    frame_indices: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    box_numbers: list[int] = field(default_factory=list)  # each box's row in its frame's detections
    missed: int = 0  # consecutive analysed frames without a detection, while linking
    descriptors: list[np.ndarray] = field(default_factory=list)  # FaceDescriber's, of the frames described

    def __len__(self) -> int:
        return len(self.frame_indices)

    @property
    def descriptor(self) -> np.ndarray | None:
        """The mean of the face's descriptors, or None where none was described."""
        return np.mean(self.descriptors, axis=0) if self.descriptors else None

    @property
    def prominence(self) -> float:
        """Frames x area: the face most on screen is the most prominent."""
        return float(sum((b[2] - b[0]) * (b[3] - b[1]) for b in self.boxes))


def link_tracks(detections: Sequence[tuple[int, np.ndarray]], *, max_distance: float = SAME_PLACE, max_gap: int = 2) -> list[Track]:
    """Link per-frame detections into tracks.

    ``detections`` holds (frame index, (N, 4) boxes) for each analysed frame in order.
    Each track takes, nearest first, a box within ``max_distance`` (``box_distance``) of
    its last box; a box that no track takes starts a new track. Distance rather than
    overlap links a moving head even when frames are analysed a fraction of a second apart. The detector misses faces
    now and then (profiles, blur), so a track ends only after ``max_gap`` consecutive
    analysed frames without a box.
    """
    finished: list[Track] = []
    active: list[Track] = []
    for frame_index, boxes in detections:
        pairs = sorted((box_distance(track.boxes[-1], box), t, b) for t, track in enumerate(active) for b, box in enumerate(boxes))
        taken_tracks: set[int] = set()
        taken_boxes: set[int] = set()
        for distance, t, b in pairs:
            if distance > max_distance:
                break
            if t in taken_tracks or b in taken_boxes:
                continue
            active[t].frame_indices.append(frame_index)
            active[t].boxes.append(boxes[b])
            active[t].box_numbers.append(b)
            active[t].missed = 0
            taken_tracks.add(t)
            taken_boxes.add(b)
        for t, track in enumerate(active):
            if t not in taken_tracks:
                track.missed += 1
        finished.extend(track for track in active if track.missed > max_gap)
        active = [track for track in active if track.missed <= max_gap]
        active.extend(Track([frame_index], [box], [b]) for b, box in enumerate(boxes) if b not in taken_boxes)
    return finished + active


def link_people(detections: Sequence[np.ndarray], descriptors: Sequence[np.ndarray | None] | None = None, *,
                max_gap: int = 5, max_fill: int = 2, cuts: Sequence[int] | None = None) -> list[Track]:
    """The people in a video, most prominent first: each one's boxes through the frames.

    ``detections[i]`` holds frame i's (N, 4) boxes; ``descriptors[i]``, where given, their
    (N, 128) ``FaceDescriber`` descriptors (None for frames not described). Boxes are
    linked into pieces across missed detections of up to ``max_fill`` frames; a piece
    whose descriptors change from one person to another (a cut to someone framed alike)
    is split there: at the shot cut between the two descriptors where ``cuts`` (the frames
    that begin a shot) are given, and not at all without a cut between them. Pieces are
    then joined into people in time order: a piece is the person it looks like (mean
    descriptors within ``SAME_PERSON``), wherever and however long after it returns; where
    either is undescribed, it is the person whose face left within ``max_gap`` frames near
    where it appears. A piece on screen together with a person is that person where it is
    their face found twice (``distinct_faces``) in every frame both hold.
    """
    pieces = link_tracks(list(enumerate(detections)), max_gap=max_fill)
    if descriptors is not None:
        pieces = [part for piece in pieces for part in _split_where_the_person_changes(piece, descriptors, cuts)]
    people: list[Track] = []
    for piece in sorted(pieces, key=lambda t: t.frame_indices[0]):
        choices = []
        for person in people:
            if person.frame_indices[-1] >= piece.frame_indices[0]:
                if _found_twice(person, piece):
                    choices.append((-1, 0.0, person))
                continue  # else on screen at the same time: two faces
            mine, theirs = piece.descriptor, person.descriptor
            if mine is not None and theirs is not None:
                distance = float(np.linalg.norm(mine - theirs))
                if distance < SAME_PERSON:
                    choices.append((0, distance, person))
            elif piece.frame_indices[0] - person.frame_indices[-1] <= max_gap:
                distance = box_distance(person.boxes[-1], piece.boxes[0])
                if distance <= SAME_PLACE:
                    choices.append((1, distance, person))
        if choices:
            _join(min(choices, key=lambda c: c[:2])[2], piece)
        else:
            people.append(piece)
    return sorted(people, key=lambda t: -t.prominence)


def _found_twice(person: Track, piece: Track) -> bool:
    """Whether ``piece``, on screen while ``person`` is, is the same face found twice: in
    every frame both hold, one box within ``SAME_PLACE`` of the other or ``INSIDE`` it (a
    followed box grown over an occluder beside a fresh detection of the face), and not
    another person by their descriptors."""
    theirs = dict(zip(person.frame_indices, person.boxes))
    shared = [(theirs[frame], box) for frame, box in zip(piece.frame_indices, piece.boxes) if frame in theirs]
    if not shared or any(len(distinct_faces(np.stack(pair))) > 1 for pair in shared):
        return False
    mine, their_descriptor = piece.descriptor, person.descriptor
    return mine is None or their_descriptor is None or float(np.linalg.norm(mine - their_descriptor)) < SAME_PERSON


def _join(person: Track, piece: Track) -> None:
    """Add ``piece``'s frames to ``person``'s in time order; in a frame both hold, the
    smaller box stays (the face found twice: a box grown over what covers it is the larger)."""
    entries = {frame: (box, number) for frame, box, number in zip(person.frame_indices, person.boxes, person.box_numbers)}
    for frame, box, number in zip(piece.frame_indices, piece.boxes, piece.box_numbers):
        if frame not in entries or _areas(box[None])[0] < _areas(entries[frame][0][None])[0]:
            entries[frame] = box, number
    frames = sorted(entries)
    person.frame_indices[:] = frames
    person.boxes[:] = [entries[frame][0] for frame in frames]
    person.box_numbers[:] = [entries[frame][1] for frame in frames]
    person.descriptors.extend(piece.descriptors)


def _split_where_the_person_changes(piece: Track, descriptors: Sequence[np.ndarray | None],
                                   cuts: Sequence[int] | None = None) -> list[Track]:
    """``piece`` with its frames' descriptors, cut where a descriptor is not the person of
    the one described before it: at the last shot cut between the two (``cuts``: the
    frames that begin a shot), or, without ``cuts``, right before it. With ``cuts``, a
    change within a shot cuts nothing: a hand or a phone over part of a face changes its
    descriptor as much as another person's face would (0.65-0.70 measured), while one
    person cannot become another in front of the camera without a cut."""
    starts = []
    last, last_frame = None, -1
    for frame, number in zip(piece.frame_indices, piece.box_numbers):
        if descriptors[frame] is None:
            continue
        descriptor = descriptors[frame][number]
        if last is not None and np.linalg.norm(descriptor - last) >= SAME_PERSON:
            between = [frame] if cuts is None else [cut for cut in cuts if last_frame < cut <= frame]
            starts += between[-1:]
        last, last_frame = descriptor, frame
    parts = [Track()]
    for frame, box, number in zip(piece.frame_indices, piece.boxes, piece.box_numbers):
        if starts and frame >= starts[0]:
            starts.pop(0)
            if len(parts[-1]):
                parts.append(Track())
        part = parts[-1]
        part.frame_indices.append(frame)
        part.boxes.append(box)
        part.box_numbers.append(number)
        if descriptors[frame] is not None:
            part.descriptors.append(descriptors[frame][number])
    return parts


def choose_person(people: Sequence[Track], *, face: int = 0, looks_like: np.ndarray | None = None) -> Track | None:
    """The person who looks most like the descriptor ``looks_like`` (within ``SAME_PERSON``),
    else the ``face``-th most prominent of ``people`` (``link_people``'s order); None if
    there are not that many."""
    if looks_like is not None:
        described = [(float(np.linalg.norm(p.descriptor - looks_like)), i) for i, p in enumerate(people) if p.descriptor is not None]
        if described and min(described)[0] < SAME_PERSON:
            return people[min(described)[1]]
    return people[face] if face < len(people) else None


def boxes_through(person: Track | None, frame_count: int, *, max_fill: int = 2, smoothing: float = 2.0,
                  cuts: Sequence[int] = ()) -> np.ndarray:
    """``person``'s box in every one of ``frame_count`` frames: gaps of up to ``max_fill``
    frames (a missed detection) are interpolated; longer ones stay lost (NaN rows), so
    nothing is painted where the face is not. Each stretch between lost frames and shot
    ``cuts`` (the frames that begin a shot) is smoothed over time with a Gaussian of
    ``smoothing`` frames so that crops do not jitter; across a cut, where the same face may
    be framed anew, nothing is interpolated or smoothed."""
    boxes = np.full((frame_count, 4), np.nan)
    if person is None:
        return boxes
    seen = np.array(person.frame_indices)  # in order: link_people joins pieces in time order
    known = np.array(person.boxes)
    across_cut = np.searchsorted(cuts, seen[1:], side="right") > np.searchsorted(cuts, seen[:-1], side="right")
    breaks = np.flatnonzero((np.diff(seen) > max_fill + 1) | across_cut) + 1
    for part_frames, part_boxes in zip(np.split(seen, breaks), np.split(known, breaks)):
        frames = np.arange(part_frames[0], part_frames[-1] + 1)
        filled = np.stack([np.interp(frames, part_frames, part_boxes[:, k]) for k in range(4)], axis=1)
        boxes[frames] = _gaussian_smooth(filled, smoothing)
    return boxes


def _gaussian_smooth(values: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth (T, K) values along T, renormalising the kernel at the ends."""
    if sigma <= 0 or len(values) < 2:
        return values
    radius = int(3 * sigma)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    # "full" then the centre: "same" returns the kernel's length when the track is shorter.
    centre = slice(radius, radius + len(values))
    weights = np.convolve(np.ones(len(values)), kernel, mode="full")[centre]
    return np.stack([np.convolve(values[:, k], kernel, mode="full")[centre] / weights for k in range(values.shape[1])], axis=1)


def dlib_model_file(name: str) -> Path:
    """Path of one of dlib's model files shipped by ``face_recognition_models``.

    Located without importing the package, whose ``__init__`` needs pkg_resources.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise X2FaceError("dlib's model files are missing: pip install face_recognition_models")
    return Path(spec.submodule_search_locations[0]) / "models" / name


_per_thread = threading.local()


def _hog_detector() -> dlib.fhog_object_detector:
    """dlib's HOG face detector of the calling thread: 0.25 s to build, so built once per
    thread, and never shared between threads (it keeps the image it scans in itself: two
    threads scanning with one corrupt memory)."""
    if not hasattr(_per_thread, "hog"):
        _per_thread.hog = dlib.get_frontal_face_detector()
    return _per_thread.hog


@functools.cache
def _shape_predictor(points: int) -> dlib.shape_predictor:
    # The 68-point model takes 0.7 s to load: once per process, shared by every detector.
    return dlib.shape_predictor(str(dlib_model_file(f"shape_predictor_{points}_face_landmarks.dat")))


@functools.cache
def _face_recognition_model() -> dlib.face_recognition_model_v1:
    return dlib.face_recognition_model_v1(str(dlib_model_file("dlib_face_recognition_resnet_model_v1.dat")))


class FaceDescriber:
    """dlib's 128-D face descriptor (a ResNet on the aligned face; about 80 ms a face
    here): who a face is, whatever its pose and place. Faces of one person lie within
    ``SAME_PERSON`` of each other."""

    def __init__(self) -> None:
        self._model = _face_recognition_model()
        self._landmarks = _shape_predictor(5)

    def __call__(self, rgb: np.ndarray, face_box: np.ndarray) -> np.ndarray:
        """The descriptor of the face in ``face_box`` of an (H, W, 3) uint8 frame."""
        rgb = np.ascontiguousarray(rgb)
        x0, y0, x1, y1 = (int(round(v)) for v in face_box)
        shape = self._landmarks(rgb, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array(self._model.compute_face_descriptor(rgb, shape))


class LandmarkDetector:
    """dlib's facial landmarks inside a face box: 68 points, or 5 (eye corners and nose,
    about 1 ms) for following a face between detections."""

    def __init__(self, points: int = 68) -> None:
        if points not in (5, 68):
            raise ValueError(f"dlib predicts 5 or 68 landmarks, not {points}")
        self._predictor = _shape_predictor(points)

    def __call__(self, rgb: np.ndarray, face_box: np.ndarray) -> np.ndarray:
        """(points, 2) landmark coordinates (x, y) in pixels."""
        x0, y0, x1, y1 = (int(round(v)) for v in face_box)
        shape = self._predictor(np.ascontiguousarray(rgb), dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def mouth_opening(landmarks: np.ndarray) -> float:
    """How far the lips are apart: the gap between dlib's inner-lip points (61-63 above,
    65-67 below) over the distance between the outer eye corners, so the face's size and
    distance do not count."""
    gap = np.linalg.norm(landmarks[[61, 62, 63]].mean(axis=0) - landmarks[[67, 66, 65]].mean(axis=0))
    return float(gap / np.linalg.norm(landmarks[45] - landmarks[36]))


def mouth_width(landmarks: np.ndarray) -> float:
    """How wide the mouth is: from one of dlib's mouth corners to the other (48, 54) over the
    distance between the outer eye corners (rounded lips narrow it, spread lips widen it)."""
    return float(np.linalg.norm(landmarks[54] - landmarks[48]) / np.linalg.norm(landmarks[45] - landmarks[36]))

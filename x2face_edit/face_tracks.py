"""Face tracks for training, as files: one video's faces in, VoxCeleb-style crops out.

Layout written under the output folder (what ``model.data`` reads)::

    manifest.json                     every track: folder, identity, video, frame count
    <video file name>/video.json      written last: the video is done (resumability)
    <video file name>/track_000/track.json, 000000.jpg, 000001.jpg, ...
    <video file name>/track_000/audio.npy   per-frame audio features (videos with sound)

``track.json`` records each frame's time, crop box, head pose (yaw, pitch, roll from
the landmarks; null where the fit fails) and dlib's 68 landmarks in crop pixels
(continuous coordinates: the crop's top-left corner is (0, 0), its first pixel's centre
(0.5, 0.5)). Tracks prepared before landmarks were recorded get them on a re-run,
without re-encoding their crops.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .audio_features import frame_features, load_audio
from .errors import X2FaceError
from .faces import FaceDetector, LandmarkDetector, crop, face_box_of, link_tracks, to_crop_grid, voxceleb_box
from .head_pose import MAX_ANGLE, head_pose
from .outputs import atomic_output
from .video import frames_at, iter_frames, probe

MANIFEST = "manifest.json"
VIDEO_RECORD = "video.json"
TRACK_RECORD = "track.json"


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 256
    sample_fps: float = 5.0
    min_frames: int = 4
    jpeg_quality: int = 95


def prepare_video(video: Path, out_dir: Path, identity: str, options: PrepareOptions) -> dict:
    """Track the faces of one video and write their crops; return its record."""
    info = probe(video)
    detector, landmarks = FaceDetector(), LandmarkDetector()
    times: dict[int, float] = {}
    crops: dict[tuple[int, int], np.ndarray] = {}  # (frame index, box number) -> crop
    poses: dict[tuple[int, int], list[float] | None] = {}
    points: dict[tuple[int, int], list[list[float]]] = {}
    detections = []
    for frame in iter_frames(video, sample_fps=options.sample_fps):
        boxes = detector.detect(frame.rgb)
        detections.append((frame.index, boxes))
        times[frame.index] = frame.time
        for number, face_box in enumerate(boxes):
            crops[frame.index, number] = crop(frame.rgb, voxceleb_box(face_box), options.size)
            found = landmarks(frame.rgb, face_box)
            points[frame.index, number] = landmarks_in_crop(found, voxceleb_box(face_box), options.size)
            pose = head_pose(found, info.width, info.height)
            # Fits that fail (profiles) give wild angles: no label rather than a wrong one.
            poses[frame.index, number] = [round(float(a), 2) for a in pose] if np.all(np.abs(pose) <= MAX_ANGLE) else None
    tracks = [t for t in link_tracks(detections) if len(t) >= options.min_frames]

    video_dir = out_dir / video.name
    if video_dir.exists():
        shutil.rmtree(video_dir)  # left by an interrupted run
    video_dir.mkdir(parents=True)
    samples = load_audio(video) if info.has_audio else None
    track_names = []
    for number, track in enumerate(tracks):
        track_dir = video_dir / f"track_{number:03d}"
        track_dir.mkdir()
        records = []
        for position, (frame_index, face_box, box_number) in enumerate(zip(track.frame_indices, track.boxes, track.box_numbers)):
            name = f"{position:06d}.jpg"
            Image.fromarray(crops[frame_index, box_number]).save(track_dir / name, quality=options.jpeg_quality)
            box = voxceleb_box(face_box)
            records.append({"file": name, "frame": frame_index, "time": round(times[frame_index], 6),
                            "box": [round(v, 2) for v in box.tolist()], "pose": poses[frame_index, box_number],
                            "landmarks": points[frame_index, box_number]})
        if samples is not None:
            np.save(track_dir / "audio.npy", frame_features(samples, np.array([r["time"] for r in records])))
        _write_json(track_dir / TRACK_RECORD, {
            "video": video.name,
            "identity": identity,
            "size": options.size,
            "sample_fps": options.sample_fps,
            "frames": records,
        })
        track_names.append(track_dir.name)
    record = {
        "video": str(video),
        "identity": identity,
        "width": info.width,
        "height": info.height,
        "fps": float(info.fps),
        "frames_analysed": len(detections),
        "tracks": track_names,
    }
    _write_json(video_dir / VIDEO_RECORD, record)
    return record


def landmarks_in_crop(points: np.ndarray, crop_box: np.ndarray, size: int) -> list[list[float]]:
    """Frame landmarks (dlib's integer pixel positions) in a ``size`` crop's continuous
    pixel coordinates, rounded to 0.01 px."""
    return np.round((to_crop_grid(points, crop_box).astype(np.float64) + 1) / 2 * size, 2).tolist()


def add_missing_landmarks(video: Path, video_dir: Path) -> bool:
    """Record landmarks in the tracks of a video prepared before they were kept; the crops
    stay as they are. The face box is the crop box shrunk back by the VoxCeleb scale.
    Returns whether anything was added."""
    track_paths = [video_dir / name / TRACK_RECORD for name in read_json(video_dir / VIDEO_RECORD)["tracks"]]
    records = [read_json(path) for path in track_paths]
    wanted = sorted({f["frame"] for r in records for f in r["frames"] if "landmarks" not in f})
    if not wanted:
        return False
    landmarks = LandmarkDetector()
    decoded = frames_at(video, wanted)
    for path, record in zip(track_paths, records):
        for frame in record["frames"]:
            if "landmarks" not in frame:
                crop_box = np.array(frame["box"])
                found = landmarks(decoded[frame["frame"]], face_box_of(crop_box))
                frame["landmarks"] = landmarks_in_crop(found, crop_box, record["size"])
        _write_json(path, record)
    return True


def write_manifest(out_dir: Path) -> dict:
    """Collect every finished video's tracks into ``manifest.json``."""
    tracks = []
    for record_path in sorted(out_dir.glob(f"*/{VIDEO_RECORD}")):
        record = read_json(record_path)
        for name in record["tracks"]:
            track = read_json(record_path.parent / name / TRACK_RECORD)
            tracks.append({
                "path": f"{record_path.parent.name}/{name}",
                "identity": track["identity"],
                "video": track["video"],
                "frames": len(track["frames"]),
            })
    manifest = {"size": _single_size(out_dir, tracks), "tracks": tracks}
    _write_json(out_dir / MANIFEST, manifest)
    return manifest


def _single_size(out_dir: Path, tracks: list[dict]) -> int | None:
    sizes = {read_json(out_dir / t["path"] / TRACK_RECORD)["size"] for t in tracks}
    if len(sizes) > 1:
        raise X2FaceError(f"{out_dir} mixes crop sizes {sorted(sizes)}; prepare each size into its own folder")
    return sizes.pop() if sizes else None


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _write_json(path: Path, data: dict) -> None:
    with atomic_output(path, force=True) as partial:
        partial.write_text(json.dumps(data, indent=1))

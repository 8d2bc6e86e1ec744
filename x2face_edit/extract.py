"""The embedded face of a video: the pose-free texture a user paints on.

``extract`` writes four files: ``face.png`` (the embedded face), ``face.edit.png`` (a
transparent layer of the same size to paint on, or to paint over ``face.png`` in an
editor), ``face.guide.png`` (the painting guide, ``guide.py``) and ``face.json`` (the
sidecar: video, frames, crop boxes and model, from which ``render`` rebuilds the
unpainted face to tell what was painted; and the landmarks the guide draws).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .errors import X2FaceError
from .faces import FaceDetector, LandmarkDetector, crop, face_box_of, to_crop_grid
from .guide import coverage_mask, draw_guide, save_guide, to_pixels
from .model import X2Face
from .model.landmarks import invert_grid
from .model.networks import resize_grid, sample, weighted_average
from .outputs import atomic_output, check_output
from .sequences import media_exists
from .tracking import VideoTrack
from .video import frames_at

SIDECAR_FORMAT = "x2face-edit embedded face"
# Candidate frames scored when choosing sources automatically.
CANDIDATES = 48


@dataclass
class EmbeddedFace:
    image: np.ndarray  # (S, S, 3) uint8
    sidecar: dict
    coverage: np.ndarray | None = None  # (S, S) uint8 mask: the part of the face the video's frames show


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] from HxWx3 uint8 arrays."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)


def to_image(tensor: torch.Tensor) -> np.ndarray:
    """HxWxC uint8 from a (C, H, W) tensor in [0, 1]."""
    return (tensor.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.inference_mode()
def driving_vectors(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], *, batch: int = 16) -> torch.Tensor:
    resolution = model.config.resolution
    device = next(model.parameters()).device
    vectors = []
    for start in range(0, len(frames), batch):
        crops = [crop(f, b, resolution) for f, b in zip(frames[start : start + batch], boxes[start : start + batch])]
        vectors.append(model.driving_vector(to_tensor(crops).to(device)).cpu())
    return torch.cat(vectors)


def choose_source_frames(model: X2Face, video: Path, track: VideoTrack, count: int) -> dict[int, np.ndarray]:
    """``count`` tracked frames whose driving vectors are far apart (different poses), by
    index, decoded (so that the video need not be decoded again for them).

    Farthest-point sampling over the clearer half (``FaceDetector.visibility``) of up to
    ``CANDIDATES`` evenly spaced tracked frames, starting from the one nearest their
    average pose. A hand or a phone over the face makes a frame unusual, which is what
    farthest-point sampling seeks: on 6 held-out clips with a hand or a phone over the
    face for 40 % of each (``synthetic.write_occluded_copy``), 19 of the 36 frames it
    chose had the hand or phone in view, 5 from the clearer half.
    """
    tracked = np.flatnonzero(track.found)
    candidates = sorted({int(tracked[round(i)]) for i in np.linspace(0, len(tracked) - 1, min(CANDIDATES, len(tracked)))})
    frames = frames_at(video, candidates, times=track.times[candidates].tolist())
    detector = FaceDetector()
    visibility = np.array([detector.visibility(frames[i], track.face_boxes[i]) for i in candidates])
    clearest = np.sort(np.argsort(-visibility, kind="stable")[: max(count, math.ceil(len(candidates) / 2))])
    candidates = [candidates[i] for i in clearest]
    vectors = driving_vectors(model, [frames[i] for i in candidates], [track.crop_box(i) for i in candidates])
    chosen = [int(torch.cdist(vectors.mean(0, keepdim=True), vectors).argmin())]
    while len(chosen) < min(count, len(candidates)):
        distance = torch.cdist(vectors, vectors[chosen]).min(dim=1).values
        chosen.append(int(distance.argmax()))
    return {candidates[i]: frames[candidates[i]] for i in sorted(chosen)}


@torch.inference_mode()
def embed_frames(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], size: int) -> np.ndarray:
    """The confidence-weighted embedded face of several frames at ``size`` pixels.

    The model predicts each frame's embedding grid at its own resolution; the grid and the
    confidence are upsampled and sample a ``size`` crop, so the texture keeps the video's
    detail rather than the model's resolution.
    """
    device = next(model.parameters()).device
    small = to_tensor([crop(f, b, model.config.resolution) for f, b in zip(frames, boxes)]).to(device)
    large = to_tensor([crop(f, b, size) for f, b in zip(frames, boxes)]).to(device)
    grid, confidence = model.embedding_grid(small)
    embedded = sample(large, resize_grid(grid, size, size))
    confidence = torch.nn.functional.interpolate(confidence, size=(size, size), mode="bilinear", align_corners=False)
    return to_image(weighted_average(embedded.unsqueeze(0), confidence.unsqueeze(0))[0])


@torch.inference_mode()
def locate_in_embedded_face(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray],
                            points: list[np.ndarray]) -> torch.Tensor:
    """Where points of source frames lie on their embedded face, in grid coordinates.

    ``points[i]`` (N, 2) are frame i's points in its crop's grid coordinates; each frame's
    are carried through the inverse of its own embedding grid (which says, for every
    embedded-face position, which crop position it samples), then averaged over the
    frames, as the embedded face averages them. Paint put there lands on those points.
    """
    device = next(model.parameters()).device
    grids, _ = model.embedding_grid(to_tensor([crop(f, b, model.config.resolution) for f, b in zip(frames, boxes)]).to(device))
    located = [invert_grid(grid.cpu(), torch.as_tensor(p, dtype=torch.float32)) for grid, p in zip(grids, points)]
    return torch.stack(located).mean(dim=0)


def embedded_landmarks(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray]) -> torch.Tensor:
    """Where the face's 68 dlib landmarks lie on the embedded face of these source frames
    (grid coordinates, ``locate_in_embedded_face``)."""
    detector = LandmarkDetector()
    points = [to_crop_grid(detector(frame, face_box_of(box)), box) for frame, box in zip(frames, boxes)]
    return locate_in_embedded_face(model, frames, boxes, points)


def extract(
    model: X2Face,
    model_info: dict,
    video: str | Path,
    track: VideoTrack,
    *,
    sources: int = 3,
    frames: list[int] | None = None,
    size: int = 512,
    face: int = 0,
) -> EmbeddedFace:
    """The embedded face of ``video`` from ``sources`` automatically chosen frames, or
    from the given ``frames``. ``model_info`` (path, fingerprint), ``face`` (which face
    ``track`` follows) and who that face is (``track.person``) go into the sidecar."""
    video = Path(video).resolve()
    if frames is None:
        decoded = choose_source_frames(model, video, track, sources)
        frames = sorted(decoded)
    else:
        for index in frames:
            if not 0 <= index < len(track.found):
                raise X2FaceError(f"frame {index} is outside {video.name} (0 to {len(track.found) - 1})")
            if not track.found[index]:
                raise X2FaceError(f"no face tracked in frame {index} of {video.name}")
        decoded = frames_at(video, frames, times=track.times[frames].tolist())
    boxes = [track.crop_box(i) for i in frames]
    sidecar = {
        "format": SIDECAR_FORMAT,
        "video": str(video),
        "face": face,
        **({"person": [round(float(v), 5) for v in track.person]} if track.person is not None else {}),
        "frames": list(frames),
        "times": track.times[frames].tolist(),  # so that render seeks to them (video.frames_at)
        "crop_boxes": [[round(float(v), 3) for v in b] for b in boxes],
        "size": size,
        "model": {**model_info, "config": model.config.to_dict(), "embedding": model.embedding_fingerprint()},
    }
    sources = [decoded[i] for i in frames]
    landmarks = embedded_landmarks(model, sources, boxes).numpy()
    sidecar["landmarks"] = [[round(float(v), 2) for v in point] for point in to_pixels(landmarks, size)]
    return EmbeddedFace(embed_frames(model, sources, boxes, size), sidecar, coverage_of(model, sources, boxes, size))


@torch.inference_mode()
def coverage_of(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], size: int) -> np.ndarray:
    """The part of the embedded face that the frames' driving grids sample (``guide.coverage_mask``)."""
    device = next(model.parameters()).device
    crops = to_tensor([crop(f, b, model.config.resolution) for f, b in zip(frames, boxes)]).to(device)
    grids = model.decode(model.driving_vector(crops))
    return coverage_mask(grids.reshape(-1, 2).cpu().numpy(), size)


def source_frames(sidecar: dict) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The source frames a sidecar names, decoded from its video, and their crop boxes."""
    video = Path(sidecar["video"])
    if not media_exists(video):
        raise X2FaceError(f"the video the face was extracted from is gone: {video}")
    decoded = frames_at(video, sidecar["frames"], times=sidecar.get("times"))
    return [decoded[i] for i in sidecar["frames"]], [np.array(b) for b in sidecar["crop_boxes"]]


def rebuild(model: X2Face, sidecar: dict) -> np.ndarray:
    """The unpainted embedded face a sidecar describes, recomputed from its video."""
    return embed_frames(model, *source_frames(sidecar), sidecar["size"])


def output_paths(face_png: str | Path) -> tuple[Path, Path, Path, Path]:
    """``face.png`` -> (face.png, face.edit.png, face.guide.png, face.json)."""
    face_png = Path(face_png)
    if face_png.suffix.lower() != ".png":
        # A lossy copy would not do: render finds the paint where a painted copy differs from it.
        raise X2FaceError(f"{face_png.name}: write the embedded face as .png (lossless; render finds the paint "
                          "where the painted copy differs from it)")
    return face_png, face_png.with_suffix(".edit.png"), face_png.with_suffix(".guide.png"), face_png.with_suffix(".json")


def save(face: EmbeddedFace, face_png: str | Path, *, force: bool = False) -> tuple[Path, Path, Path, Path]:
    paths = output_paths(face_png)
    for path in paths:
        check_output(path, force=force)
    image_path, layer_path, guide_path, sidecar_path = paths
    with atomic_output(image_path, force=force) as partial:
        Image.fromarray(face.image).save(partial, format="PNG")
    with atomic_output(layer_path, force=force) as partial:
        Image.new("RGBA", face.image.shape[1::-1], (0, 0, 0, 0)).save(partial, format="PNG")
    with atomic_output(guide_path, force=force) as partial:
        save_guide(draw_guide(face.image.shape[0], np.array(face.sidecar["landmarks"]) / face.image.shape[0] * 2 - 1,
                              face.coverage), partial)
    # The video is recorded relative to the sidecar too, so a project folder can move as a whole.
    video = Path(face.sidecar["video"])
    relative = os.path.relpath(video, sidecar_path.resolve().parent)
    with atomic_output(sidecar_path, force=force) as partial:
        partial.write_text(json.dumps({**face.sidecar, "video": relative, "video_absolute": str(video)}, indent=1))
    return paths


def followed_face(sidecar: dict, face: int | None) -> tuple[int, np.ndarray | None]:
    """Which face of a driving video the paint follows: (face number, descriptor to look
    for). ``face`` where given; else the person the sidecar's face is, where it says, and
    the sidecar's face number for footage where nobody looks like them."""
    if face is not None:
        return face, None
    person = sidecar.get("person")
    return sidecar.get("face", 0), None if person is None else np.array(person)


def read_sidecar(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise X2FaceError(f"sidecar not found: {path} (written by 'extract' beside the face image; pass --sidecar)")
    try:
        sidecar = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise X2FaceError(f"{path} is not a sidecar written by 'extract' (not JSON)") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT:
        raise X2FaceError(f"{path} is not a sidecar written by 'extract'")
    beside = path.resolve().parent / sidecar["video"]
    if media_exists(beside) or "video_absolute" not in sidecar:
        sidecar["video"] = str(beside)  # an absolute path stays as it is
    else:
        sidecar["video"] = sidecar["video_absolute"]
    return sidecar

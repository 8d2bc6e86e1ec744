"""Where a face's nose and eyes lie in the crops a model was trained on: faces.CROP_LANDMARKS.

    python benchmarks/crop_landmarks.py TRACKS

TRACKS is a folder made by `x2face-edit prepare` (each frame's 68 dlib landmarks in its
crop). Prints the Procrustes mean of the landmarks `faces.aligned_face_box` places crops by,
in crop units (scaled and placed as the landmarks are on average), and how much the crops'
scale relative to those landmarks varies: the variation boxes placed by the landmarks remove.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from x2face_edit.faces import ALIGNING_LANDMARKS, similarity_factor
from x2face_edit.model.data import load_tracks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tracks")
    args = parser.parse_args()
    shapes, tracks = [], load_tracks(args.tracks)
    for track in tracks:
        record = json.loads((track.folder / "track.json").read_text())
        for frame in record["frames"]:
            if frame.get("landmarks"):
                points = np.array(frame["landmarks"])[ALIGNING_LANDMARKS] / record["size"]
                shapes.append(points[:, 0] + 1j * points[:, 1])
    shapes = np.array(shapes)
    mean = shapes.mean(axis=0)
    for _ in range(5):
        aligned = [mean.mean() + similarity_factor(shape, mean) * (shape - shape.mean()) for shape in shapes]
        mean = np.mean(aligned, axis=0)
    plain = shapes.mean(axis=0)  # keep the data's own scale and place: crop units
    mean = plain.mean() + similarity_factor(mean, plain) * (mean - mean.mean())
    scales = np.array([abs(similarity_factor(mean, shape)) for shape in shapes])
    print(f"{len(shapes)} faces of {len(tracks)} tracks; crop scale relative to the landmarks: "
          f"median {np.median(scales):.3f}, spread (sd of log) {np.log(scales).std():.3f}")
    print("CROP_LANDMARKS = np.array([" + ", ".join(f"[{z.real:.4f}, {z.imag:.4f}]" for z in mean) + "])")


if __name__ == "__main__":
    main()

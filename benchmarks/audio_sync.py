"""Does speech open and close the generated mouth in time, for speakers no model has heard?

    python benchmarks/audio_sync.py [--speech PATH] [--fraction 0.7] [--json OUT] [CLIP ...]

Held-out speakers only (benchmarks/held_out_speakers.txt of ../shared/data/clips, and all
of ../shared/data/clips-eval); clips whose sound is silent or whose mouth barely moves are
listed and skipped. The first ``--fraction`` of a clip is the speaker's material (their
source face, their range of mouth opening), the rest the test. Each run predicts the
mouth opening (inner-lip gap / eye distance) over the test part; ``curve`` correlates the
predicted opening with the real one (dlib on the real frames), ``video`` the opening dlib
measures on the generated frames with the real one; ``width`` columns do the same for the
mouth's width (corner to corner / eye distance), which the pooled model predicts apart from
the opening (``own`` moves the corners only as far as they follow the opening).

- pooled: the pooled speech model (``speech.SpeechModel``, MODEL.speech.pt), the speaker's
  range taken from their material;
- silent source: the pooled model (what ``audio SRC`` does for a source without speech), as for a source that never spoke (its rest is the source
  frame's opening, the range and landmark motion the speakers' pooled ones);
- controls: the pooled model on the sound 1 s earlier, on another clip's sound, and two
  pooled models fitted here on the training clips as the shipped one is but from the
  loudness envelope alone and from voice activity alone;
- current: the speaker's own log-mel mouth map (``audio.speaker_mouth_map``);
- blended: the speaker's own map and the pooled model on the speaker's range, averaged
  (``audio.blended_mouth``, what ``audio SRC`` does for a talking source);
- ceiling (video only): X2Face driven by the real test frames' own driving vectors;
- pooled_whole_curve: the pooled model's curve over the whole clip (it never heard these
  speakers, so every frame is a test: a steadier figure than the last 30 % alone).

Means are Fisher-z means; medians beside them; "long" are the clips with >= 2 s of test.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from x2face_edit.audio import (
    PooledMouth,
    SpeakerFrames,
    blended_mouth,
    mouth_shape,
    pooled_mouth,
    speaker_frames,
    speaker_mouth_map,
    speaking_frames,
    talking_clip,
)
from x2face_edit.audio_features import load_audio
from x2face_edit.embedding import choose_source_frames, embed
from x2face_edit.faces import FaceDetector, LandmarkDetector
from x2face_edit.model import default_model_path, load_model
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.model.modalities import POSE_FORMAT, load_map, maps_path
from x2face_edit.source import SourceFace, generated_frames
from x2face_edit.speech import SpeechFitOptions, SpeechModel, correlation, default_speech_path, fisher_mean, fit_speech_model
from x2face_edit.tracking import track_video
from x2face_edit.video import probe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT = {line.split("#")[0].strip() for line in (Path(__file__).with_name("held_out_speakers.txt")).read_text().splitlines()} - {""}
SILENT_RMS, STILL_MOUTH = 1e-3, 0.02
CURVES = ("pooled", "shifted", "other_sound", "envelope_only", "activity_only", "current", "blended")
VIDEOS = ("pooled", "silent_source", "shifted", "other_sound", "envelope_only", "activity_only", "current", "blended", "ceiling")
WIDTH_CURVES, WIDTH_VIDEOS = ("pooled",), ("pooled", "silent_source", "current", "blended", "ceiling")
COLUMNS = ([f"{n}_curve" for n in CURVES] + [f"{n}_video" for n in VIDEOS] + [f"{n}_width_curve" for n in WIDTH_CURVES]
           + [f"{n}_width_video" for n in WIDTH_VIDEOS] + ["pooled_whole_curve"])
LANDMARKS, DETECTOR = LandmarkDetector(), FaceDetector()
VIDEO_SUFFIXES = (".mp4", ".mov", ".mpg")


def shape_of(rgb: np.ndarray) -> np.ndarray:
    """(2,) the opening and width of the mouth dlib finds in ``rgb`` (NaN where none)."""
    found = DETECTOR.detect(rgb)
    return mouth_shape(LANDMARKS(rgb, found[0])) if len(found) else np.full(2, np.nan)


def subset(frames: SpeakerFrames, chosen: np.ndarray) -> SpeakerFrames:
    return SpeakerFrames(frames.times[chosen], frames.vectors[chosen], frames.landmarks[chosen], frames.samples)


def control_models(speech: SpeechModel) -> dict[str, SpeechModel]:
    """Pooled models from the envelope alone and from voice activity alone, fitted on the
    training clips the shipped one was fitted on."""
    names = speech.meta["clips"]
    clips = [talking_clip(p) for d in ("clips",) for p in sorted((SHARED / d).iterdir()) if p.stem in names]
    return {f"{part}_only": fit_speech_model(clips, SpeechFitOptions(parts=(part,))) for part in ("envelope", "activity")}


def score_clip(model, pose_maps, speech: SpeechModel, controls: dict, clip: Path, other: Path, *, fraction: float,
               shift: float) -> dict:
    samples = load_audio(clip)
    if np.sqrt(np.mean(samples ** 2)) < SILENT_RMS:
        return {"skipped": "silent sound track"}
    real = talking_clip(clip)
    if np.nanstd(real.openings) < STILL_MOUTH:
        return {"skipped": f"the mouth barely moves (opening std {np.nanstd(real.openings):.3f})"}
    track = track_video(clip)
    frames = speaker_frames(model, clip, track=track, samples=samples)
    cut = frames.times[0] + fraction * (frames.times[-1] - frames.times[0])
    early = replace(track, face_boxes=np.where((track.times < cut)[:, None], track.face_boxes, np.nan))
    chosen = choose_source_frames(model, clip, early, 3)
    images, boxes = list(chosen.values()), [track.crop_box(i) for i in chosen]
    embedding = embed(model, images, boxes, 256)
    source = SourceFace(embedding.image, embedding.landmarks, images[0], boxes[0], clip, float(track.times[next(iter(chosen))]))
    material, test = frames.times < cut, frames.times >= cut
    times = frames.times[test]
    truth = real.openings[np.searchsorted(real.times, times)]
    true_widths = real.widths[np.searchsorted(real.times, times)]
    own = subset(frames, material)
    pooled = pooled_mouth(speech, own)
    silent = pooled_mouth(speech, None, source.frame_landmarks())
    other_samples = load_audio(other)
    other_times = times % max(0.5, len(other_samples) / 16000 - 0.3)
    mouths = {"pooled": (pooled, samples, times), "silent_source": (silent, samples, times),
              "shifted": (pooled, samples, times - shift), "other_sound": (pooled, other_samples, other_times),
              "current": (speaker_mouth_map(own), samples, times), "blended": (blended_mouth(speech, own), samples, times)}
    for name, control in controls.items():
        mouths[name] = (PooledMouth(control, pooled.rest, pooled.spread, pooled.motion), samples, times)
    scores = {"frames": int(test.sum()), "seconds": round(float(times[-1] - times[0]), 2),
              "pooled_whole_curve": correlation(pooled(samples, real.times), real.openings)}
    for name, (mouth, sound, at) in mouths.items():
        if name in CURVES:
            scores[f"{name}_curve"] = correlation(mouth(sound, at), truth)
        if name in WIDTH_CURVES:
            scores[f"{name}_width_curve"] = correlation(mouth.shapes(sound, at)[:, 1], true_widths)
        generated = np.array([shape_of(rgb) for rgb in speaking_frames(model, mouth, pose_maps, source, sound, at)]).reshape(-1, 2)
        scores[f"{name}_video"] = correlation(generated[:, 0], truth)
        if name in WIDTH_VIDEOS:
            scores[f"{name}_width_video"] = correlation(generated[:, 1], true_widths)
    ceiling = np.array([shape_of(rgb) for rgb in generated_frames(model, source, frames.vectors[test])]).reshape(-1, 2)
    scores["ceiling_video"] = correlation(ceiling[:, 0], truth)
    scores["ceiling_width_video"] = correlation(ceiling[:, 1], true_widths)
    return scores


def summary(results: dict) -> dict:
    scored = [s for s in results.values() if "skipped" not in s]
    long = [s for s in scored if s["seconds"] >= 2]
    out = {}
    for key in COLUMNS:
        out[key] = {"mean": fisher_mean([s[key] for s in scored]), "median": float(np.nanmedian([s[key] for s in scored])),
                    "long_mean": fisher_mean([s[key] for s in long]), "clips": len(scored), "long_clips": len(long)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--speech", type=Path, default=None, help="The pooled speech model (default: MODEL.speech.pt).")
    parser.add_argument("--fraction", type=float, default=0.7)
    parser.add_argument("--shift", type=float, default=1.0, help="Seconds the control's sound is taken from earlier.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_path = args.model or default_model_path()
    model = load_model(model_path)
    pose_maps, _ = load_map(maps_path(model_path, "pose"), kind=POSE_FORMAT, model_fingerprint=file_fingerprint(model_path))
    speech = SpeechModel.load(args.speech or default_speech_path(model_path))
    controls = control_models(speech)
    clips = args.clips or sorted(p for p in (SHARED / "clips").iterdir() if p.stem in HELD_OUT) + sorted(
        p for p in (SHARED / "clips-eval").iterdir() if p.suffix in VIDEO_SUFFIXES)
    clips = [clip for clip in clips if clip.suffix in VIDEO_SUFFIXES and probe(clip).has_audio]
    assert not {c.stem for c in clips} & set(speech.meta["clips"]), "a scored clip is one the speech model was fitted on"
    results = {}
    print("| clip | test | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for number, clip in enumerate(clips):
        other = clips[(number + 1) % len(clips)]
        scores = score_clip(model, pose_maps, speech, controls, clip, other, fraction=args.fraction, shift=args.shift)
        results[clip.name] = scores
        if "skipped" in scores:
            print(f"| {clip.name} | skipped: {scores['skipped']} |" + " |" * len(COLUMNS), flush=True)
            continue
        print(f"| {clip.name} | {scores['frames']} ({scores['seconds']} s) | " + " | ".join(f"{scores[c]:.2f}" for c in COLUMNS) + " |",
              flush=True)
    totals = summary(results)
    for kind in ("mean", "median", "long_mean"):
        print(f"| {kind} | | " + " | ".join(f"{totals[c][kind]:.2f}" for c in COLUMNS) + " |")
    if args.json:
        args.json.write_text(json.dumps({"clips": results, "summary": totals}, indent=1))


if __name__ == "__main__":
    main()

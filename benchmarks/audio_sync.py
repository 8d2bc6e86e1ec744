"""Does speech open and close the generated mouth in time? Held-out talking clips.

    python benchmarks/audio_sync.py [--model PATH] [--fraction 0.7] [CLIP ...]

For each clip with sound in which the mouth moves (default: the clips with sound of the
people no shipped model was trained on: the validation and test identities of
../shared/data/clips and ../shared/data/clips-eval; clips whose sound track is silent or
whose mouth barely moves are listed and skipped): the first ``--fraction`` of the clip is the
speaker's material, the rest the test. The embedded face comes from 3 frames of the first
part (as `audio SRC` makes it); the speaker's mouth is learnt from the first part's frames
and sound (`audio.speaker_mouth_map`, what `audio SRC` uses); then the face is driven by
the sound of the last part and the generated mouth opening (inner-lip gap / eye distance,
dlib on the generated 256 px frames) is correlated with the real mouth opening of the real
frames at the same times. Beside it: the speaker's own map from sound to driving vectors
(`audio.speaker_audio_map`, the previous default), the global map fitted on other people
(`fit-audio`), and the control: the speaker's mouth driven by the sound 1 s earlier
(`--shift`), which must score near 0 if the mouth follows the sound rather than the
clip's rhythm.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from x2face_edit.audio import MOUTH_OFFSETS, MOUTH_RIDGE, MouthMap, speaker_audio_map, speaker_frames, speaker_mouth_map, speaking_frames, speech_vectors
from x2face_edit.audio_features import load_audio
from x2face_edit.embedding import choose_source_frames, embed
from x2face_edit.faces import FaceDetector, LandmarkDetector, mouth_opening
from x2face_edit.model import default_model_path, load_model
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.model.modalities import AUDIO_FORMAT, POSE_FORMAT, load_map, maps_path
from x2face_edit.source import SourceFace, generated_frames
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames, probe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
# The validation and test identities of `prepare ../shared/data/clips` (split seed 0): the
# shipped model never trained on them; with ../shared/data/clips-eval, the held-out speakers.
HELD_OUT = ["dpe_s", "hellomeme_jue", "hellomeme_nhs", "hellomeme_tiktok", "latentsync_demo2_video", "lipnet_id2_vcd_swwp2s",
            "lipnet_sbwe5n", "pcavs_Pose_Source_517600055", "pcavs_Pose_Source_620900105", "pcavs_Pose_Source_796100172",
            "retalking_2", "styletalk_spata_clip1", "dpe_d", "hellomeme_xzy2", "liveportrait_d13", "liveportrait_d5",
            "liveportrait_s18", "pcavs_Audio_Source_681100216", "styletalk_furious_talk2_clip6", "xportrait_driving_video"]
# A sound track quieter than this (RMS) is silent; a mouth whose opening varies less is not talking.
SILENT_RMS, STILL_MOUTH = 1e-3, 0.02
RUNS = ("speaker", "speaker_vectors", "global", "shifted")
LANDMARKS = LandmarkDetector()
DETECTOR = FaceDetector()


def opening_of(rgb: np.ndarray, face_box: np.ndarray | None = None) -> float:
    """dlib's mouth opening of the face in ``rgb`` (its most prominent one), NaN if none."""
    if face_box is None:
        found = DETECTOR.detect(rgb)
        if not len(found):
            return float("nan")
        face_box = found[0]
    return mouth_opening(LANDMARKS(rgb, face_box))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    valid = ~(np.isnan(a) | np.isnan(b))
    if valid.sum() < 5 or np.std(a[valid]) == 0 or np.std(b[valid]) == 0:
        return float("nan")
    return float(np.corrcoef(a[valid], b[valid])[0, 1])


def score_clip(model, global_map, pose_maps, clip: Path, *, fraction: float, shift: float, ridge: float,
               offsets: tuple[float, ...]) -> dict:
    samples = load_audio(clip)
    if np.sqrt(np.mean(samples ** 2)) < SILENT_RMS:
        return {"skipped": "silent sound track"}
    track = track_video(clip)
    real = np.array([opening_of(f.rgb, track.face_boxes[f.index]) if track.found[f.index] else np.nan for f in iter_frames(clip)])
    if np.nanstd(real) < STILL_MOUTH:
        return {"skipped": f"the mouth barely moves (opening std {np.nanstd(real):.3f})"}
    frames = speaker_frames(model, clip, track=track)
    cut = frames.times[0] + fraction * (frames.times[-1] - frames.times[0])
    # The source face comes from the speaker's part only, as 'audio SRC' would make it.
    early = replace(track, face_boxes=np.where((track.times < cut)[:, None], track.face_boxes, np.nan))
    chosen = choose_source_frames(model, clip, early, 3)
    images, boxes = list(chosen.values()), [track.crop_box(i) for i in chosen]
    embedding = embed(model, images, boxes, 256)
    source = SourceFace(embedding.image, embedding.landmarks, images[0], boxes[0], clip, float(track.times[next(iter(chosen))]))
    test = frames.times >= cut
    times = frames.times[test]
    truth = real[np.searchsorted(track.times, times)]
    mouth = speaker_mouth_map(frames, until=cut, ridge=ridge, offsets=offsets)
    vector_map = speaker_audio_map(frames, until=cut)
    scores = {"frames": int(test.sum()), "seconds": round(float(times[-1] - times[0]), 2)}
    runs = {"speaker": (mouth, times), "speaker_vectors": (vector_map, times), "global": (global_map, times),
            "shifted": (mouth, times - shift)}
    for name, (audio_map, at) in runs.items():
        if isinstance(audio_map, MouthMap):
            frames_out = speaking_frames(model, audio_map, pose_maps, source, samples, at)
        else:
            frames_out = generated_frames(model, source, speech_vectors(model, audio_map, pose_maps, source, samples, at))
        generated = np.array([opening_of(rgb) for rgb in frames_out])
        scores[name] = correlation(generated, truth)
        scores[f"{name}_found"] = float(np.mean(~np.isnan(generated)))
        scores[f"{name}_opening_std"] = float(np.nanstd(generated))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--fraction", type=float, default=0.7)
    parser.add_argument("--shift", type=float, default=1.0, help="Seconds the control's sound is taken from earlier.")
    parser.add_argument("--ridge", type=float, default=MOUTH_RIDGE, help="The speaker's mouth map's ridge.")
    parser.add_argument("--offsets", default=",".join(str(o) for o in MOUTH_OFFSETS),
                        help="The speaker's mouth map's context offsets, in seconds.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model_path = args.model or default_model_path()
    model = load_model(model_path)
    fingerprint = file_fingerprint(model_path)
    global_map, _ = load_map(maps_path(model_path, "audio"), kind=AUDIO_FORMAT, model_fingerprint=fingerprint)
    pose_maps, _ = load_map(maps_path(model_path, "pose"), kind=POSE_FORMAT, model_fingerprint=fingerprint)
    clips = args.clips or sorted(p for p in (SHARED / "clips").iterdir() if p.stem in HELD_OUT) + sorted(
        p for p in (SHARED / "clips-eval").iterdir() if p.suffix in (".mp4", ".mov"))
    clips = [clip for clip in clips if probe(clip).has_audio]
    offsets = tuple(float(o) for o in args.offsets.split(","))
    results = {}
    print(f"| clip | test frames | speaker's mouth | speaker's vector map | global map | speaker's mouth, sound {args.shift:g} s earlier |")
    print("| --- | --- | --- | --- | --- | --- |")
    for clip in clips:
        scores = score_clip(model, global_map, pose_maps, clip, fraction=args.fraction, shift=args.shift, ridge=args.ridge,
                            offsets=offsets)
        results[clip.name] = scores
        if "skipped" in scores:
            print(f"| {clip.name} | skipped: {scores['skipped']} | | | | |", flush=True)
            continue
        print(f"| {clip.name} | {scores['frames']} ({scores['seconds']} s) | " + " | ".join(f"{scores[n]:.2f}" for n in RUNS) + " |",
              flush=True)
    scored = [s for s in results.values() if "skipped" not in s]
    if scored:
        means = {name: float(np.nanmean([s[name] for s in scored])) for name in RUNS}
        print(f"| mean of {len(scored)} | | " + " | ".join(f"{means[n]:.2f}" for n in RUNS) + " |")
        results["mean"] = means
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

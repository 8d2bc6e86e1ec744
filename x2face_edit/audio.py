"""Driving a face from speech (paper section 4.2); the features are ``audio_features.py``'s.

When the source is a talking video with its own sound, ``audio`` learns that speaker's
mouth (``speaker_mouth_map``): how open the mouth is (dlib's inner-lip gap) from the audio
around each frame, ridge-regularised, and how the speaker's mouth and jaw landmarks move
as it opens; with a pooled speech model (``speech.py``, ``fit-speech``: phones, loudness
and the spectrum's shape to the mouth's opening and width, for any speaker) the two are
blended (``blended_mouth``). The face is then driven as ``pose`` turns heads: its
landmarks are moved to the predicted mouth, the driving vector shifted by what moves them
so, and the warp pinned there. Any other source is driven the same way by the pooled
speech model where the model has one; else by a map from features straight to driving
vectors, fitted on many people's tracks (``fit-audio``, the paper's equation 2), which on a
speaker it never saw moves the mouth little. ``speaker_audio_map`` fits that kind of map on
one speaker (kept for comparison in ``benchmarks/audio_sync.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .audio_features import SAMPLE_RATE, context_features, load_audio
from .cache import input_fingerprint, remembered
from .errors import X2FaceError
from .faces import LandmarkDetector, crop, mouth_opening, mouth_width, to_crop_grid
from .model import X2Face
from .model.images import to_tensor
from .model.modalities import AudioMap, PoseMaps, fit_audio_map
from .outputs import atomic_output, check_output
from .source import SourceFace, frames_from_grids, generate_video, grids_moving_landmarks, write_frames
from .speech import SpeechFitOptions, SpeechModel, SpeechTrack, TalkingClip, fit_speech_model, landmark_motion
from .tracking import VideoTrack, track_video
from .video import check_video_output, iter_frames, probe

# Speech shorter than one feature window cannot drive anything.
SHORTEST_SPEECH = 0.2
# A speaker's own map reads the audio 80 ms before, at and after each frame (0.36 s in all),
# ridge-regularised: chosen on the training clips (benchmarks/README.md, audio_sync.py).
SPEAKER_OFFSETS = (-0.08, 0.0, 0.08)
SPEAKER_RIDGE = 1.0
MIN_SPEAKER_FRAMES = 25
SILENT_RMS = 1e-3
# A speaker's mouth map reads five windows 40 ms apart around each frame (0.36 s in all),
# ridge 1.0 on standardised features: chosen on the training clips (benchmarks/README.md).
MOUTH_OFFSETS = (-0.08, -0.04, 0.0, 0.04, 0.08)
MOUTH_RIDGE = 1.0
# What speech moves: dlib's jaw points 4-12 and the lips (48-67); the rest of the face stays.
MOUTH_POINTS = [*range(4, 13), *range(48, 68)]


@dataclass
class SpeakerFrames:
    """A talking video's tracked frames: their times, driving vectors and dlib landmarks,
    and the video's sound."""

    times: np.ndarray  # (N,) seconds
    vectors: torch.Tensor  # (N, 128)
    landmarks: np.ndarray  # (N, 68, 2) in each frame's crop grid coordinates
    samples: np.ndarray  # 16 kHz mono

    @property
    def shapes(self) -> np.ndarray:
        """(N, 2) each frame's ``mouth_shape``."""
        return mouth_shapes(self.landmarks)

    @property
    def openings(self) -> np.ndarray:
        """(N,) each frame's mouth opening (``faces.mouth_opening``)."""
        return self.shapes[:, 0]


def mouth_shape(landmarks: np.ndarray) -> np.ndarray:
    """(2,) a face's mouth as ``speech.MOUTH_SHAPES`` lists it: its opening and width."""
    return np.array([mouth_opening(landmarks), mouth_width(landmarks)])


def mouth_shapes(landmarks: np.ndarray) -> np.ndarray:
    """(N, 2) the ``mouth_shape`` of each of N frames' (68, 2) ``landmarks`` (NaN where a
    frame has none)."""
    return np.array([np.full(2, np.nan) if np.isnan(points).any() else mouth_shape(points) for points in landmarks]).reshape(-1, 2)


@torch.inference_mode()
def speaker_frames(model: X2Face, video: str | Path, *, face: int = 0, track: VideoTrack | None = None,
                   samples: np.ndarray | None = None, batch: int = 32) -> SpeakerFrames:
    """The driving vector of every frame of ``video`` where its face is tracked (``track``
    if already followed), and its sound (``samples`` if already decoded)."""
    samples = load_audio(video) if samples is None else samples
    track = track or track_video(video, face=face)
    device = next(model.parameters()).device
    detector = LandmarkDetector()
    times, vectors, crops, landmarks = [], [], [], []

    def flush() -> None:
        if crops:
            vectors.append(model.driving_vector(to_tensor(crops).to(device)).cpu())
            crops.clear()

    for frame in iter_frames(video):
        if track.found[frame.index]:
            box = track.crop_box(frame.index)
            crops.append(crop(frame.rgb, box, model.config.resolution))
            landmarks.append(to_crop_grid(detector(frame.rgb, track.face_boxes[frame.index]), box))
            times.append(frame.time)
            if len(crops) == batch:
                flush()
    flush()
    return SpeakerFrames(np.array(times), torch.cat(vectors), np.array(landmarks), samples)


def _speaker_part(frames: SpeakerFrames, until: float | None) -> np.ndarray:
    """Which of a speaker's frames to fit on: those before ``until`` seconds, or all."""
    chosen = frames.times < until if until is not None else np.ones(len(frames.times), bool)
    if chosen.sum() < MIN_SPEAKER_FRAMES:
        raise X2FaceError(f"too few tracked frames with sound to fit a speaker's map ({int(chosen.sum())}, "
                          f"at least {MIN_SPEAKER_FRAMES})")
    return chosen


def speaker_audio_map(frames: SpeakerFrames, *, until: float | None = None, ridge: float = SPEAKER_RIDGE,
                      offsets: tuple[float, ...] = SPEAKER_OFFSETS) -> AudioMap:
    """f_a->v fitted on one speaker: the audio around each of its frames (before ``until``
    seconds, or all) against the frame's driving vector, ridge-regularised."""
    chosen = _speaker_part(frames, until)
    features = torch.from_numpy(context_features(frames.samples, frames.times[chosen], offsets))
    return fit_audio_map(features, frames.vectors[torch.from_numpy(chosen)], ridge=ridge, offsets=offsets)


@dataclass
class MouthMap:
    """One speaker's mouth as their speech moves it: the opening predicted from the audio
    around a frame (``opening``, a one-output ``AudioMap``), stretched back to the
    speaker's own range (``stretch``: ridge shrinks predictions towards the mean), and how
    their jaw and lip landmarks move per unit of opening (``motion``, (68, 2) crop grid
    units; zero elsewhere)."""

    opening: AudioMap
    stretch: float
    motion: np.ndarray

    @torch.inference_mode()
    def __call__(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(T,) the mouth opening the sound around each time implies."""
        predicted = self.opening(torch.from_numpy(context_features(samples, times, self.opening.offsets)))[:, 0].numpy()
        mean = float(self.opening.linear.bias[0])  # the mean opening: features are centred
        return mean + self.stretch * (predicted - mean)

    def displacement(self, samples: np.ndarray, times: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(T, 68, 2) how the face's ``landmarks`` move to say ``samples`` at ``times``."""
        return (self(samples, times) - mouth_opening(landmarks))[:, None, None] * self.motion[None]


def speaker_mouth_map(frames: SpeakerFrames, *, until: float | None = None, ridge: float = MOUTH_RIDGE,
                      offsets: tuple[float, ...] = MOUTH_OFFSETS) -> MouthMap:
    """The ``MouthMap`` of one speaker, fitted on their frames (before ``until`` seconds, or all)."""
    chosen = _speaker_part(frames, until)
    openings, landmarks = frames.openings[chosen], frames.landmarks[chosen]
    features = torch.from_numpy(context_features(frames.samples, frames.times[chosen], offsets))
    opening = fit_audio_map(features, torch.from_numpy(openings[:, None]), ridge=ridge, offsets=offsets)
    with torch.inference_mode():
        fitted = opening(features)[:, 0].numpy()
    stretch = float(openings.std() / fitted.std()) if fitted.std() > 1e-9 else 1.0
    return MouthMap(opening, stretch, mouth_motion(openings[:, None], landmarks)[0])


def mouth_motion(shapes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(K, 68, 2) how a speaker's jaw and lip landmarks (``MOUTH_POINTS``) move per unit of
    each of their (N, K) mouth ``shapes``; zero elsewhere."""
    motion = np.zeros((shapes.shape[1], 68, 2), np.float32)
    motion[:, MOUTH_POINTS] = landmark_motion(shapes, landmarks)[:, MOUTH_POINTS]
    return motion


def is_silent(samples: np.ndarray) -> bool:
    """A sound track with nothing in it (some videos carry an all-zero track)."""
    return float(np.sqrt(np.mean(samples ** 2))) < SILENT_RMS


def heard_speech(samples: np.ndarray, transcript: str | None = None) -> SpeechTrack | None:
    """What ``samples`` say, their phones decoded (or ``transcript``'s aligned: then they are
    taken to be speech unless silent); None where no speech is heard: silent, or pocketsphinx
    hears no phones in them (noise and tones give none; a melody can give some)."""
    if is_silent(samples):
        return None
    track = SpeechTrack.of(samples, transcript)
    return track if transcript is not None or track.heard() else None


@dataclass
class PooledMouth:
    """The pooled ``SpeechModel`` given one face's mouth: its shapes at rest (silence; the
    opening, and the width where the model predicts it: K of them), how far each moves per
    unit of the model's z-scored shape (``spread``), and how its jaw and lip landmarks move
    per unit of each (``motion``, (K, 68, 2)). Called as a ``MouthMap`` is."""

    model: SpeechModel
    rest: np.ndarray
    spread: np.ndarray
    motion: np.ndarray
    # What the samples it is called with say, where already decoded or aligned
    # (``drive_by_audio``, which decodes them once to know whether anything is said).
    heard: SpeechTrack | None = None

    def shapes(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(T, K) the mouth shapes the speech implies at ``times`` (evenly spaced frames)."""
        if is_silent(samples):
            return np.tile(self.rest, (len(times), 1))
        fps = 1 / float(np.median(np.diff(times))) if len(times) > 1 else 25.0
        track = self.heard if self.heard is not None else SpeechTrack.of(samples)
        change = (self.model.predict(track, times, fps) - self.model.rest()) * self.model.stretch
        return self.rest + change * self.spread

    def __call__(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(T,) the mouth opening the speech implies at ``times``."""
        return self.shapes(samples, times)[:, 0]

    def displacement(self, samples: np.ndarray, times: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(T, 68, 2) how the face's ``landmarks`` move to say ``samples`` at ``times``."""
        return self.moved_to(self.shapes(samples, times), landmarks)

    def moved_to(self, shapes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(T, 68, 2) how ``landmarks`` move for their mouth to take the (T, K) ``shapes``."""
        return np.tensordot(shapes - mouth_shape(landmarks)[: len(self.rest)], self.motion, axes=1)

    def hearing(self, heard: SpeechTrack) -> PooledMouth:
        """The same mouth, told what the samples it will be called with say."""
        return replace(self, heard=heard)


@dataclass
class BlendedMouth:
    """A talking source's own ``MouthMap`` and the pooled model on its range (``PooledMouth``)
    together: each one's opening as a z-score about its mean and spread over the speaker's
    own frames (``centres``, ``spreads``), the two summed, and the sum (whose spread there is
    ``mixed_spread``) given the speaker's mean opening and spread (``mean``, ``spread``);
    the width, where the pooled model predicts it, is the pooled model's.
    They err apart (one reads this voice's spectrum, learnt from seconds of it; the other
    phones and normalised cepstra, learnt from many voices): on held-out speakers the sum
    follows the real mouth better than either (benchmarks/README.md, audio_sync.py)."""

    own: MouthMap
    pooled: PooledMouth
    centres: tuple[float, float]
    spreads: tuple[float, float]
    mixed_spread: float
    mean: float
    spread: float

    def shapes(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(T, K) the mouth shapes the speech implies at ``times``."""
        shapes = self.pooled.shapes(samples, times)
        mixed = _summed_scores((self.own(samples, times), shapes[:, 0]), self.centres, self.spreads)
        shapes[:, 0] = self.mean + self.spread * mixed / self.mixed_spread
        return shapes

    def __call__(self, samples: np.ndarray, times: np.ndarray) -> np.ndarray:
        """(T,) the mouth opening the speech implies at ``times``."""
        return self.shapes(samples, times)[:, 0]

    def displacement(self, samples: np.ndarray, times: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(T, 68, 2) how the face's ``landmarks`` move to say ``samples`` at ``times``."""
        return self.pooled.moved_to(self.shapes(samples, times), landmarks)

    def hearing(self, heard: SpeechTrack) -> BlendedMouth:
        """The same mouth, told what the samples it will be called with say."""
        return replace(self, pooled=self.pooled.hearing(heard))


def blended_mouth(speech_model: SpeechModel, frames: SpeakerFrames) -> BlendedMouth:
    """The ``BlendedMouth`` of a talking source: its own map and the pooled model, each
    measured over the speaker's ``frames`` and their sound."""
    own, pooled = speaker_mouth_map(frames), pooled_mouth(speech_model, frames)
    heard = (own(frames.samples, frames.times), pooled(frames.samples, frames.times))
    centres = (float(heard[0].mean()), float(heard[1].mean()))
    spreads = (_spread(heard[0]), _spread(heard[1]))
    openings = frames.openings
    return BlendedMouth(own, pooled, centres, spreads, _spread(_summed_scores(heard, centres, spreads)), float(openings.mean()),
                        float(openings.std()))


def _summed_scores(openings: tuple[np.ndarray, np.ndarray], centres: tuple[float, float], spreads: tuple[float, float]) -> np.ndarray:
    return sum((values - centre) / spread for values, centre, spread in zip(openings, centres, spreads))


def _spread(values: np.ndarray) -> float:
    return float(values.std()) if values.std() > 1e-9 else 1.0


Mouth = MouthMap | PooledMouth | BlendedMouth


def pooled_mouth(speech_model: SpeechModel, frames: SpeakerFrames | None, at_rest: np.ndarray | None = None) -> PooledMouth:
    """The pooled model on a face: a talking source's own range and motion (its ``frames``),
    else the mouth of the face's landmarks ``at_rest`` (its source frame's) as its rest and
    the speakers' pooled range and motion."""
    count = len(speech_model.shapes)
    if frames is None or len(frames.times) < MIN_SPEAKER_FRAMES:
        return PooledMouth(speech_model, mouth_shape(at_rest)[:count], speech_model.spread, speech_model.motion)
    shapes = frames.shapes[:, :count]
    spread = shapes.std(axis=0)
    return PooledMouth(speech_model, shapes.mean(axis=0) + speech_model.rest() * spread, spread, mouth_motion(shapes, frames.landmarks))


def source_audio_map(model: X2Face, source: SourceFace, global_map: Callable[[], AudioMap], *, face: int = 0,
                     speech_model: SpeechModel | None = None, transcript: str | None = None) -> tuple[Mouth | AudioMap, str]:
    """The map for ``source`` and a line saying which it is: when the source is a video with
    sound, the speaker's own mouth, blended with the pooled ``speech_model`` where given
    (``blended_mouth``: on held-out speakers the blend follows their speech better than
    either alone, benchmarks/README.md, audio_sync.py); else the pooled ``speech_model``
    where given (phones, loudness, spectrum: any speaker), else ``global_map()`` (a map
    fitted on other people's driving vectors moves an unseen speaker's mouth little). A
    ``transcript`` (the words the speech says, which ``drive_by_audio`` aligns to it) is
    read by the pooled model, which it then needs."""
    if transcript is not None and speech_model is None:
        raise X2FaceError("a transcript is read by the pooled speech model: none was given or found beside the model (fit-speech makes one)")
    reading = ", reading the transcript's phones aligned to the speech" if transcript is not None else ""
    samples = load_audio(source.video) if source.video is not None and probe(source.video).has_audio else None
    if samples is not None and not is_silent(samples):
        frames = speaker_frames(model, source.video, face=face, track=source.track, samples=samples)
        learnt = f"audio map: the mouth of {source.video.name}, learnt from its own {len(frames.times)} frames and sound"
        if speech_model is None:
            return speaker_mouth_map(frames), learnt
        return blended_mouth(speech_model, frames), f"{learnt}, blended with the pooled speech model{reading}"
    if speech_model is not None:
        mouth = pooled_mouth(speech_model, None, source.frame_landmarks())
        return mouth, f"audio map: the pooled speech model (phones, loudness, spectrum){reading}, with the speakers' pooled range"
    why = "the source is not a video" if source.video is None else f"{source.video.name} has no sound"
    return global_map(), f"audio map: the global one ({why}; fitted on other people, it moves an unseen speaker's mouth little)"


@torch.inference_mode()
def speaking_frames(model: X2Face, mouth: Mouth, pose_maps: PoseMaps, source: SourceFace, samples: np.ndarray,
                    times: np.ndarray, *, size: int = 256, batch: int = 64) -> Iterator[np.ndarray]:
    """The source face saying ``samples`` at ``times``, ``size`` pixels square, frame by
    frame: its jaw and lips moved to the mouth the sound implies, the rest as in the source
    frame."""
    landmarks, vector = source.frame_landmarks(), source.driving_vector(model)
    displacement = mouth.displacement(samples, times, landmarks)
    for first in range(0, len(times), batch):
        moved = landmarks[None] + displacement[first:first + batch]
        grids = grids_moving_landmarks(model, pose_maps, source, vector, landmarks, torch.from_numpy(moved.astype(np.float32)))
        yield from frames_from_grids(source, grids, size)


@torch.inference_mode()
def speech_vectors(model: X2Face, audio_map: AudioMap, pose_maps: PoseMaps, source: SourceFace, samples: np.ndarray,
                   times: np.ndarray) -> torch.Tensor:
    """The (T, 128) driving vectors of the source face saying ``samples`` at ``times``:
    equation (2) with the audio's implied pose change taken out, so the sound moves the
    mouth and the head keeps the source's pose."""
    features = torch.from_numpy(context_features(samples, times, audio_map.offsets))
    if source.video is not None and probe(source.video).has_audio:
        source_features = torch.from_numpy(context_features(load_audio(source.video), np.array([source.time]), audio_map.offsets))
    else:
        source_features = audio_map.mean[None]  # a silent source: the average sound
    change = audio_map(features) - audio_map(source_features)
    change = change - pose_maps.vector_change(pose_maps.pose_change(change))
    return source.driving_vector(model) + change


@dataclass(frozen=True)
class SpeechOptions:
    """Frames at ``fps``, ``size`` pixels square; ``force`` overwrites an existing output;
    ``transcript``, the words the speech says (it is then taken to be speech)."""

    fps: float = 25.0
    size: int = 256
    force: bool = False
    transcript: str | None = None


@dataclass(frozen=True)
class SpokenVideo:
    """What ``drive_by_audio`` wrote: its number of ``frames``, and whether speech was
    heard (where none was, the mouth stayed as the map has it in silence)."""

    frames: int
    speech_heard: bool


def drive_by_audio(model: X2Face, audio_map: Mouth | AudioMap, pose_maps: PoseMaps, source: SourceFace,
                   speech: str | Path, out: str | Path, options: SpeechOptions = SpeechOptions()) -> SpokenVideo:
    """Write the source face speaking ``speech`` (section 4.2), the speech as its sound. A
    ``Mouth`` moves the mouth by landmarks (``speaking_frames``); an ``AudioMap`` gives
    driving vectors (``speech_vectors``). Where no speech is heard (silence, noise, a tone)
    the face is driven by silence: the mouth stays closed."""
    fps, size, force = options.fps, options.size, options.force
    check_video_output(out, force=force)
    samples = load_audio(speech)
    if len(samples) < SHORTEST_SPEECH * SAMPLE_RATE:
        raise X2FaceError(f"the speech in {Path(speech).name} lasts {len(samples) / SAMPLE_RATE:.2f} s: "
                          f"at least {SHORTEST_SPEECH} s are needed (one feature window)")
    heard = heard_speech(samples, options.transcript)
    driving = samples if heard is not None else np.zeros_like(samples)
    if isinstance(audio_map, PooledMouth | BlendedMouth) and heard is not None:
        audio_map = audio_map.hearing(heard)
    frames = max(1, math.ceil(len(samples) / SAMPLE_RATE * fps))
    times = np.arange(frames) / fps
    if isinstance(audio_map, Mouth):
        write_frames(speaking_frames(model, audio_map, pose_maps, source, driving, times, size=size), out, fps=fps,
                     size=size, audio_from=speech, force=force)
    else:
        vectors = speech_vectors(model, audio_map, pose_maps, source, driving, times)
        generate_video(model, source, vectors, out, fps=fps, size=size, audio_from=speech, force=force)
    return SpokenVideo(frames, heard is not None)


# A talking clip's mouth must vary at least this much (opening std) to teach the mouth.
STILL_MOUTH = 0.02
TALKING_CODE = "1"  # bump when what talking_clip measures changes: cached clips are then remade


def talking_clip(video: str | Path, *, face: int = 0, samples: np.ndarray | None = None) -> TalkingClip:
    """``video``'s speech (``speech.SpeechTrack``: decoding it takes a fraction of a second;
    ``samples``, its sound where already loaded) and its real mouth in every frame: the
    opening and landmarks dlib finds on the tracked face (kept in the cache)."""
    video = Path(video)
    samples = load_audio(video) if samples is None else samples

    def measure() -> dict[str, np.ndarray]:
        track = track_video(video, face=face)
        detector = LandmarkDetector()
        landmarks = np.full((track.info.frame_count, 68, 2), np.nan)
        for frame in iter_frames(video):
            if frame.index < len(landmarks) and track.found[frame.index]:
                box = track.crop_box(frame.index)
                landmarks[frame.index] = to_crop_grid(detector(frame.rgb, track.face_boxes[frame.index]), box)
        return {"times": track.times, "landmarks": landmarks, "fps": np.array(float(track.info.fps))}

    stored = remembered("talking", (input_fingerprint(video), str(face), TALKING_CODE), measure)
    landmarks = stored["landmarks"]
    shapes = mouth_shapes(landmarks)
    return TalkingClip(video.stem, SpeechTrack.of(samples), stored["times"], shapes[:, 0], landmarks, float(stored["fps"]), shapes[:, 1])


def fit_speech(videos: list[Path], out: str | Path, options: SpeechFitOptions = SpeechFitOptions(), *, force: bool = False,
               on_clip: Callable[[Path, str | None], None] | None = None) -> SpeechModel:
    """Fit the pooled ``SpeechModel`` on the talking ``videos`` (those with sound whose
    mouth moves; the others are reported to ``on_clip`` with why) and write it to ``out``."""
    check_output(out, force=force)
    clips = []
    for video in videos:
        why = None
        samples = load_audio(video) if probe(video).has_audio else None
        if samples is None or is_silent(samples):
            why = "no sound"
        else:
            try:
                clip = talking_clip(video, samples=samples)
            except X2FaceError as error:  # no face in it: one clip less, not the end of the fit
                why = str(error)
            else:
                if np.isnan(clip.openings).all() or np.nanstd(clip.openings) < STILL_MOUTH:
                    why = "the mouth barely moves"
                else:
                    clips.append(clip)
        if on_clip:
            on_clip(video, why)
    model = fit_speech_model(clips, options, motion_points=MOUTH_POINTS)
    with atomic_output(out, force=force) as partial:
        model.save(partial)
    return model

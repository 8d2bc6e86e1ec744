"""Speech features and maps for driving a face from audio (paper section 4.2).

A map from features to driving vectors is fitted either globally on many people's tracks
(``fit-audio``) or, when the source is a talking video with its own sound, on that
speaker alone (``speaker_audio_map``: each frame's driving vector against the audio
around it, ridge-regularised), which is what ``audio`` uses by default.

The paper used a lip-sync network's 256-D features. Here each video frame at time t gets
a log-mel summary of the 0.2 s of audio centred on t: the audio is resampled to 16 kHz
mono, a 26-band log-mel spectrogram is taken with 25 ms windows every 10 ms, and the 20
spectra inside the 0.2 s window are averaged in 5 consecutive groups of 4 (40 ms each),
giving 26 x 5 = 130 numbers per frame. Silence outside the recording counts as silence.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from .errors import X2FaceError
from .extract import to_tensor
from .faces import crop
from .model import X2Face
from .model.modalities import AudioMap, PoseMaps, fit_audio_map
from .outputs import check_video_output
from .reenact import SourceFace, generate_video
from .tracking import VideoTrack, track_video
from .video import iter_frames, probe

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
MEL_BANDS = 26
CONTEXT_HOPS = 20  # 0.2 s
GROUPS = 5
FEATURE_SIZE = MEL_BANDS * GROUPS
LOG_FLOOR = 1e-6
# Speech shorter than one feature window cannot drive anything.
SHORTEST_SPEECH = 0.2
# A speaker's own map reads the audio 80 ms before, at and after each frame (0.36 s in all),
# ridge-regularised: chosen on the training clips (benchmarks/README.md, audio_sync.py).
SPEAKER_OFFSETS = (-0.08, 0.0, 0.08)
SPEAKER_RIDGE = 1.0
MIN_SPEAKER_FRAMES = 25
SILENT_RMS = 1e-3


def load_audio(path: str | Path) -> np.ndarray:
    """The first audio stream of any file PyAV reads, as 16 kHz mono float32 in [-1, 1]."""
    path = Path(path)
    if not path.is_file():
        raise X2FaceError(f"no such file: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise X2FaceError(f"{path} has no sound track")
            resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
            chunks = [
                resampled.to_ndarray().reshape(-1)
                for frame in container.decode(container.streams.audio[0])
                for resampled in resampler.resample(frame)
            ]
            chunks += [resampled.to_ndarray().reshape(-1) for resampled in resampler.resample(None)]
    except av.FFmpegError as exc:
        raise X2FaceError(f"could not decode the sound of {path}: {exc.__class__.__name__}") from None
    if not chunks:
        raise X2FaceError(f"{path} has an empty sound track")
    return np.concatenate(chunks).astype(np.float32)


def mel_filterbank(bands: int = MEL_BANDS, fft_size: int = 512, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(bands, fft_size // 2 + 1) triangular filters evenly spaced on the mel scale."""
    def to_mel(hz):
        return 2595 * np.log10(1 + hz / 700)

    def to_hz(mel):
        return 700 * (10 ** (mel / 2595) - 1)

    edges = to_hz(np.linspace(to_mel(20), to_mel(rate / 2), bands + 2))
    bins = np.fft.rfftfreq(fft_size, 1 / rate)
    rising = (bins[None, :] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins[None, :]) / (edges[2:, None] - edges[1:-1, None])
    return np.clip(np.minimum(rising, falling), 0, None)


def log_mel(samples: np.ndarray) -> np.ndarray:
    """(hops, MEL_BANDS) log-mel spectrogram; spectrum h covers samples h*HOP to h*HOP+WINDOW."""
    padded = np.concatenate([samples, np.zeros(WINDOW, np.float32)])
    count = max(1, (len(samples) + HOP - 1) // HOP)
    frames = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][:count] * np.hanning(WINDOW)
    power = np.abs(np.fft.rfft(frames, n=512)) ** 2
    return np.log(power @ mel_filterbank().T + LOG_FLOOR).astype(np.float32)


def frame_features(samples: np.ndarray, times: np.ndarray) -> np.ndarray:
    """(len(times), FEATURE_SIZE) features of the 0.2 s centred on each time in seconds."""
    spectrogram = log_mel(samples)
    silence = np.log(LOG_FLOOR)
    padded = np.concatenate([np.full((CONTEXT_HOPS, MEL_BANDS), silence, np.float32), spectrogram,
                             np.full((CONTEXT_HOPS, MEL_BANDS), silence, np.float32)])
    features = np.empty((len(times), FEATURE_SIZE), np.float32)
    for row, time in enumerate(times):
        # The spectrum centred at time t starts at t - WINDOW/2; the context starts 0.1 s before.
        first = int(round((time - 0.1) * SAMPLE_RATE / HOP - WINDOW / 2 / HOP)) + CONTEXT_HOPS
        first = int(np.clip(first, 0, len(padded) - CONTEXT_HOPS))
        window = padded[first : first + CONTEXT_HOPS]
        features[row] = window.reshape(GROUPS, -1, MEL_BANDS).mean(axis=1).reshape(-1)
    return features


def context_features(samples: np.ndarray, times: np.ndarray, offsets: tuple[float, ...] = (0.0,)) -> np.ndarray:
    """``frame_features`` at each time shifted by each offset, side by side: (T, D x offsets)."""
    return np.concatenate([frame_features(samples, np.asarray(times) + offset) for offset in offsets], axis=1)


@dataclass
class SpeakerFrames:
    """A talking video's tracked frames: their times, driving vectors and the video's sound."""

    times: np.ndarray  # (N,) seconds
    vectors: torch.Tensor  # (N, 128)
    samples: np.ndarray  # 16 kHz mono


@torch.inference_mode()
def speaker_frames(model: X2Face, video: str | Path, *, face: int = 0, track: VideoTrack | None = None,
                   samples: np.ndarray | None = None, batch: int = 32) -> SpeakerFrames:
    """The driving vector of every frame of ``video`` where its face is tracked (``track``
    if already followed), and its sound (``samples`` if already decoded)."""
    samples = load_audio(video) if samples is None else samples
    track = track or track_video(video, face=face)
    device = next(model.parameters()).device
    times, vectors, crops = [], [], []

    def flush() -> None:
        if crops:
            vectors.append(model.driving_vector(to_tensor(crops).to(device)).cpu())
            crops.clear()

    for frame in iter_frames(video):
        if track.found[frame.index]:
            crops.append(crop(frame.rgb, track.crop_box(frame.index), model.config.resolution))
            times.append(frame.time)
            if len(crops) == batch:
                flush()
    flush()
    return SpeakerFrames(np.array(times), torch.cat(vectors), samples)


def speaker_audio_map(frames: SpeakerFrames, *, until: float | None = None, ridge: float = SPEAKER_RIDGE,
                      offsets: tuple[float, ...] = SPEAKER_OFFSETS) -> AudioMap:
    """f_a->v fitted on one speaker: the audio around each of its frames (before ``until``
    seconds, or all) against the frame's driving vector, ridge-regularised."""
    chosen = frames.times < until if until is not None else np.ones(len(frames.times), bool)
    if chosen.sum() < MIN_SPEAKER_FRAMES:
        raise X2FaceError(f"too few tracked frames with sound to fit a speaker's audio map ({int(chosen.sum())}, "
                          f"at least {MIN_SPEAKER_FRAMES})")
    features = torch.from_numpy(context_features(frames.samples, frames.times[chosen], offsets))
    return fit_audio_map(features, frames.vectors[torch.from_numpy(chosen)], ridge=ridge, offsets=offsets)


def is_silent(samples: np.ndarray) -> bool:
    """A sound track with nothing in it (some videos carry an all-zero track)."""
    return float(np.sqrt(np.mean(samples ** 2))) < SILENT_RMS


def source_audio_map(model: X2Face, source: SourceFace, global_map: Callable[[], AudioMap], *,
                     face: int = 0) -> tuple[AudioMap, str]:
    """The audio map for ``source`` and a line saying which it is: the speaker's own map
    when the source is a video with sound (a map fitted on other people does not move an
    unseen speaker's mouth: it explains none of their driving vectors' variance), else
    ``global_map()``."""
    samples = load_audio(source.video) if source.video is not None and probe(source.video).has_audio else None
    if samples is not None and not is_silent(samples):
        frames = speaker_frames(model, source.video, face=face, track=source.track, samples=samples)
        return speaker_audio_map(frames), f"audio map: fitted on {source.video.name}'s own {len(frames.times)} frames and sound"
    why = "the source is not a video" if source.video is None else f"{source.video.name} has no sound"
    return global_map(), f"audio map: the global one ({why}; fitted on other people, it moves an unseen speaker's mouth little)"


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


def drive_by_audio(model: X2Face, audio_map: AudioMap, pose_maps: PoseMaps, source: SourceFace, speech: str | Path,
                   out: str | Path, *, fps: float = 25, size: int = 256, force: bool = False) -> int:
    """Write the source face speaking ``speech`` (section 4.2), the speech as its sound;
    return the number of frames."""
    check_video_output(out, force=force)
    samples = load_audio(speech)
    if len(samples) < SHORTEST_SPEECH * SAMPLE_RATE:
        raise X2FaceError(f"the speech in {Path(speech).name} lasts {len(samples) / SAMPLE_RATE:.2f} s: "
                          f"at least {SHORTEST_SPEECH} s are needed (one feature window)")
    frames = max(1, math.ceil(len(samples) / SAMPLE_RATE * fps))
    vectors = speech_vectors(model, audio_map, pose_maps, source, samples, np.arange(frames) / fps)
    generate_video(model, source, vectors, out, fps=fps, size=size, audio_from=speech, force=force)
    return frames

"""Audio features for driving a face from speech (paper section 4.2).

The paper used a lip-sync network's 256-D features. Here each video frame at time t gets
a log-mel summary of the 0.2 s of audio centred on t: the audio is resampled to 16 kHz
mono, a 26-band log-mel spectrogram is taken with 25 ms windows every 10 ms, and the 20
spectra inside the 0.2 s window are averaged in 5 consecutive groups of 4 (40 ms each),
giving 26 x 5 = 130 numbers per frame. Silence outside the recording counts as silence.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from .errors import X2FaceError

SAMPLE_RATE = 16000
WINDOW = 400  # 25 ms
HOP = 160  # 10 ms
MEL_BANDS = 26
CONTEXT_HOPS = 20  # 0.2 s
GROUPS = 5
FEATURE_SIZE = MEL_BANDS * GROUPS
LOG_FLOOR = 1e-6
SPECTRA_BLOCK = 3000  # 30 s of spectra at a time

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
    windows = np.lib.stride_tricks.sliding_window_view(padded, WINDOW)[::HOP][:count]
    taper, filters = np.hanning(WINDOW), mel_filterbank().T
    # In blocks: the spectra of ten minutes at once would hold half a gigabyte.
    return np.concatenate([np.log(np.abs(np.fft.rfft(windows[first:first + SPECTRA_BLOCK] * taper, n=512)) ** 2 @ filters + LOG_FLOOR)
                           for first in range(0, count, SPECTRA_BLOCK)]).astype(np.float32)


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

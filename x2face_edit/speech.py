"""Speech as mouth shapes for any speaker: phonetic features and one model pooled over many.

A map from a voice's raw spectrum to the mouth learns the voice's timbre. What does not
depend on who speaks is what is said and how loudly: pocketsphinx (BSD; its US-English
acoustic model and phone language model ship in its wheel) decodes the speech into phones
at 10 ms resolution, each phone is one of a few mouth shapes (visemes: closed lips p b m,
lip on teeth f v, rounded uw ow w, open aa ae ah, spread iy ih eh, other sounds, silence),
and the loudness envelope (2-7 Hz, the rate of syllables) and voice activity add how
strongly. The spectrum's shape (mel cepstra) is kept too, but measured from the
recording's own pauses and scaled by its spread, so that what stays is how it changes as
the mouth shapes the sounds (formants move with the jaw and lips, in any language the phone
decoder misreads), not the voice's own colour, level or microphone. Each video frame reads
them at a few offsets around it (about +-200 ms of context).

``SpeechModel`` is a ridge regression from those features to the mouth's opening and width
(``MOUTH_SHAPES``), each z-scored per clip, fitted on the talking clips of many people with
one audio-to-mouth lag chosen on them; a face is given back its own range
(``audio.PooledMouth``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .audio_features import SAMPLE_RATE, log_mel
from .errors import X2FaceError
from .model.modalities import ridge_least_squares

SPEECH_FORMAT = "x2face-edit speech model"
VISEMES = ("closed", "lip_teeth", "rounded", "open", "spread", "other", "silence")
_PHONES = {
    "closed": ("P", "B", "M"),
    "lip_teeth": ("F", "V"),
    "rounded": ("UW", "OW", "W", "UH", "OY", "ER", "R"),
    "open": ("AA", "AE", "AH", "AO", "AW", "AY"),
    "spread": ("IY", "IH", "EH", "EY", "Y"),
    "silence": ("SIL", "+NSN+", "+SPN+", "+BREATH+", "+COUGH+", "+SMACK+", "+UH+", "+UM+", "+NOISE+"),
}
PHONE_VISEME = {phone: VISEMES.index(viseme) for viseme, phones in _PHONES.items() for phone in phones}
# The phones of pocketsphinx's US-English model (CMUdict's 39), and one for all that is not speech.
PHONES = ("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH", "IY", "JH", "K",
          "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH", "SIL")
NOT_SPEECH = PHONES.index("SIL")
OTHER = VISEMES.index("other")
SILENCE = VISEMES.index("silence")
# Where each frame reads the features, in seconds around it.
CONTEXT = (-0.2, -0.12, -0.06, 0.0, 0.06, 0.12, 0.2)
# The parts of the features (a model may use some of them: the benchmark's controls).
PARTS = ("phones", "visemes", "envelope", "activity", "cepstra")
CEPSTRA = 13  # mel cepstra kept: the spectrum's shape, not the voice's pitch harmonics
REFERENCE_PAUSE = 0.2  # seconds of pauses that give a recording's silence
HOP = 0.01  # pocketsphinx's frame: 10 ms
# What the pooled model predicts of the mouth, in this order (faces.mouth_opening, faces.mouth_width).
MOUTH_SHAPES = ("opening", "width")
DITHER = 1e-4  # of full scale
# Sound with under EMPTY_BAND of its power above NARROW_BAND Hz is band-limited (a telephone's
# band ends at 3.4-4 kHz); BAND_FILL: the noise put there, against the sound's RMS.
NARROW_BAND, EMPTY_BAND, BAND_FILL = 4200.0, 1e-4, 0.02
DECODED_PIECE, CUT_SEARCH = 30.0, 2.0  # seconds
VOWELS = frozenset(("AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"))
VOWEL_SHARE = 2.0  # a vowel's time against a consonant's within an aligned word
# How much the phone decoder heeds its US-English phone language model against the sound:
# little, for speakers of any language (chosen by the pooled model's cross-validation on the
# training clips, benchmarks/README.md, "How much the phone decoder heeds its language model").
PHONE_LANGUAGE_WEIGHT = 0.5
# Speech models fitted before the weight was stored with them heard their phones at this one.
FORMER_PHONE_LANGUAGE_WEIGHT = 2.0
# Less speech than this is not speech: pocketsphinx hears a phone or two in a pure tone.
HEARD_SPEECH = 0.1
ENVELOPE_BAND = (2.0, 7.0)  # Hz: syllables


def _pocketsphinx(*, phones: bool):
    """A fresh pocketsphinx decoder of its US-English model (0.1 s to make): of ``phones``,
    else a word aligner with its pronouncing dictionary. Fresh, because one reused carries
    its state from one recording into the next (seen after a failed alignment), and results
    must not depend on what was decoded before."""
    try:
        from pocketsphinx import Decoder, get_model_path
    except ImportError:
        raise X2FaceError("driving by speech needs pocketsphinx: pip install pocketsphinx==5.1.1") from None
    folder = Path(get_model_path()) / "en-us"
    if phones:
        return Decoder(hmm=str(folder / "en-us"), allphone=str(folder / "en-us-phone.lm.bin"), lm=None,
                       lw=PHONE_LANGUAGE_WEIGHT, beam=1e-20, pbeam=1e-20, loglevel="FATAL")
    return Decoder(hmm=str(folder / "en-us"), dict=str(folder / "cmudict-en-us.dict"), lm=None, loglevel="FATAL")


def _pcm(samples: np.ndarray) -> bytes:
    """16-bit samples for pocketsphinx, its empty band filled (``band_filled``) and dithered:
    on digital silence (exact or near zeros, as synthesised speech and edited tracks have
    between words) it hears phones or aligns nothing. A fixed noise 80 dB down keeps results
    the same run to run."""
    return (np.clip(_dithered(band_filled(samples)), -1, 1) * 32767).astype(np.int16).tobytes()


def _dithered(samples: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``samples`` with the fixed noise ``DITHER`` down, drawn in ``dtype`` (float32 keeps the
    copy of a long recording small where the spectra are taken)."""
    return samples + DITHER * np.random.default_rng(0).standard_normal(len(samples), dtype=dtype)


def band_filled(samples: np.ndarray) -> np.ndarray:
    """``samples`` (16 kHz) with the band above ``NARROW_BAND`` Hz filled by a faint noise
    (``BAND_FILL`` of the sound's RMS) where the sound has almost nothing there (telephone
    or 8 kHz recordings, resampled): pocketsphinx's model listens up to 6.8 kHz, and an
    empty band reads as silence there, so that band-limited speech aligned its words up to
    a second off. Sound with that band is returned as it is."""
    power = np.abs(np.fft.rfft(samples)) ** 2
    frequencies = np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)
    total = float(power.sum())
    if total == 0 or float(power[frequencies > NARROW_BAND].sum()) >= EMPTY_BAND * total:
        return samples
    spectrum = np.fft.rfft(np.random.default_rng(1).standard_normal(len(samples)))
    spectrum[frequencies <= NARROW_BAND] = 0
    noise = np.fft.irfft(spectrum, n=len(samples))
    level = BAND_FILL * float(np.sqrt(np.mean(samples ** 2))) / max(float(noise.std()), 1e-12)
    return (samples + level * noise).astype(samples.dtype)


def phone_segments(samples: np.ndarray) -> list[tuple[str, float, float]]:
    """The phones pocketsphinx hears in 16 kHz mono ``samples``: (phone, start, end) in
    seconds. Long speech is decoded in pieces of about ``DECODED_PIECE`` seconds cut at
    its quietest moments, so memory does not grow with its length."""
    decoder = _pocketsphinx(phones=True)
    segments = []
    for first, last in _pieces(samples):
        decoder.start_utt()
        decoder.process_raw(_pcm(samples[first:last]), full_utt=True)
        decoder.end_utt()
        offset = first / SAMPLE_RATE
        segments += [(seg.word, offset + seg.start_frame * HOP, offset + (seg.end_frame + 1) * HOP) for seg in decoder.seg()]
    return segments


def _pieces(samples: np.ndarray) -> list[tuple[int, int]]:
    """[first, last) sample ranges covering ``samples``, each about ``DECODED_PIECE`` s,
    cut at the quietest 10 ms within ``CUT_SEARCH`` s of each nominal cut."""
    hop, piece, search = int(SAMPLE_RATE * HOP), int(SAMPLE_RATE * DECODED_PIECE), int(SAMPLE_RATE * CUT_SEARCH)
    cuts = [0]
    while len(samples) - cuts[-1] > piece + search:
        around = samples[cuts[-1] + piece - search:cuts[-1] + piece + search]
        energy = (around[: len(around) // hop * hop].reshape(-1, hop) ** 2).sum(axis=1)
        cuts.append(cuts[-1] + piece - search + int(np.argmin(energy)) * hop)
    return list(zip(cuts, [*cuts[1:], len(samples)]))


def transcript_words(transcript: str) -> list[str]:
    """The words of ``transcript`` as the pronouncing dictionary spells them (lower case, no
    punctuation but apostrophes inside words)."""
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)*", transcript.lower())


def aligned_segments(samples: np.ndarray, transcript: str) -> list[tuple[str, float, float]]:
    """The phones of ``transcript`` where pocketsphinx aligns its words in 16 kHz mono
    ``samples``: (phone, start, end) in seconds, silence between words included. Each word
    is found where it is said (pocketsphinx's word alignment); its phones, the dictionary's,
    share its time, a vowel twice a consonant (pocketsphinx's own phone alignment fails on
    many recordings). Raises ``X2FaceError`` for words the dictionary lacks, or speech the
    words cannot be aligned to."""
    aligner = _pocketsphinx(phones=False)
    words = transcript_words(transcript)
    if not words:
        raise X2FaceError("the transcript has no words")
    unknown = sorted({word for word in words if aligner.lookup_word(word) is None})
    if unknown:
        raise X2FaceError(f"not in the pronouncing dictionary: {', '.join(unknown)} (spell numbers and names as they sound)")
    aligner.set_align_text(" ".join(words))
    aligner.start_utt()
    aligner.process_raw(_pcm(samples), full_utt=True)
    aligner.end_utt()
    if aligner.hyp() is None:
        raise X2FaceError(f"the transcript ({len(words)} words) could not be aligned to the speech: it must hold every word said, in order")
    segments = []
    for said in aligner.seg():
        start, end = said.start_frame * HOP, (said.end_frame + 1) * HOP
        pronounced = aligner.lookup_word(said.word)
        if pronounced is None:  # <s>, </s>, <sil>, a noise
            segments.append(("SIL", start, end))
            continue
        phones = pronounced.split()
        weights = np.array([VOWEL_SHARE if phone in VOWELS else 1.0 for phone in phones])
        edges = start + (end - start) * np.concatenate([[0.0], np.cumsum(weights)]) / weights.sum()
        segments += list(zip(phones, edges[:-1].tolist(), edges[1:].tolist()))
    return segments


def _hops(samples: np.ndarray) -> int:
    return max(1, int(np.ceil(len(samples) / SAMPLE_RATE / HOP)))


def phone_track(segments: list[tuple[str, float, float]], hops: int) -> np.ndarray:
    """(hops,) the phone heard in each 10 ms (``PHONES``; not speech where none is)."""
    track = np.full(hops, NOT_SPEECH, np.int64)
    for phone, start, end in segments:
        track[int(round(start / HOP)):int(round(end / HOP))] = PHONES.index(phone) if phone in PHONES else NOT_SPEECH
    return track


def viseme_track(segments: list[tuple[str, float, float]], hops: int) -> np.ndarray:
    """(hops,) the viseme heard in each 10 ms (silence where no phone is)."""
    track = np.full(hops, SILENCE, np.int64)
    for phone, start, end in segments:
        track[int(round(start / HOP)):int(round(end / HOP))] = PHONE_VISEME.get(phone, OTHER)
    return track


def loudness_envelope(samples: np.ndarray, hops: int) -> np.ndarray:
    """(hops,) the log loudness in 10 ms steps, band-passed to syllable rates and scaled to
    unit spread (so that a quiet and a loud recording move the mouth alike)."""
    hop = int(SAMPLE_RATE * HOP)
    padded = np.pad(samples, (0, hops * hop - len(samples))) if len(samples) < hops * hop else samples[: hops * hop]
    loudness = np.log(np.sqrt((padded.reshape(hops, hop) ** 2).mean(axis=1)) + 1e-4)
    spectrum = np.fft.rfft(loudness - loudness.mean())
    frequencies = np.fft.rfftfreq(hops, HOP)
    spectrum[(frequencies < ENVELOPE_BAND[0]) | (frequencies > ENVELOPE_BAND[1])] = 0
    band = np.fft.irfft(spectrum, n=hops)
    return band / (band.std() + 1e-6)


def normalised_cepstra(samples: np.ndarray, pauses: np.ndarray) -> np.ndarray:
    """(hops, CEPSTRA) the spectrum's shape every 10 ms (mel cepstra of ``log_mel``, the
    samples dithered as pocketsphinx hears them), each coefficient measured from its mean
    in the recording's own ``pauses`` (hops where no speech is heard; the whole recording's
    mean where they last under ``REFERENCE_PAUSE`` s), so a pause reads as zero, silence,
    whatever the room's noise, and scaled to unit spread over the recording."""
    spectra = log_mel(_dithered(samples, np.float32))[: len(pauses)]
    spectra = np.pad(spectra, ((0, len(pauses) - len(spectra)), (0, 0)), mode="edge")
    bands = spectra.shape[1]
    cosines = np.cos(np.pi * np.arange(CEPSTRA)[:, None] * (2 * np.arange(bands)[None, :] + 1) / (2 * bands))
    coefficients = spectra.astype(np.float64) @ cosines.T
    quiet = coefficients[pauses] if pauses.sum() * HOP >= REFERENCE_PAUSE else coefficients
    spread = coefficients.std(axis=0)
    return ((coefficients - quiet.mean(axis=0)) / np.where(spread > 1e-9, spread, 1.0)).astype(np.float32)


@dataclass(frozen=True)
class SpeechTrack:
    """What a recording says every 10 ms: its phone, viseme, loudness envelope and
    normalised cepstra."""

    visemes: np.ndarray  # (hops,) int
    envelope: np.ndarray  # (hops,)
    phones: np.ndarray | None = None  # (hops,) int; None: not known (silence where visemes say so)
    cepstra: np.ndarray | None = None  # (hops, CEPSTRA); None: not known (all zero)

    @classmethod
    def of(cls, samples: np.ndarray, transcript: str | None = None) -> SpeechTrack:
        """The track of ``samples``: its phones decoded, or ``transcript``'s aligned to it."""
        hops = _hops(samples)
        segments = phone_segments(samples) if transcript is None else aligned_segments(samples, transcript)
        visemes = viseme_track(segments, hops)
        return cls(visemes, loudness_envelope(samples, hops), phone_track(segments, hops), normalised_cepstra(samples, visemes == SILENCE))

    def heard(self) -> bool:
        """Whether any speech is heard (at least ``HEARD_SPEECH`` seconds of speech phones)."""
        return float((self.visemes != SILENCE).sum()) * HOP >= HEARD_SPEECH

    def features(self, times: np.ndarray, parts: tuple[str, ...] = PARTS, context: tuple[float, ...] = CONTEXT) -> np.ndarray:
        """(T, F) what is heard around each time (seconds): at each offset of ``context``,
        the phone and viseme (one-hot), the envelope, voice activity and the cepstra, as
        ``parts`` chooses (zero beyond the recording)."""
        columns = []
        for offset in context:
            at = np.round((np.asarray(times) + offset) / HOP).astype(int)
            inside = (at >= 0) & (at < len(self.visemes))
            clipped = np.clip(at, 0, len(self.visemes) - 1)
            visemes = np.where(inside, self.visemes[clipped], SILENCE)
            if "phones" in parts:
                known = self.phones if self.phones is not None else np.full(len(self.visemes), NOT_SPEECH)
                phones = np.where(inside, known[clipped], NOT_SPEECH)
                columns.append(np.eye(len(PHONES))[phones][:, :NOT_SPEECH])  # not speech: all zero
            if "visemes" in parts:
                columns.append(np.eye(len(VISEMES))[visemes][:, :SILENCE])  # silence: all zero
            if "envelope" in parts:
                columns.append(np.where(inside, self.envelope[clipped], 0)[:, None])
            if "activity" in parts:
                columns.append((visemes != SILENCE).astype(np.float64)[:, None])
            if "cepstra" in parts:
                known = self.cepstra if self.cepstra is not None else np.zeros((len(self.visemes), CEPSTRA), np.float32)
                columns.append(np.where(inside[:, None], known[clipped], 0))
        return np.concatenate(columns, axis=1).astype(np.float32)


def smoothed(values: np.ndarray, sigma_frames: float) -> np.ndarray:
    """``values`` blurred over time by a Gaussian of ``sigma_frames`` frames (none for 0)."""
    if sigma_frames <= 0 or len(values) < 2:
        return values
    radius = max(1, int(3 * sigma_frames))
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma_frames ** 2))
    padded = np.pad(values, radius, mode="edge")
    return np.convolve(padded, taps / taps.sum(), mode="valid")


@dataclass
class SpeechModel:
    """The pooled model: ``weights`` (F, K) and ``bias`` (K,) from ``SpeechTrack.features``
    (``parts``) read ``lag`` seconds before each frame to the first K of ``MOUTH_SHAPES``
    (the opening, and the width where it was fitted with widths), each z-scored, smoothed
    over ``smoothing`` seconds; ``stretch`` (K,) undoes the ridge's shrinking of its
    predictions towards the mean (one over their spread on the training clips); ``spread``
    (K,), the typical standard deviation of a talking mouth's opening and width (over the
    eye distance), and ``motion`` (K, 68, 2), how the jaw and lip landmarks move per unit of
    each (crop-grid units), pooled over the speakers, for faces that never spoke on camera;
    ``meta``, how it was made."""

    weights: np.ndarray
    bias: np.ndarray
    lag: float
    smoothing: float
    spread: np.ndarray
    motion: np.ndarray
    parts: tuple[str, ...] = PARTS
    stretch: np.ndarray = field(default_factory=lambda: np.ones(1))
    meta: dict = field(default_factory=dict)

    @property
    def shapes(self) -> tuple[str, ...]:
        """What it predicts of the mouth (the first of ``MOUTH_SHAPES``)."""
        return MOUTH_SHAPES[: self.weights.shape[1]]

    def predict(self, track: SpeechTrack, times: np.ndarray, fps: float) -> np.ndarray:
        """(T, K) the z-scored mouth shapes the speech implies at ``times`` (a video's frames at ``fps``)."""
        raw = track.features(np.asarray(times) - self.lag, self.parts) @ self.weights + self.bias
        return np.stack([smoothed(column, self.smoothing * fps) for column in raw.T], axis=1)

    def decoded_otherwise(self) -> str | None:
        """A line saying that this model learnt from phones decoded otherwise than they are now
        (it then reads features unlike those it was fitted on); None where alike."""
        weight = self.meta.get("phone_language_weight", FORMER_PHONE_LANGUAGE_WEIGHT)
        if weight == PHONE_LANGUAGE_WEIGHT:
            return None
        return (f"this speech model learnt from phones decoded at language weight {weight:g}, now {PHONE_LANGUAGE_WEIGHT:g}: "
                "it follows speech less well until refitted (x2face-edit fit-speech)")

    def rest(self) -> np.ndarray:
        """(K,) the z-scored shapes the model gives silence."""
        silent = SpeechTrack(np.full(100, SILENCE), np.zeros(100))
        return (silent.features(np.array([0.5]), self.parts) @ self.weights)[0] + self.bias

    def save(self, path: str | Path) -> None:
        torch.save({"format": SPEECH_FORMAT, "weights": torch.from_numpy(self.weights), "bias": torch.from_numpy(self.bias),
                    "lag": self.lag, "smoothing": self.smoothing, "spread": torch.from_numpy(self.spread),
                    "motion": torch.from_numpy(self.motion), "parts": list(self.parts), "stretch": torch.from_numpy(self.stretch),
                    "meta": self.meta}, path)

    @classmethod
    def load(cls, path: str | Path) -> SpeechModel:
        path = Path(path)
        if not path.is_file():
            raise X2FaceError(f"no speech model at {path} (x2face-edit fit-speech makes one)")
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file is the same one-line error
            raise X2FaceError(f"{path.name} is not a speech model (unreadable)") from None
        if not isinstance(stored, dict) or stored.get("format") != SPEECH_FORMAT:
            raise X2FaceError(f"{path.name} is not a speech model")
        def vector(value) -> np.ndarray:  # one number per shape (a model of the opening alone stored plain numbers)
            return np.atleast_1d(np.asarray(value, dtype=np.float64))

        weights = stored["weights"].numpy()
        return cls(weights.reshape(len(weights), -1), vector(stored["bias"]), float(stored["lag"]), float(stored["smoothing"]),
                   vector(stored["spread"]), stored["motion"].numpy().reshape(-1, 68, 2), tuple(stored["parts"]), vector(stored["stretch"]),
                   stored["meta"])


@dataclass(frozen=True)
class TalkingClip:
    """One clip's speech and its real mouth: the frames' times, openings and widths (NaN
    where the face is not found; widths None where not measured) and, where found, their
    landmarks (crop grid units)."""

    name: str
    track: SpeechTrack
    times: np.ndarray
    openings: np.ndarray
    landmarks: np.ndarray  # (N, 68, 2), NaN where not found
    fps: float
    widths: np.ndarray | None = None

    def shapes(self, count: int) -> np.ndarray:
        """(N, count) the first ``count`` of ``MOUTH_SHAPES`` in each frame."""
        measured = [self.openings] if self.widths is None else [self.openings, self.widths]
        return np.stack(measured[:count], axis=1)


def zscored(values: np.ndarray) -> np.ndarray:
    valid = ~np.isnan(values)
    spread = values[valid].std() if valid.any() else 1.0
    return (values - np.nanmean(values)) / (spread if spread > 1e-9 else 1.0)


def fit_ridge(clips: list[TalkingClip], lag: float, parts: tuple[str, ...], ridge: float, shapes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(F, shapes) weights and (shapes,) bias from the features read ``lag`` before each
    frame to its z-scored shapes (the first ``shapes`` of ``MOUTH_SHAPES``), over ``clips``."""
    inputs, targets = [], []
    for clip in clips:
        measured = clip.shapes(shapes)
        valid = ~np.isnan(measured).any(axis=1)
        inputs.append(clip.track.features(clip.times[valid] - lag, parts))
        targets.append(np.stack([zscored(column) for column in measured.T], axis=1)[valid])
    weights, bias = ridge_least_squares(torch.from_numpy(np.concatenate(inputs)), torch.from_numpy(np.concatenate(targets)), ridge)
    return weights.numpy().astype(np.float32), bias.numpy()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    valid = ~(np.isnan(a) | np.isnan(b))
    if valid.sum() < 5 or np.std(a[valid]) == 0 or np.std(b[valid]) == 0:
        return float("nan")
    return float(np.corrcoef(a[valid], b[valid])[0, 1])


def fisher_mean(values: list[float]) -> float:
    """The mean of correlations through Fisher's z (NaNs left out)."""
    kept = np.clip([v for v in values if not np.isnan(v)], -0.999, 0.999)
    return float(np.tanh(np.arctanh(kept).mean())) if len(kept) else float("nan")


@dataclass(frozen=True)
class SpeechFitOptions:
    """Lags and smoothings tried (seconds), chosen by cross-validation over ``folds`` of the
    training clips (every ``folds``-th clip held out in turn) before refitting on all;
    ``ridge``; ``parts`` of the features."""

    lags: tuple[float, ...] = (-0.12, -0.08, -0.04, 0.0, 0.04, 0.08, 0.12, 0.16, 0.2)
    smoothings: tuple[float, ...] = (0.0, 0.04, 0.08)
    ridge: float = 0.06
    folds: int = 4
    parts: tuple[str, ...] = PARTS


def fit_speech_model(clips: list[TalkingClip], options: SpeechFitOptions = SpeechFitOptions(), *,
                     motion_points: list[int] | None = None) -> SpeechModel:
    """The pooled ``SpeechModel`` of ``clips``: the lag and smoothing whose openings predict
    held-out training clips best (each clip held out once), then the ridge refitted on all of
    them, to the opening and, where every clip has widths, the width."""
    if len(clips) < 2:
        raise X2FaceError(f"a pooled speech model needs talking clips of several people, got {len(clips)}")
    folds = min(options.folds, len(clips))
    correlations: dict[tuple[float, float], list[float]] = {(lag, smoothing): [] for lag in options.lags for smoothing in options.smoothings}
    for fold in range(folds):
        held = [c for i, c in enumerate(clips) if i % folds == fold]
        fitted_on = [c for i, c in enumerate(clips) if i % folds != fold]
        for lag in options.lags:
            weights, bias = fit_ridge(fitted_on, lag, options.parts, options.ridge)
            model = SpeechModel(weights, bias, lag, 0.0, np.zeros(1), np.zeros((1, 68, 2)), options.parts)  # scored by correlation: no stretch
            for smoothing in options.smoothings:
                model.smoothing = smoothing
                correlations[lag, smoothing] += [correlation(model.predict(c.track, c.times, c.fps)[:, 0], c.openings) for c in held]
    scores = {key: fisher_mean(values) for key, values in correlations.items()}
    lag, smoothing = max(scores, key=lambda key: -np.inf if np.isnan(scores[key]) else scores[key])
    shapes = len(MOUTH_SHAPES) if all(c.widths is not None for c in clips) else 1
    weights, bias = fit_ridge(clips, lag, options.parts, options.ridge, shapes)
    spread = np.median([np.nanstd(c.shapes(shapes), axis=0) for c in clips], axis=0)
    motion = np.mean([_motion(c, shapes) for c in clips], axis=0).astype(np.float32)
    if motion_points is not None:
        keep = np.zeros(68, bool)
        keep[motion_points] = True
        motion[:, ~keep] = 0
    meta = {"clips": [c.name for c in clips], "cross_validated_score": scores[lag, smoothing], "folds": folds,
            "phone_language_weight": PHONE_LANGUAGE_WEIGHT,
            "scores": {f"{k[0]:+.2f}s,{k[1]:.2f}s": round(v, 4) for k, v in scores.items()}, "ridge": options.ridge}
    model = SpeechModel(weights, bias, lag, smoothing, spread, motion, options.parts, np.ones(shapes), meta)
    spreads = np.concatenate([model.predict(c.track, c.times, c.fps) for c in clips]).std(axis=0)
    model.stretch = np.where(spreads > 1e-9, 1 / np.maximum(spreads, 1e-9), 1.0)
    return model


def landmark_motion(shapes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """(K, 68, 2) how (N, 68, 2) ``landmarks`` move per unit of each of the (N, K) mouth
    ``shapes`` (least squares on all K together, so a width's motion is what the opening's
    does not explain; zero for a shape that never changes)."""
    centred = shapes - shapes.mean(axis=0)
    moving = centred.std(axis=0) > 1e-12
    motion = np.zeros((shapes.shape[1], 68, 2))
    if moving.any():
        moved = (landmarks - landmarks.mean(axis=0)).reshape(len(landmarks), -1)
        motion[moving] = np.linalg.lstsq(centred[:, moving], moved, rcond=None)[0].reshape(-1, 68, 2)
    return motion


def _motion(clip: TalkingClip, shapes: int) -> np.ndarray:
    """``landmark_motion`` of the clip's frames where the face is found."""
    measured = clip.shapes(shapes)
    valid = ~np.isnan(measured).any(axis=1)
    return landmark_motion(measured[valid], clip.landmarks[valid])


def default_speech_path(model_path: str | Path) -> Path:
    """Where a model's speech model lies: MODEL.speech.pt beside it (``$X2FACE_SPEECH`` overrides)."""
    return Path(os.environ.get("X2FACE_SPEECH") or Path(model_path).with_suffix(".speech.pt"))

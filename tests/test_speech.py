"""Phonetic speech features and the pooled speech model."""

import numpy as np
import pytest

from x2face_edit.errors import X2FaceError
from x2face_edit.speech import (
    SILENCE,
    VISEMES,
    SpeechModel,
    SpeechTrack,
    TalkingClip,
    correlation,
    fit_speech_model,
    loudness_envelope,
    phone_segments,
    viseme_track,
)

OPEN, CLOSED = VISEMES.index("open"), VISEMES.index("closed")


def test_phones_become_visemes_at_their_times():
    track = viseme_track([("SIL", 0.0, 0.1), ("M", 0.1, 0.2), ("AA", 0.2, 0.35), ("ZZ", 0.35, 0.4)], 50)
    assert (track[:10] == SILENCE).all() and (track[10:20] == CLOSED).all() and (track[20:35] == OPEN).all()
    assert (track[35:40] == VISEMES.index("other")).all() and (track[40:] == SILENCE).all()


def test_features_read_the_visemes_around_each_frame():
    speech = SpeechTrack(viseme_track([("AA", 0.5, 0.6)], 100), np.zeros(100))
    features = speech.features(np.array([0.55, 0.35, 2.0]), parts=("visemes",), context=(-0.2, 0.0, 0.2))
    per_offset = features.reshape(3, 3, SILENCE)
    assert per_offset[0, 1, OPEN] == 1 and per_offset[0].sum() == 1  # at 0.55 s only "now" is open
    assert per_offset[1, 2, OPEN] == 1 and per_offset[1].sum() == 1  # 0.2 s later it will be
    assert per_offset[2].sum() == 0  # beyond the recording: silence


def test_the_envelope_follows_syllable_rate_loudness():
    time = np.arange(32000) / 16000
    beat = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * time)
    samples = (np.random.default_rng(0).normal(size=len(time)) * 0.2 * beat).astype(np.float32)
    envelope = loudness_envelope(samples, 200)
    assert correlation(envelope[20:180], beat[::160][20:180]) > 0.8


def synthetic_talking_clip(seed: int, name: str, *, widths: bool = False) -> TalkingClip:
    """A clip whose mouth opens 40 ms after each open vowel it says (a talking face's lag),
    and, with ``widths``, widens on spread vowels and narrows on rounded ones."""
    rng = np.random.default_rng(seed)
    segments, at = [], 0.0
    while at < 8:
        length = rng.uniform(0.06, 0.2)
        segments.append((str(rng.choice(["AA", "M", "IY", "F", "SIL", "T", "UW"])), at, at + length))
        at += length
    visemes = viseme_track(segments, 800)
    times = np.arange(0, 8, 0.04)
    said = visemes[np.clip(np.round((times - 0.04) / 0.01).astype(int), 0, 799)]
    spread, rounded = said == VISEMES.index("spread"), said == VISEMES.index("rounded")
    openings = 0.05 + 0.1 * (said == OPEN) + 0.03 * spread + rng.normal(0, 0.01, len(times))
    landmarks = np.zeros((len(times), 68, 2))
    landmarks[:, 57, 1] = openings  # the lower lip moves with the opening
    width = 0.5 + 0.08 * spread - 0.08 * rounded + 0.03 * (said == OPEN) + rng.normal(0, 0.01, len(times))
    landmarks[:, 48, 0], landmarks[:, 54, 0] = -width / 2, width / 2  # the corners move with the width
    return TalkingClip(name, SpeechTrack(visemes, rng.normal(size=800)), times, openings, landmarks, 25.0, width if widths else None)


def test_the_pooled_model_learns_the_mouth_and_its_lag_from_several_speakers(tmp_path):
    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}") for seed in range(8)], motion_points=[57])
    unseen = synthetic_talking_clip(99, "unseen")
    assert correlation(model.predict(unseen.track, unseen.times, 25)[:, 0], unseen.openings) > 0.8
    assert abs(correlation(model.predict(unseen.track, unseen.times + 0.5, 25)[:, 0], unseen.openings)) < 0.3  # in time, not by chance
    assert model.shapes == ("opening",)  # clips without widths: the opening alone
    assert model.motion[0, 57, 1] == pytest.approx(1.0, abs=0.05) and np.abs(np.delete(model.motion[0], 57, axis=0)).max() == 0
    model.save(tmp_path / "speech.pt")
    again = SpeechModel.load(tmp_path / "speech.pt")
    assert (again.weights == model.weights).all() and again.lag == model.lag and again.meta["clips"][0] == "s0"


def test_the_pooled_model_learns_the_width_apart_from_the_opening(tmp_path):
    """Clips with widths: the width is predicted (wide on spread vowels, narrow on rounded
    ones), and its landmark motion moves the corners apart, leaving what the opening moves
    to the opening's."""
    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}", widths=True) for seed in range(8)], motion_points=[48, 54, 57])
    unseen = synthetic_talking_clip(99, "unseen", widths=True)
    predicted = model.predict(unseen.track, unseen.times, 25)
    assert model.shapes == ("opening", "width") and predicted.shape == (len(unseen.times), 2)
    assert correlation(predicted[:, 0], unseen.openings) > 0.8 and correlation(predicted[:, 1], unseen.widths) > 0.8
    assert model.motion[1, 54, 0] == pytest.approx(0.5, abs=0.05) and model.motion[1, 48, 0] == pytest.approx(-0.5, abs=0.05)
    assert abs(model.motion[1, 57, 1]) < 0.05 and abs(model.motion[0, 54, 0]) < 0.05 and model.motion[0, 57, 1] == pytest.approx(1.0, abs=0.05)
    model.save(tmp_path / "speech.pt")
    again = SpeechModel.load(tmp_path / "speech.pt")
    assert (again.weights == model.weights).all() and (again.stretch == model.stretch).all() and again.motion.shape == (2, 68, 2)


def test_a_speech_model_of_the_opening_alone_still_loads(tmp_path):
    """A model fitted before the width (one output, stored as plain numbers) predicts the
    opening as it did."""
    import torch

    from x2face_edit.speech import SPEECH_FORMAT

    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}") for seed in range(4)])
    torch.save({"format": SPEECH_FORMAT, "weights": torch.from_numpy(model.weights[:, 0]), "bias": float(model.bias[0]), "lag": model.lag,
                "smoothing": model.smoothing, "spread": float(model.spread[0]), "motion": torch.from_numpy(model.motion[0]),
                "parts": list(model.parts), "stretch": float(model.stretch[0]), "meta": model.meta}, tmp_path / "old.pt")
    old = SpeechModel.load(tmp_path / "old.pt")
    unseen = synthetic_talking_clip(99, "unseen")
    assert old.shapes == ("opening",) and old.motion.shape == (1, 68, 2)
    assert np.allclose(old.predict(unseen.track, unseen.times, 25), model.predict(unseen.track, unseen.times, 25), atol=1e-6)


def test_a_speech_model_says_when_it_learnt_from_phones_decoded_otherwise(tmp_path):
    """A model fitted before the phone decoder's language weight was stored with it heard
    phones at the former weight: it says so in one line (``audio`` warns); one fitted now,
    and the shipped one, hear them as they are decoded now."""
    from x2face_edit.model.checkpoint import default_model_path
    from x2face_edit.speech import FORMER_PHONE_LANGUAGE_WEIGHT, PHONE_LANGUAGE_WEIGHT, default_speech_path

    model = fit_speech_model([synthetic_talking_clip(seed, f"s{seed}") for seed in range(4)])
    assert model.decoded_otherwise() is None
    model.save(tmp_path / "speech.pt")
    assert SpeechModel.load(tmp_path / "speech.pt").decoded_otherwise() is None
    del model.meta["phone_language_weight"]
    assert FORMER_PHONE_LANGUAGE_WEIGHT != PHONE_LANGUAGE_WEIGHT
    why = model.decoded_otherwise()
    assert why is not None and f"{FORMER_PHONE_LANGUAGE_WEIGHT:g}" in why and "fit-speech" in why and "\n" not in why
    assert SpeechModel.load(default_speech_path(default_model_path())).decoded_otherwise() is None


def test_a_file_that_is_not_a_speech_model_is_refused(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(X2FaceError, match="not a speech model"):
        SpeechModel.load(tmp_path / "bad.pt")
    with pytest.raises(X2FaceError, match="no speech model"):
        SpeechModel.load(tmp_path / "absent.pt")


def test_pocketsphinx_hears_phones_in_real_speech(eval_clips):
    from x2face_edit.audio_features import load_audio

    segments = phone_segments(load_audio(eval_clips / "wav2lipgfpgan_kim_7s_raw.mp4"))
    spoken = [phone for phone, _, _ in segments if phone != "SIL"]
    assert len(spoken) > 20 and segments[-1][2] > 5  # 7 s of speech: dozens of phones to its end


def test_fit_speech_says_in_one_line_when_no_clip_talks(tmp_path):
    from helpers import one_line_error, run

    from x2face_edit.synthetic import write_moving_face_video

    (tmp_path / "videos").mkdir()
    for seed in range(2):  # a sound track, but a face whose mouth never moves
        write_moving_face_video(tmp_path / "videos" / f"person{seed}.mp4", count=30, seed=seed, tone_hz=220)
    one_line_error(run("fit-speech", tmp_path / "videos", "-o", tmp_path / "speech.pt"), "talking clips of several people, got 0")
    assert not (tmp_path / "speech.pt").exists()


def test_a_transcript_is_aligned_where_its_words_are_said(spoken_words):
    from conftest import SPOKEN_PAUSE

    from x2face_edit.audio_features import SAMPLE_RATE, load_audio
    from x2face_edit.speech import aligned_segments

    samples = load_audio(spoken_words)
    segments = aligned_segments(samples, "Bob met Pam, at the park!")
    spoken = [(phone, start, end) for phone, start, end in segments if phone != "SIL"]
    assert [phone for phone, _, _ in spoken] == "B AA B M EH T P AE M AE T DH AH P AA R K".split()
    assert abs(spoken[0][1] - SPOKEN_PAUSE) < 0.1 and abs(spoken[-1][2] - (len(samples) / SAMPLE_RATE - SPOKEN_PAUSE)) < 0.15
    assert all(end <= next_start + 1e-9 for (_, _, end), (_, next_start, _) in zip(segments, segments[1:]))  # in order
    with pytest.raises(X2FaceError, match="not in the pronouncing dictionary: blorf, xyzzyq"):
        aligned_segments(samples, "bob xyzzyq met blorf")
    with pytest.raises(X2FaceError, match="no words"):
        aligned_segments(samples, " ?! ")


def test_speech_opens_the_mouth_on_open_vowels_and_rests_in_the_pauses(spoken_words):
    """The shipped pooled model on words it never heard, read from a transcript and decoded:
    at rest in the pauses, open on the open vowels (by a third of the speakers' spread:
    it reads the cepstra of natural voices best; it does not close the lips on p, b, m
    between them: benchmarks/README.md, audio_sync.py)."""
    from conftest import SPOKEN_PAUSE, SPOKEN_WORDS

    from x2face_edit.audio_features import SAMPLE_RATE, load_audio
    from x2face_edit.model import default_model_path
    from x2face_edit.speech import aligned_segments, default_speech_path

    model = SpeechModel.load(default_speech_path(default_model_path()))
    samples = load_audio(spoken_words)
    seconds = len(samples) / SAMPLE_RATE
    times = np.arange(int(seconds * 25)) / 25
    segments = aligned_segments(samples, SPOKEN_WORDS)
    heard = times - model.lag  # the mouth follows the sound by the model's lag
    pauses = (heard < SPOKEN_PAUSE - 0.3) | (heard > seconds - SPOKEN_PAUSE + 0.3)  # its context reaches 0.2 s, blurred

    def during(phones: tuple[str, ...], opening: np.ndarray) -> float:
        """The mean opening while ``phones`` are heard."""
        inside = np.zeros(len(times), bool)
        for phone, start, end in segments:
            inside |= (phone in phones) & (heard >= start - 0.02) & (heard < end + 0.02)
        return float(opening[inside].mean())

    for transcript in (SPOKEN_WORDS, None):
        track = SpeechTrack.of(samples, transcript)
        assert track.heard()
        opening = ((model.predict(track, times, 25) - model.rest()) * model.stretch)[:, 0]
        assert np.abs(opening[pauses]).max() < 0.25 * opening.max() and np.abs(opening[pauses]).mean() < 0.15, transcript
        assert during(("AA", "AE", "AH"), opening) > 0.3, transcript


def test_the_cepstra_do_not_hear_the_recording_level_or_the_microphone(spoken_words):
    """A quiet recording, and one through a brighter microphone (a first-order high-pass
    tilt), give the same cepstra: each is measured against the recording's own pauses and
    spread, so what the mouth reads is how the spectrum moves, not the voice's level or colour."""
    from x2face_edit.audio_features import load_audio
    from x2face_edit.speech import _hops, normalised_cepstra

    samples = load_audio(spoken_words)
    pauses = viseme_track(phone_segments(samples), _hops(samples)) == SILENCE
    heard = normalised_cepstra(samples, pauses)
    assert np.abs(heard[pauses].mean(axis=0)).max() < 1e-6  # a pause reads as silence, zero
    tilted = np.concatenate([samples[:1], samples[1:] - 0.7 * samples[:-1]])
    for changed in (0.1 * samples, tilted):
        again = normalised_cepstra(changed, pauses)
        for coefficient in range(heard.shape[1]):
            assert correlation(again[~pauses, coefficient], heard[~pauses, coefficient]) > 0.9


def test_silence_noise_and_a_tone_are_not_speech():
    from x2face_edit.audio import heard_speech

    rng = np.random.default_rng(0)
    time = np.arange(3 * 16000) / 16000
    for sound in (np.zeros_like(time), 0.1 * rng.standard_normal(len(time)), 0.3 * np.sin(2 * np.pi * 440 * time)):
        assert heard_speech(sound.astype(np.float32)) is None


def test_long_speech_is_decoded_in_pieces_cut_where_it_is_quiet():
    from x2face_edit.speech import _pieces

    rate = 16000
    samples = 0.3 * np.sin(2 * np.pi * 200 * np.arange(75 * rate) / rate)
    for quiet in (29.0, 60.5):  # the quietest moments near each 30 s
        samples[int(quiet * rate):int((quiet + 0.05) * rate)] = 0
    pieces = _pieces(samples)
    assert pieces[0][0] == 0 and pieces[-1][1] == len(samples) and all(a[1] == b[0] for a, b in zip(pieces, pieces[1:]))
    cuts = [first / rate for first, _ in pieces[1:]]
    assert len(cuts) == 2 and 29.0 <= cuts[0] < 29.05 and 60.5 <= cuts[1] < 60.55
    assert _pieces(samples[: 31 * rate]) == [(0, 31 * rate)]  # short speech: one piece


@pytest.mark.parametrize("rate", [8000, 44100])
def test_speech_at_another_rate_is_resampled_and_heard_alike(spoken_words, tmp_path, rate):
    from conftest import SPOKEN_WORDS
    from helpers import write_wav

    from x2face_edit.audio_features import SAMPLE_RATE, load_audio
    from x2face_edit.speech import aligned_segments

    samples = load_audio(spoken_words)
    seconds = len(samples) / SAMPLE_RATE
    other = np.interp(np.arange(int(seconds * rate)) / rate, np.arange(len(samples)) / SAMPLE_RATE, samples)
    again = load_audio(write_wav(tmp_path / f"spoken_{rate}.wav", other, rate))
    assert abs(len(again) / SAMPLE_RATE - seconds) < 0.02
    assert SpeechTrack.of(again).heard()
    words = [segment for segment in aligned_segments(again, SPOKEN_WORDS) if segment[0] != "SIL"]
    expected = [segment for segment in aligned_segments(samples, SPOKEN_WORDS) if segment[0] != "SIL"]
    assert [phone for phone, _, _ in words] == [phone for phone, _, _ in expected]
    # 8 kHz sound lacks the band above 4 kHz the model listens to (speech.band_filled): its words move a little
    assert max(abs(a[1] - b[1]) for a, b in zip(words, expected)) <= (0.05 if rate > SAMPLE_RATE else 0.12)

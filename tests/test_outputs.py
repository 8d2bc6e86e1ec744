import av
import numpy as np
import pytest
from helpers import write_wav

from x2face_edit.errors import X2FaceError
from x2face_edit.outputs import atomic_output
from x2face_edit.synthetic import write_moving_face_video
from x2face_edit.video import VideoWriter, iter_frames, probe


def test_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as partial:
            partial.write_text("half")
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as partial:
        partial.write_text("whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]


def test_existing_output_needs_force_and_missing_folder_is_refused(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("precious")
    with pytest.raises(X2FaceError, match="--force"):
        with atomic_output(target):
            pass
    assert target.read_text() == "precious"
    with atomic_output(target, force=True) as partial:
        partial.write_text("new")
    assert target.read_text() == "new"
    with pytest.raises(X2FaceError, match="output folder does not exist"):
        with atomic_output(tmp_path / "missing" / "out.mp4"):
            pass


def _audio_seconds(path):
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return float(stream.duration * stream.time_base), stream.codec_context.name


def test_writer_keeps_frame_rate_frame_count_and_sound(tmp_path):
    source = write_moving_face_video(tmp_path / "in.mp4", count=60, fps=30, tone_hz=440)
    info = probe(source)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=info.fps, width=info.width, height=info.height, audio_from=source) as writer:
        for frame in iter_frames(source):
            writer.write(frame.rgb)
    result = probe(out)
    assert (result.fps, result.frame_count, result.width, result.height) == (info.fps, 60, 320, 240)
    seconds, codec = _audio_seconds(out)
    assert codec == "aac" and seconds == pytest.approx(_audio_seconds(source)[0], abs=0.03)
    first_in, first_out = next(iter_frames(source)).rgb, next(iter_frames(out)).rgb
    assert np.abs(first_in.astype(int) - first_out.astype(int)).mean() < 3  # re-encoded, nearly equal


def test_writer_remuxes_mpeg_audio_from_a_real_clip(tmp_path, shared_clips):
    source = shared_clips / "lipnet_bbaf2n.mpg"
    info = probe(source)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=info.fps, width=info.width, height=info.height, audio_from=source) as writer:
        for frame in iter_frames(source):
            writer.write(frame.rgb)
    assert probe(out).frame_count == info.frame_count == 75
    assert _audio_seconds(out)[0] == pytest.approx(_audio_seconds(source)[0], abs=0.05)


def test_writer_reencodes_audio_the_container_cannot_hold(tmp_path):
    # 16-bit PCM (a .wav, as a speech track would be) is not an MP4 audio codec: it becomes AAC.
    rate, seconds = 16000, 1.5
    wav = tmp_path / "speech.wav"
    write_wav(wav, 3000 / 32767 * np.sin(2 * np.pi * 220 * np.arange(int(rate * seconds)) / rate), rate)
    out = tmp_path / "out.mp4"
    with VideoWriter(out, fps=25, width=64, height=64, audio_from=wav) as writer:
        for _ in range(int(25 * seconds)):
            writer.write(np.zeros((64, 64, 3), np.uint8))
    duration, codec = _audio_seconds(out)
    assert codec == "aac" and duration == pytest.approx(seconds, abs=0.1)

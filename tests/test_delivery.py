"""Delivering work to editors: paint layers with alpha, image sequences, codecs and bit
depth, the painting guide and previews."""

import json

import av
import cv2
import numpy as np
import pytest
from helpers import frames, one_line_error, run
from PIL import Image

from x2face_edit.guide import is_guide
from x2face_edit.synthetic import moving_face_frames
from x2face_edit.video import VideoWriter, choose_encoding, iter_frames, probe


def _sequence(folder, name="shot_%04d.png", count=12, first=1, deep=False, **size):
    """The synthetic face as a numbered PNG sequence (16-bit with ``deep``; ``size``: width, height)."""
    folder.mkdir(exist_ok=True)
    for number, rgb in enumerate(moving_face_frames(count, **size), start=first):
        pixels = rgb.astype(np.uint16) * 257 if deep else rgb
        cv2.imwrite(str(folder / (name % number)), np.ascontiguousarray(pixels[..., ::-1]))
    return folder / name


def _render(extracted, painted_layer, drive, out, *flags):
    return run("render", "--edited", painted_layer, "--sidecar", extracted.with_suffix(".json"), "--drive", drive, "-o", out, *flags)


def test_the_layer_over_the_input_is_the_burned_in_render(tmp_path, extracted, painted_layer, talking_video):
    burned, layer = tmp_path / "burned_%03d.png", tmp_path / "paint_%03d.png"
    assert _render(extracted, painted_layer, talking_video, burned).exit_code == 0
    result = _render(extracted, painted_layer, talking_video, layer, "--layer-only")
    assert result.exit_code == 0, result.output
    inputs = frames(talking_video)
    assert len(list(tmp_path.glob("paint_*.png"))) == len(inputs) == 40
    painted_pixels = 0
    for index, original in enumerate(inputs):
        rgba = np.asarray(Image.open(tmp_path / f"paint_{index:03d}.png")).astype(np.float64)
        alpha = rgba[..., 3:] / 255
        over = np.round(rgba[..., :3] * alpha + original * (1 - alpha))
        expected = np.asarray(Image.open(tmp_path / f"burned_{index:03d}.png")).astype(np.float64)
        assert np.abs(over - expected).max() <= 2
        painted_pixels += int((alpha > 0).sum())
    assert painted_pixels > 40 * 20  # the paint is in the layer, not an empty one


def test_a_layer_in_a_movie_keeps_its_alpha_and_timing(tmp_path, extracted, painted_layer, talking_video):
    out = tmp_path / "paint.mov"
    assert _render(extracted, painted_layer, talking_video, out, "--layer-only").exit_code == 0
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "prores" and "a" in stream.codec_context.pix_fmt  # yuva444p: with alpha
        decoded = [f.to_ndarray(format="rgba") for f in container.decode(stream)]
    assert len(decoded) == 40 and probe(out).fps == probe(talking_video).fps
    assert all(frame[..., 3].max() > 200 and frame[:20, :20, 3].max() == 0 for frame in decoded)
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "paint.mp4", "--layer-only"),
                   "no alpha channel", "prores")


def test_codecs_are_chosen_by_suffix_or_name_and_checked_before_work(tmp_path, extracted, painted_layer, talking_video):
    for name, flags, codec in (("o.webm", [], "vp9"), ("o.mkv", ["--codec", "h265", "--crf", "24"], "hevc")):
        result = _render(extracted, painted_layer, talking_video, tmp_path / name, *flags)
        assert result.exit_code == 0, result.output
        with av.open(str(tmp_path / name)) as container:
            assert container.streams.video[0].codec_context.name == codec
            assert container.streams.audio  # the sound is kept (as Opus in WebM)
        assert probe(tmp_path / name).frame_count == 40
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "o.webm", "--codec", "h264", "--force"),
                   "h264 does not go in .webm")
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "o.mov", "--codec", "prores", "--crf", "3"),
                   "--crf does not apply to prores")
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "o.gif"), "write the output as")
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "o.png"), "numbered pattern", "o_%05d.png")
    assert not (tmp_path / "o.mov").exists()


def test_ten_bit_video_in_gives_ten_bit_out(tmp_path, extracted, painted_layer):
    deep_input = tmp_path / "deep.mkv"
    encoding, _ = choose_encoding(deep_input, codec="h264", deep=True)
    # A grey ramp across the top with 640 levels: more than 8 bits can tell apart.
    ramp = np.repeat(np.linspace(16384, 49152, 320).astype(np.uint16)[None, :, None], 3, axis=2)
    with VideoWriter(deep_input, fps=25, width=320, height=240, encoding=encoding) as writer:
        for rgb in moving_face_frames(20):
            deep = rgb.astype(np.uint16) * 257
            deep[:24] = ramp
            writer.write(deep)
    assert probe(deep_input).bit_depth == 10
    out = tmp_path / "out.mp4"
    assert _render(extracted, painted_layer, deep_input, out).exit_code == 0
    assert probe(out).bit_depth == 10
    # Untouched pixels keep their 10-bit values: the ramp has more steps than 8 bits give it.
    original, rendered = next(iter_frames(deep_input, deep=True)).rgb, next(iter_frames(out, deep=True)).rgb
    assert np.unique(rendered[8, :, 1]).size > 200
    assert np.abs(original[:16].astype(int) - rendered[:16]).max() <= 2 * 257
    # To a codec without high bit depth: a warning, once.
    result = _render(extracted, painted_layer, deep_input, tmp_path / "out.webm")
    assert result.exit_code == 0 and result.output.count("warning:") == 1 and "8" in result.output


def test_an_image_sequence_in_gives_a_sequence_out_with_the_same_numbers(tmp_path, extracted, painted_layer):
    shots = _sequence(tmp_path / "shots", first=7, deep=True)
    out = tmp_path / "out" / "painted_%04d.png"
    out.parent.mkdir()
    result = _render(extracted, painted_layer, shots, out, "--sequence-fps", "24")
    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in out.parent.iterdir())
    assert written == [f"painted_{n:04d}.png" for n in range(7, 19)]
    first = cv2.imread(str(out.parent / "painted_0007.png"), cv2.IMREAD_UNCHANGED)
    assert first.dtype == np.uint16  # 16-bit in, 16-bit out
    # A folder of frames works as well; a movie out of a sequence takes --fps.
    movie = tmp_path / "out.mp4"
    assert _render(extracted, painted_layer, shots.parent, movie, "--sequence-fps", "24").exit_code == 0
    assert probe(movie).frame_count == 12 and float(probe(movie).fps) == pytest.approx(24)


def test_a_face_extracted_from_an_image_sequence_renders_from_it(tmp_path, tiny_model):
    shots = _sequence(tmp_path / "shots", count=12)
    face = tmp_path / "face.png"
    assert run("extract", shots, "-o", face, "--model", tiny_model, "--size", "128", "--sequence-fps", "24").exit_code == 0
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[48:80, 48:80] = (255, 0, 255, 255)
    Image.fromarray(layer).save(tmp_path / "face.edit.png")
    result = run("render", "--edited", tmp_path / "face.edit.png", "--drive", shots, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output  # before: "the video the face was extracted from is gone"
    painted = [np.abs(a.astype(int) - b).max(axis=2) > 60 for a, b in zip(frames(tmp_path / "out.mp4"), moving_face_frames(12))]
    assert len(painted) == 12 and sum(p.sum() for p in painted) > 100  # the tiny model warps the paint about


def test_odd_sizes_are_kept_where_the_codec_can_and_said_where_it_cannot(tmp_path, extracted, painted_layer):
    shots = _sequence(tmp_path / "shots", count=6, width=321, height=241)
    movie = _render(extracted, painted_layer, shots, tmp_path / "out.mp4")
    assert movie.exit_code == 0 and "321x241 is written as 320x240: h264 needs even sizes" in movie.output
    out = tmp_path / "out" / "painted_%04d.png"
    out.parent.mkdir()
    sequence = _render(extracted, painted_layer, shots, out)
    assert sequence.exit_code == 0 and "warning" not in sequence.output
    assert Image.open(out.parent / "painted_0001.png").size == (321, 241)


def test_bad_sequences_fail_in_one_line(tmp_path, extracted, painted_layer):
    shots = _sequence(tmp_path / "shots", count=6)
    out = tmp_path / "o.mp4"
    one_line_error(_render(extracted, painted_layer, tmp_path / "shots" / "other_%04d.png", out), "no frames match")
    (tmp_path / "shots" / "shot_0003.png").unlink()
    one_line_error(_render(extracted, painted_layer, shots, out), "misses frame shot_0003.png")
    Image.new("RGB", (32, 32)).save(tmp_path / "shots" / "shot_0003.png")
    one_line_error(_render(extracted, painted_layer, shots, out), "differ in size", "32x32")
    assert not out.exists()


def test_extract_writes_a_guide_that_render_refuses_as_paint(tmp_path, extracted, talking_video):
    guide_path = extracted.with_suffix(".guide.png")
    guide = Image.open(guide_path)
    assert is_guide(guide) and guide.mode == "RGBA" and guide.size == (128, 128)
    alpha = np.asarray(guide)[..., 3]
    assert 0.01 < (alpha > 0).mean() < 0.5  # lines, not a filled image
    landmarks = np.array(json.loads(extracted.with_suffix(".json").read_text())["landmarks"])
    assert landmarks.shape == (68, 2)
    # The lines pass through the recorded landmarks.
    near = [alpha[max(0, y - 2): y + 3, max(0, x - 2): x + 3].max() for x, y in np.round(landmarks - 0.5).astype(int)
            if 0 <= x < 128 and 0 <= y < 128]
    assert np.mean(np.array(near) > 0) > 0.9
    one_line_error(run("render", "--edited", guide_path, "--drive", talking_video, "-o", tmp_path / "o.mp4"),
                   "painting guide, not paint")


def test_preview_shows_before_and_after_of_spread_frames(tmp_path, extracted, painted_layer, talking_video):
    sheet = tmp_path / "sheet.png"
    result = _render(extracted, painted_layer, talking_video, sheet, "--preview", "4")
    assert result.exit_code == 0, result.output
    assert "frames 5, 15, 25, 35" in result.output
    image = np.asarray(Image.open(sheet)).astype(int)
    assert image.shape == (2 * (256 + 16), 2 * 2 * 256, 3)
    for row in range(2):
        for column in range(2):
            top, left = row * 272 + 16, column * 512
            before, after = image[top: top + 256, left: left + 256], image[top: top + 256, left + 256: left + 512]
            changed = np.abs(before - after).max(axis=2) > 60
            assert 20 < changed.sum() < 0.5 * changed.size  # the dot, on the face only
    one_line_error(_render(extracted, painted_layer, talking_video, tmp_path / "sheet.gif", "--preview", "4"), "preview as")


def test_a_truncated_file_renders_what_it_holds_and_says_so(tmp_path, extracted, painted_layer):
    whole = tmp_path / "whole.mp4"
    with av.open(str(whole), mode="w", options={"movflags": "faststart"}) as container:  # the frame count up front
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for rgb in moving_face_frames(60):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    decoded = sum(1 for _ in iter_frames(cut))
    assert probe(cut).frame_count == 60 and 0 < decoded < 60
    result = _render(extracted, painted_layer, cut, tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    assert f"only {decoded} of the 60 frames cut.mp4 announces could be decoded" in result.output
    assert probe(tmp_path / "out.mp4").frame_count == decoded


def test_every_sound_track_is_kept(tmp_path, extracted, painted_layer):
    """A second language or a commentary track is carried over like the first."""
    video = tmp_path / "two_tracks.mkv"
    rate, seconds = 48000, 1.0
    with av.open(str(video), mode="w") as container:
        picture = container.add_stream("libx264", rate=25)
        picture.width, picture.height, picture.pix_fmt = 320, 240, "yuv420p"
        sounds = [container.add_stream("aac", rate=rate, layout="mono") for _ in range(2)]
        for stream, pitch in zip(sounds, (300, 500)):
            tone = (0.3 * np.sin(2 * np.pi * pitch * np.arange(int(rate * seconds)) / rate)).astype(np.float32)
            for start in range(0, len(tone), 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, start
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        for rgb in moving_face_frames(25):
            container.mux(picture.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(picture.encode())
    out = tmp_path / "out.mp4"
    result = _render(extracted, painted_layer, video, out)
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 2
        for stream in container.streams.audio:
            assert float(stream.duration * stream.time_base) == pytest.approx(seconds, abs=0.1)

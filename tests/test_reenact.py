import numpy as np
import pytest
from helpers import run
from PIL import Image

from x2face_edit.synthetic import moving_face_frames, write_moving_face_video
from x2face_edit.video import iter_frames, probe


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    source = write_moving_face_video(folder / "source.mp4", count=20, seed=1)
    drive = write_moving_face_video(folder / "drive.mp4", count=30, fps=30, seed=2, tone_hz=500)
    return source, drive


@pytest.mark.parametrize("flags, size", [([], (96, 96)), (["--side-by-side"], (192, 96)), (["--paste-back"], (320, 240))])
def test_reenact_layouts_keep_the_driving_timing_and_sound(tmp_path, videos, tiny_model, flags, size):
    source, drive = videos
    out = tmp_path / "out.mp4"
    result = run("reenact", source, drive, "-o", out, "--model", tiny_model, "--size", "96", *flags)
    assert result.exit_code == 0, result.output
    info = probe(out)
    assert (info.width, info.height) == size
    assert info.frame_count == 30 and float(info.fps) == 30 and info.has_audio


def test_side_by_side_shows_the_driving_face_on_the_left(tmp_path, videos, tiny_model):
    source, drive = videos
    out = tmp_path / "out.mp4"
    assert run("reenact", source, drive, "-o", out, "--model", tiny_model, "--size", "96", "--side-by-side").exit_code == 0
    frames = [f.rgb for f in iter_frames(out)]
    # The left half follows the driving face's motion; the right half is the generated face.
    assert np.abs(frames[0][:, :96].astype(int) - frames[15][:, :96]).mean() > 5
    assert not np.array_equal(frames[0][:, :96], frames[0][:, 96:])


def test_images_can_be_the_source(tmp_path, videos, tiny_model):
    images = []
    for number, frame in enumerate(moving_face_frames(3, seed=4)):
        images.append(tmp_path / f"source{number}.png")
        Image.fromarray(frame).save(images[-1])
    out = tmp_path / "out.mp4"
    result = run("reenact", *images, videos[1], "-o", out, "--model", tiny_model, "--size", "64")
    assert result.exit_code == 0, result.output
    assert probe(out).frame_count == 30


def test_reenact_bad_inputs(tmp_path, videos, tiny_model):
    blank = tmp_path / "blank.png"
    Image.new("RGB", (200, 200), (40, 40, 40)).save(blank)
    result = run("reenact", blank, videos[1], "-o", tmp_path / "o.mp4", "--model", tiny_model)
    assert result.exit_code == 1 and result.output.strip() == f"Error: no face found in {blank}"
    result = run("reenact", videos[0], tmp_path / "missing.mp4", "-o", tmp_path / "o.mp4", "--model", tiny_model)
    assert result.exit_code == 1 and "no such file" in result.output
    result = run("reenact", videos[0], videos[1], "-o", tmp_path / "o.mp4", "--side-by-side", "--paste-back")
    assert result.exit_code == 1 and "choose one" in result.output

"""A shot rendered in chunks of frames, each in its own process, is the whole render."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import frames, one_line_error, run
from PIL import Image

from x2face_edit.synthetic import write_moving_face_video, write_occluded_copy
from x2face_edit.tracking import track_video


@pytest.fixture(scope="module")
def shot(tmp_path_factory):
    """A moving face with a printed cup crossing the painted cheek in the middle of the shot:
    the frames it covers are driven twice (``driving.redriven_grids``), which reads further
    around a chunk."""
    folder = tmp_path_factory.mktemp("farm")
    clean = write_moving_face_video(folder / "clean.mp4", count=60)
    video = write_occluded_copy(clean, track_video(clean).face_boxes, "object", folder / "shot.mp4")
    assert run("extract", video, "-o", folder / "face.png").exit_code == 0
    layer = np.zeros((512, 512, 4), np.uint8)
    cv2.circle(layer, (170, 320), 40, (20, 230, 40, 255), -1)
    Image.fromarray(layer).save(folder / "face.edit.png")
    return folder, video


def _render(folder, video, out, *args):
    command = [sys.executable, "-m", "x2face_edit", "render", "--edited", str(folder / "face.edit.png"), "--drive", str(video),
               "-o", str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"})


def test_chunks_rendered_apart_are_the_whole_render_byte_for_byte(shot):
    folder, video = shot
    (folder / "whole").mkdir()
    (folder / "chunks").mkdir()
    whole = _render(folder, video, folder / "whole" / "f_%03d.png")
    assert whole.returncode == 0, whole.stderr
    # The face analysed once, shared by every chunk (the farm's shared folder).
    assert run("analyse", video, "--sidecar", folder / "face.json", "-o", folder / "shot.analysis.npz").exit_code == 0
    for first in range(0, 60, 20):  # the lock and the occlusion matte on, as by default
        chunk = _render(folder, video, folder / "chunks" / "f_%03d.png", "--frames", f"{first}-{first + 19}",
                        "--analysis", folder / "shot.analysis.npz")
        assert chunk.returncode == 0, chunk.stderr
        assert "20 frames" in chunk.stdout
    names = sorted(p.name for p in (folder / "whole").iterdir())
    assert names == sorted(p.name for p in (folder / "chunks").iterdir()) and len(names) == 60
    assert names[0] == "f_000.png" and names[-1] == "f_059.png"
    differing = [n for n in names if (folder / "whole" / n).read_bytes() != (folder / "chunks" / n).read_bytes()]
    assert not differing
    # The paint is there (the chunks do not agree by being untouched copies of the shot) but
    # where the cup hides it, in the middle.
    plain = frames(video)
    painted = [(np.abs(np.asarray(Image.open(folder / "whole" / n)).astype(int) - plain[i]).max(axis=2) > 40).sum()
               for i, n in enumerate(names)]
    assert min(painted[:10] + painted[-10:]) > 100, painted


def test_the_analysis_holds_the_source_frames_so_no_chunk_decodes_them(shot, monkeypatch):
    from dataclasses import replace

    import x2face_edit.embedding
    from x2face_edit.embedding import source_frames
    from x2face_edit.sidecar import read_sidecar
    from x2face_edit.tracking import load_sources

    folder, _ = shot
    sidecar = read_sidecar(folder / "face.json")
    held = load_sources(folder / "shot.analysis.npz", sidecar.video, sidecar.frames)
    decoded, _ = source_frames(sidecar)
    assert held is not None and all((held.frames[i] == frame).all() for i, frame in zip(sidecar.frames, decoded))
    assert load_sources(folder / "shot.analysis.npz", sidecar.video, sidecar.frames[:-1]) is None  # another embedded face

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded the video for frames the analysis holds")

    monkeypatch.setattr(x2face_edit.embedding, "frames_at", no_decoding)
    given, _ = source_frames(replace(sidecar, decoded=held.frames))
    assert all((a == b).all() for a, b in zip(given, decoded))


def test_a_chunk_that_cannot_be_rendered_is_one_line(shot, tmp_path):
    folder, video = shot

    def render_with(*args):
        return run("render", "--edited", folder / "face.edit.png", "--drive", video, *args)

    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "50-60"), "frames 0-59")
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "20-"), "A-B")
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "30-10"), "A-B")
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "0-9", "--fit", "5"), "--model")
    other = write_moving_face_video(tmp_path.parent / "other.mp4", count=30, seed=3)
    assert run("analyse", other, "--sidecar", folder / "face.json", "-o", tmp_path.parent / "other.analysis.npz").exit_code == 0
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "0-9", "--analysis", tmp_path.parent / "other.analysis.npz"),
                   "another video")
    (tmp_path.parent / "broken.npz").write_bytes(b"not numpy")
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--analysis", tmp_path.parent / "broken.npz"), "not an analysis")
    one_line_error(render_with("-o", tmp_path / "f_%03d.png", "--frames", "0-9", "--analysis", folder / "shot.analysis.npz",
                               "--face", "1"), "another face")
    assert not list(tmp_path.iterdir())


def test_frames_from_the_middle_of_a_video_are_the_frames_decoded_from_its_start(eval_clips):
    from itertools import islice

    from x2face_edit.video import iter_frames, iter_frames_from

    clip = eval_clips / "icpr2020dfdc_ffpp_519.mp4"  # 500 frames, keyframes along it
    every = list(iter_frames(clip))
    entered = list(islice(iter_frames_from(clip, 470, [f.time for f in every]), 10))
    assert [f.index for f in entered] == list(range(470, 480))
    assert all((a.rgb == b.rgb).all() for a, b in zip(entered, every[470:480]))


def test_a_chunk_of_an_image_sequence_reads_no_file_before_it(tmp_path):
    """A farm's plates are image sequences: a chunk at the end of a long one must not read
    every file before it. The files before frame 8 are cut short after their header (their
    size still reads), so decoding one fails; frames 8-11 come out as the whole decode's."""
    from x2face_edit.synthetic import moving_face_frames
    from x2face_edit.video import iter_frames, iter_frames_from

    for number, rgb in enumerate(moving_face_frames(12), start=1001):
        Image.fromarray(rgb).save(tmp_path / f"plate_{number:04d}.png")
    pattern = tmp_path / "plate_%04d.png"
    every = [(f.index, f.time, f.rgb.copy()) for f in iter_frames(pattern)]
    for number in range(1001, 1009):
        path = tmp_path / f"plate_{number:04d}.png"
        path.write_bytes(path.read_bytes()[:64])
    entered = list(iter_frames_from(pattern, 8, [time for _, time, _ in every]))
    assert [(f.index, f.time) for f in entered] == [(index, time) for index, time, _ in every[8:]]
    assert all((f.rgb == rgb).all() for f, (_, _, rgb) in zip(entered, every[8:]))


def test_the_farm_example_renders_the_shot_in_chunks_as_a_whole(shot, tmp_path):
    folder, video = shot
    whole = folder / "whole_for_example"
    whole.mkdir()
    assert _render(folder, video, whole / "f_%03d.png").returncode == 0
    script = Path(__file__).resolve().parents[1] / "examples" / "farm" / "render_chunks.sh"
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    (tmp_path / "out").mkdir()
    result = subprocess.run(["sh", str(script), str(video), str(folder / "face.edit.png"), str(folder / "face.json"),
                             str(tmp_path / "out" / "f_%03d.png"), "25"], capture_output=True, text=True, env=environment)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("frames ->") == 3  # chunks 0-24, 25-49, 50-59
    names = sorted(p.name for p in whole.iterdir())
    assert names == sorted(p.name for p in (tmp_path / "out").iterdir())
    assert all((whole / n).read_bytes() == (tmp_path / "out" / n).read_bytes() for n in names)


def test_a_chunk_at_a_multiple_of_25_frames_reads_back_only_as_far_as_the_lock_reaches():
    """With the matte on, a chunk's frames depend on the landmark chain back to where it last
    started anew; it starts anew the lock's reach before every multiple of ``CHAIN_FRAMES``,
    so a farm's chunks of 25, 50 or 100 frames read no further back than the lock needs."""
    import torch

    from x2face_edit.driving import CHAIN_FRAMES, DrivingOptions, chain_starts_at, considered_for
    from x2face_edit.lock import LandmarkLock, reach_frames

    lock = LandmarkLock(torch.rand(68, 2) - 0.5)
    matte_on = DrivingOptions(lock=lock, filled=lambda *_: None)
    assert CHAIN_FRAMES == 25
    for first in (0, 25, 50, 700, 725, 1450):
        considered = considered_for(range(first, first + 50), matte_on)
        assert considered == range(max(0, first - reach_frames()), first + 50 + reach_frames())
    # Elsewhere the chunk goes back to the chain's last start before the lock's reach, and no further.
    considered = considered_for(range(60, 110), matte_on)
    assert chain_starts_at(considered.start)
    assert not any(chain_starts_at(index) for index in range(considered.start + 1, 60 - reach_frames() + 1))
    # Without the chain (no matte), the lock's reach alone.
    assert considered_for(range(60, 110), DrivingOptions(lock=lock)) == range(60 - reach_frames(), 110 + reach_frames())

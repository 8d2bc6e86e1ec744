"""Footage as cameras make it and outputs that cannot go wrong: wide shots, bad output
names, interrupted renders."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
from helpers import frames, run
from PIL import Image

from x2face_edit.synthetic import moving_face_frames, write_moving_face_video
from x2face_edit.tracking import track_video
from x2face_edit.video import VideoWriter


def _extract_and_paint(video, folder):
    """Extract ``video``'s face into ``folder`` and paint a red square on face.edit.png."""
    assert run("extract", video, "-o", folder / "face.png").exit_code == 0
    layer = Image.open(folder / "face.edit.png")
    layer.paste((255, 0, 0, 255), (200, 200, 300, 300))
    layer.save(folder / "face.edit.png")


def test_a_small_face_in_a_wide_shot_is_found_at_full_resolution(tmp_path):
    frames = moving_face_frames(100, width=1920, height=1080, face_size=240)[:12]  # slow motion
    video = tmp_path / "wide.mp4"
    with VideoWriter(video, fps=25, width=1920, height=1080) as writer:
        for frame in frames:
            writer.write(frame)
    track = track_video(video)
    assert track.found.all()
    side = track.face_boxes[:, 2] - track.face_boxes[:, 0]
    assert 80 < side.mean() < 160  # the face itself, which a 640-wide copy shows a third as large


def test_no_face_names_the_smallest_findable_size(tmp_path):
    video = tmp_path / "empty.mp4"
    with VideoWriter(video, fps=25, width=160, height=120) as writer:
        for i in range(5):
            writer.write(np.full((120, 160, 3), 40 * i, np.uint8))
    result = run("extract", video, "-o", tmp_path / "face.png")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "no face found" in result.output and "80 pixels" in result.output


def test_outputs_a_video_cannot_be_written_as_are_refused_before_any_work(tmp_path):
    video = write_moving_face_video(tmp_path / "v.mp4", count=10)
    for name in ("out.gif", "out", "out.txt"):
        result = run("reenact", video, video, "-o", tmp_path / name)
        assert result.exit_code == 1 and "write the output as" in result.output, result.output
    result = run("extract", video, "-o", tmp_path / "face.png", "--size", "0")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == [video]


def test_sigterm_removes_the_partial_output(tmp_path):
    video = write_moving_face_video(tmp_path / "v.mp4", count=150)
    _extract_and_paint(video, tmp_path)
    render = subprocess.Popen([sys.executable, "-m", "x2face_edit", "render", "--edited", str(tmp_path / "face.edit.png"),
                               "--drive", str(video), "-o", str(tmp_path / "out.mp4")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    partial = tmp_path / ".out.partial.mp4"
    deadline = time.monotonic() + 120
    while not partial.exists() and render.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert partial.exists(), "the render never started writing"
    render.send_signal(signal.SIGTERM)
    _, errors = render.communicate(timeout=60)
    assert render.returncode == 128 + signal.SIGTERM, errors
    assert not partial.exists() and not (tmp_path / "out.mp4").exists()
    assert b"Traceback" not in errors


def test_variable_frame_rate_keeps_every_frame_time(tmp_path):
    from fractions import Fraction

    import av

    from x2face_edit.video import iter_frames

    # 25 frames at 25 fps, then 15 frames 0.12 s apart: what a phone's `-vsync vfr` capture gives.
    times = [i * 0.04 for i in range(25)] + [1.0 + 0.12 * j for j in range(15)]
    frames = moving_face_frames(len(times))
    video = tmp_path / "vfr.mp4"
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for time_s, rgb in zip(times, frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = round(time_s * 1000), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    _extract_and_paint(video, tmp_path)
    result = run("render", "--edited", tmp_path / "face.edit.png", "--drive", video, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    before = np.array([f.time for f in iter_frames(video)])
    after = np.array([f.time for f in iter_frames(tmp_path / "out.mp4")])
    assert len(after) == len(before) == 40
    assert np.abs((after - after[0]) - (before - before[0])).max() < 0.001


def test_a_phone_video_stored_sideways_is_tracked_and_written_upright(tmp_path):
    import av

    from x2face_edit.video import iter_frames, probe

    upright_frames = moving_face_frames(30)
    video = tmp_path / "phone.mp4"
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 240, 320, "yuv420p"  # stored sideways ...
        stream.set_display_rotation(-90)  # ... and played turned a quarter clockwise, upright
        for number, rgb in enumerate(upright_frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(rgb, k=1)), format="rgb24")
            frame.pts = number
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    info = probe(video)
    assert (info.width, info.height, info.rotation) == (320, 240, 270)
    first = next(iter_frames(video)).rgb
    assert first.shape == (240, 320, 3) and np.abs(first.astype(int) - upright_frames[0]).mean() < 6
    _extract_and_paint(video, tmp_path)
    result = run("render", "--edited", tmp_path / "face.edit.png", "--drive", video, "-o", tmp_path / "out.mp4")
    assert result.exit_code == 0, result.output
    out = probe(tmp_path / "out.mp4")
    assert (out.width, out.height, out.rotation) == (320, 240, 0)  # upright pixels play upright everywhere
    rendered = [f.rgb for f in iter_frames(tmp_path / "out.mp4")]
    assert np.abs(rendered[0][:40, :40].astype(int) - upright_frames[0][:40, :40]).mean() < 6


def _two_people(shared_clips, path, plan):
    """A 832x320 video of two real people, A (dpe_d) and B (iplap_129): ``plan`` lists
    (frames, who is where), who being {"A"/"B": left x} or {} for an empty grey frame."""
    from x2face_edit.video import iter_frames

    faces = {"A": iter(f.rgb for f in iter_frames(shared_clips / "dpe_d.mp4")),
             "B": iter(f.rgb for f in iter_frames(shared_clips / "iplap_129.mp4"))}
    with VideoWriter(path, fps=25, width=832, height=320) as writer:
        for count, placed in plan:
            for _ in range(count):
                frame = np.full((320, 832, 3), 100, np.uint8)
                for who, x in placed.items():
                    frame[32:288, x:x + 256] = next(faces[who])
                writer.write(frame)
    return path


def test_a_face_is_followed_by_who_it_is_wherever_it_returns(tmp_path, shared_clips):
    left, right = 32, 544
    # A on the left, hidden, A on the right, hidden, then B where A left off (B's face is
    # larger on screen: by place and size alone it would be the face to follow).
    video = _two_people(shared_clips, tmp_path / "two.mp4",
                        [(30, {"A": left}), (20, {}), (30, {"A": right}), (20, {}), (15, {"B": right})])
    found = track_video(video).found
    assert found[:30].all() and found[50:80].all()  # before: only B's 15 frames were followed
    assert not found[30:50].any() and not found[80:].any()

    # The sidecar knows who A is: rendering a shot where B is the larger face paints A.
    _extract_and_paint(video, tmp_path)
    assert "person" in json.loads((tmp_path / "face.json").read_text())
    both = _two_people(shared_clips, tmp_path / "both.mp4", [(20, {"B": left, "A": right})])
    assert run("render", "--edited", tmp_path / "face.edit.png", "--drive", both, "-o", tmp_path / "out.mp4").exit_code == 0
    painted = np.array([np.abs(a.astype(int) - b).max(axis=2) > 60 for a, b in zip(frames(tmp_path / "out.mp4"), frames(both))])
    assert painted[:, :, right:].mean() > 0.01 and painted[:, :, :right].sum() == 0
    # Footage where nobody looks like A: the most prominent face, with a warning.
    only_b = _two_people(shared_clips, tmp_path / "b.mp4", [(10, {"B": left})])
    result = run("render", "--edited", tmp_path / "face.edit.png", "--drive", only_b, "-o", tmp_path / "b_out.mp4")
    assert result.exit_code == 0 and "nobody in b.mp4 looks like" in result.output


def test_a_cut_to_someone_framed_alike_starts_a_new_person_at_the_cut(tmp_path, eval_clips):
    # Two MEAD speakers filmed in one studio, framed alike: one face box throughout, only
    # who it is changes. The cut is found in the frames themselves, so the new person
    # starts at the cut's frame; when only the 2-second descriptions noticed the change,
    # the first speaker was followed into the second's shot.
    from x2face_edit.video import iter_frames

    video = tmp_path / "cut.mp4"
    with VideoWriter(video, fps=25, width=256, height=256) as writer:
        for name in ("dreamtalk_W009_front_neutral_level1_001.mp4", "dreamtalk_W011_front_neutral_level1_001.mp4"):
            for frame in list(iter_frames(eval_clips / name))[:40]:
                writer.write(frame.rgb)
    track = track_video(video)
    first_followed = track.found[:40].all() and not track.found[40:].any()
    second_followed = track.found[40:].all() and not track.found[:40].any()
    assert first_followed or second_followed, np.flatnonzero(track.found)


def test_a_face_behind_a_hand_or_a_phone_is_still_followed(tmp_path, eval_clips):
    """A real held-out face with a hand over its mouth and nose (skin of the face's own
    tone) or a phone at its cheek for the middle 40 % of the clip: followed in every
    frame, its box within a tenth of its side of the clean clip's. The detector misses the
    face behind the hand; before, the track then lost it (headgan_driving: followed in 25 %
    of the covered frames) or split it where its descriptor changed."""
    from x2face_edit.synthetic import OCCLUDERS, occluded_frames, write_occluded_copy

    clip = eval_clips / "headgan_driving.mp4"
    clean = track_video(clip)
    covered = occluded_frames(clean.info.frame_count)
    for kind in OCCLUDERS:
        track = track_video(write_occluded_copy(clip, clean.face_boxes, kind, tmp_path / f"{kind}.mp4"))
        assert track.found.all(), (kind, np.flatnonzero(~track.found))
        side = clean.face_boxes[covered, 2] - clean.face_boxes[covered, 0]
        centres = [(boxes[covered, :2] + boxes[covered, 2:]) / 2 for boxes in (track.face_boxes, clean.face_boxes)]
        assert (np.linalg.norm(centres[0] - centres[1], axis=1) / side).max() < 0.1, kind

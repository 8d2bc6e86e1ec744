"""Paint made on a frame of the footage lands where it was put, and follows the face."""

import cv2
import numpy as np
import pytest
from helpers import frames, one_line_error, run
from PIL import Image

from x2face_edit.frame_paint import FrameEdit
from x2face_edit.synthetic import moving_face_motion, write_moving_face_video
from x2face_edit.tracking import track_video
from x2face_edit.video import frames_at


@pytest.fixture(scope="module")
def painted_frame(tmp_path_factory):
    """The synthetic moving face, its embedded face, frame 20 exported and a disc of paint
    on the face's cheek in that frame's layer."""
    folder = tmp_path_factory.mktemp("frame_paint")
    video = write_moving_face_video(folder / "face.mp4", count=40)
    assert run("extract", video, "-o", folder / "face.png").exit_code == 0
    result = run("frame", video, 20, "-o", folder / "frame.png")
    assert result.exit_code == 0, result.output
    track = track_video(video)
    x0, y0, x1, y1 = track.face_boxes[20]
    centre = (int(x0 + 0.3 * (x1 - x0)), int(y0 + 0.65 * (y1 - y0)))
    layer = np.array(Image.open(folder / "frame.edit.png"))
    cv2.circle(layer, centre, 9, (250, 20, 200, 255), -1)
    Image.fromarray(layer).save(folder / "frame.edit.png")
    return {"video": video, "folder": folder, "layer": layer, "track": track}


def test_the_frame_written_is_the_frame_render_counts(painted_frame):
    folder, video = painted_frame["folder"], painted_frame["video"]
    assert (np.array(Image.open(folder / "frame.png")) == frames_at(video, [20])[20]).all()
    edit = Image.open(folder / "frame.edit.png")
    assert edit.mode == "RGBA" and edit.size == Image.open(folder / "frame.png").size


def test_paint_made_on_a_frame_lands_there_and_follows_the_face(painted_frame):
    folder, video, layer, track = (painted_frame[k] for k in ("folder", "video", "layer", "track"))
    out = folder / "out.mkv"
    result = run("render", "--edited", folder / "frame.edit.png", "--frame", 20, "--sidecar", folder / "face.json",
                 "--drive", video, "-o", out, "--occlusion", "off")
    assert result.exit_code == 0, result.output
    rendered, plain = frames(out), frames(video)
    assert len(rendered) == len(plain) == 40
    painted = [np.abs(a.astype(int) - b).max(axis=2) > 40 for a, b in zip(rendered, plain)]
    put = layer[..., 3] > 127
    overlap = (painted[20] & put).sum() / (painted[20] | put).sum()
    assert overlap > 0.75, overlap  # in its own frame the paint is where it was put
    # Elsewhere it moves with the face: the disc's centre goes where the face's motion
    # (known: the synthetic face is moved by affine maps) takes that point of the face.
    motion = moving_face_motion(40)
    centre = np.array(np.nonzero(put)[::-1]).mean(axis=1)
    on_face = cv2.invertAffineTransform(motion[20]) @ np.append(centre, 1)
    side = track.face_boxes[20, 2] - track.face_boxes[20, 0]
    for index in (0, 10, 30, 39):
        assert painted[index].sum() > 0.5 * put.sum()
        where = np.array(np.nonzero(painted[index])[::-1]).mean(axis=1)
        assert np.linalg.norm(where - motion[index] @ np.append(on_face, 1)) < 0.05 * side, index


def test_paint_made_on_a_frame_renders_in_generate_mode_on_the_generated_face(painted_frame):
    """--mode generate pastes the whole generated face with the frame's paint on it: the
    disc is there in frame 20, and the face around it changes too (it is generated)."""
    folder, video, layer = (painted_frame[k] for k in ("folder", "video", "layer"))
    out = folder / "generated.mkv"
    result = run("render", "--edited", folder / "frame.edit.png", "--frame", 20, "--sidecar", folder / "face.json",
                 "--drive", video, "-o", out, "--mode", "generate", "--occlusion", "off")
    assert result.exit_code == 0, result.output
    rendered = frames(out)[20].astype(int)
    put = layer[..., 3] > 127
    colour = np.array([250, 20, 200])
    assert np.abs(rendered[put] - colour).max(axis=1).mean() < 40  # the paint's colour where it was put (measured 13)
    changed = np.abs(rendered - frames(video)[20]).max(axis=2) > 10
    assert changed[~put].sum() > 10 * put.sum()  # the generated face replaces the face, not only the disc (21x)


def test_bad_frame_paint_is_one_line(painted_frame, tmp_path):
    folder, video = painted_frame["folder"], painted_frame["video"]

    def render_with(*args):
        return run("render", "--edited", folder / "frame.edit.png", "--sidecar", folder / "face.json", "--drive", video,
                   "-o", tmp_path / "o.mp4", *args)

    one_line_error(render_with("--frame", 40), "frames 0-39")
    one_line_error(run("render", "--edited", folder / "face.edit.png", "--sidecar", folder / "face.json", "--drive", video,
                       "-o", tmp_path / "o.mp4", "--frame", 3), "frame 3 of face.mp4")
    one_line_error(run("frame", video, 40, "-o", tmp_path / "f.png"), "frames 0-39")
    one_line_error(run("frame", video, 4, "-o", tmp_path / "f.jpg"), ".png")
    one_line_error(run("frame", video, 4, "-o", folder / "frame.png"), "--force")
    assert not list(tmp_path.iterdir())


def test_preview_shows_paint_made_on_a_frame_where_render_puts_it(painted_frame):
    from x2face_edit.model import load_model_with_info
    from x2face_edit.paint import Paint, PaintOptions
    from x2face_edit.preview import PreviewOptions, preview_frames

    folder, video = painted_frame["folder"], painted_frame["video"]
    out = folder / "for_preview.mkv"
    assert run("render", "--edited", folder / "frame.edit.png", "--frame", 20, "--sidecar", folder / "face.json",
               "--drive", video, "-o", out, "--occlusion", "off").exit_code == 0
    rendered, plain = frames(out), frames(video)
    model, info = load_model_with_info()
    paint = Paint.read(folder / "frame.edit.png", folder / "face.json")
    painted_frames = (FrameEdit(folder / "frame.edit.png", 20),)
    shown = preview_frames(model, info, paint, video, PreviewOptions(count=4, paint=PaintOptions(occlusion="off"), painted_frames=painted_frames))
    assert [f.index for f in shown] == [5, 15, 25, 35]
    for item in shown:
        in_preview = np.abs(item.after.astype(int) - item.before).max(axis=2) > 40
        in_render = np.abs(rendered[item.index].astype(int) - plain[item.index]).max(axis=2) > 40
        assert in_render.sum() > 50
        assert (in_preview & in_render).sum() / (in_preview | in_render).sum() > 0.6, item.index
    sheet = folder / "sheet.png"
    result = run("preview", "--edited", folder / "frame.edit.png", "--frame", 20, "--sidecar", folder / "face.json",
                 "--drive", video, "-o", sheet)
    assert result.exit_code == 0, result.output
    assert Image.open(sheet).size[0] > 0


def test_paint_made_on_two_frames_merges_without_a_seam_and_the_better_view_wins(painted_frame, tmp_path):
    """A bar across the face, its left half painted on frame 9 (the face at its largest)
    and its right half on frame 29 (at its smallest), lands as one bar in every frame:
    no gap and no step where the halves meet. A disc painted red on frame 9 and blue on
    29 takes the colour of the frame that shows it larger."""
    folder, video = painted_frame["folder"], painted_frame["video"]
    motion, large, small = moving_face_motion(40), 9, 29
    bar = np.array([[48.0, 96.0], [112.0, 96.0]])  # on the face picture (160 x 160)
    join = bar.mean(axis=0)
    disc = np.array([80.0, 40.0])

    def to_frame(index, points):
        return cv2.transform(np.asarray(points, np.float64)[None], motion[index])[0]

    def painted_layer(index, half, colour):
        layer = np.zeros((240, 320, 4), np.uint8)
        ends = to_frame(index, [bar[0], join + (1, 0)] if half == "left" else [join - (1, 0), bar[1]])
        cv2.line(layer, *[tuple(int(v) for v in np.round(end)) for end in ends], (30, 230, 40, 255), 5)
        cv2.circle(layer, tuple(int(v) for v in np.round(to_frame(index, [disc])[0])), 8, (*colour, 255), -1)
        path = tmp_path / f"frame{index}.edit.png"
        Image.fromarray(layer).save(path)
        return path

    left, right = painted_layer(large, "left", (250, 20, 20)), painted_layer(small, "right", (20, 20, 250))
    out = tmp_path / "merged.mkv"
    result = run("render", "--edited", left, "--frame", large, "--edited", right, "--frame", small,
                 "--sidecar", folder / "face.json", "--drive", video, "-o", out, "--occlusion", "off")
    assert result.exit_code == 0, result.output
    rendered, plain = frames(out), frames(video)
    for index in (0, 19, 35):
        painted = np.abs(rendered[index].astype(int) - plain[index]).max(axis=2) > 40
        along = to_frame(index, np.linspace(bar[0] + (6, 0), bar[1] - (6, 0), 41))
        rows = np.round(along[:, 1]).astype(int)
        columns = np.round(along[:, 0]).astype(int)
        across = np.array([painted[max(r - 6, 0):r + 7, c].sum() for r, c in zip(rows, columns)])
        assert (across >= 3).all(), (index, across)  # painted all along the bar, through the join
        assert across[18:23].max() <= across.max() and np.abs(np.diff(across)).max() <= 3, (index, across)  # no step at the join
        centre = np.round(to_frame(index, [disc])[0]).astype(int)
        colour = rendered[index][centre[1] - 2:centre[1] + 3, centre[0] - 2:centre[0] + 3].reshape(-1, 3).mean(axis=0)
        # Frame 9 shows the disc 1.17 times as wide as frame 29 (measured: red ahead by 46-55; an even mix: 0)
        assert colour[0] - colour[2] > 30, (index, colour)


def test_several_frames_of_paint_need_a_frame_each(painted_frame, tmp_path):
    folder, video = painted_frame["folder"], painted_frame["video"]
    edit = folder / "frame.edit.png"

    def render_with(*args):
        return run("render", *args, "--sidecar", folder / "face.json", "--drive", video, "-o", tmp_path / "o.mp4")

    one_line_error(render_with("--edited", edit, "--edited", edit, "--frame", 20), "--edited PAINT --frame N")
    one_line_error(render_with("--edited", edit, "--frame", 20, "--frame", 21), "give the paint made on each frame")
    one_line_error(render_with("--edited", edit, "--frame", 20, "--edited", tmp_path / "missing.png", "--frame", 21), "no such file")
    assert not list(tmp_path.iterdir())

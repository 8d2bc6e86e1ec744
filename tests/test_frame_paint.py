"""Paint made on a frame of the footage lands where it was put, and follows the face."""

import cv2
import numpy as np
import pytest
from helpers import frames, one_line_error, run
from PIL import Image

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
    shown = preview_frames(model, info, paint, video, PreviewOptions(count=4, paint=PaintOptions(occlusion="off"), painted_frame=20))
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

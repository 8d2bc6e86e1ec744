"""extract, render and fit, through the command line, on synthetic and real videos."""

import json
from pathlib import Path

import av
import numpy as np
import pytest
from helpers import frames, one_line_error, run
from PIL import Image

from x2face_edit.embedding import source_frames
from x2face_edit.model import ModelConfig, X2Face, save_checkpoint
from x2face_edit.sidecar import read_sidecar
from x2face_edit.video import VideoWriter, iter_frames, probe


def test_extract_writes_the_face_a_paint_layer_and_a_sidecar(extracted, talking_video, tiny_model):
    face = Image.open(extracted)
    layer = Image.open(extracted.with_suffix(".edit.png"))
    sidecar = json.loads(extracted.with_suffix(".json").read_text())
    assert face.size == layer.size == (128, 128) and face.mode == "RGB"
    assert layer.mode == "RGBA" and np.asarray(layer)[..., 3].max() == 0
    assert len(set(sidecar["frames"])) == 3 and all(0 <= f < 40 for f in sidecar["frames"])
    assert (extracted.parent / sidecar["video"]).resolve() == talking_video.resolve() == Path(sidecar["video_absolute"])
    assert sidecar["face"] == 0
    assert sidecar["model"]["config"] == {"resolution": 64, "width": 8, "original_release": False, "landmark_template": None}
    # The embedded face is made of the video's pixels: the astronaut's colours, not the background's.
    assert np.asarray(face).std() > 20
    # The source frames' times, by which render seeks to them: the frames decoded in order.
    decoded = {frame.index: frame for frame in iter_frames(talking_video)}
    assert sidecar["times"] == [decoded[i].time for i in sidecar["frames"]]
    sources, _ = source_frames(read_sidecar(extracted.with_suffix(".json")))
    assert all(np.array_equal(source, decoded[i].rgb) for source, i in zip(sources, sidecar["frames"]))


def test_extract_with_chosen_frames_and_no_overwrite(extracted, talking_video, tiny_model):
    result = run("extract", talking_video, "-o", extracted, "--model", tiny_model, "--size", "128", "--frames", "3,20")
    one_line_error(result, "exists", "--force")
    result = run("extract", talking_video, "-o", extracted, "--model", tiny_model, "--size", "128", "--frames", "3,20", "--force")
    assert result.exit_code == 0, result.output
    assert json.loads(extracted.with_suffix(".json").read_text())["frames"] == [3, 20]


def test_render_keeps_frames_rate_sound_and_the_untouched_corners(tmp_path, extracted, talking_video, painted_layer):
    out = tmp_path / "out.mp4"
    result = run("render", "--edited", painted_layer, "--sidecar", extracted.with_suffix(".json"), "--drive", talking_video, "-o", out)
    assert result.exit_code == 0, result.output
    source, rendered = probe(talking_video), probe(out)
    assert (rendered.frame_count, rendered.fps, rendered.width, rendered.height) == (40, source.fps, 320, 240)
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(40 / 25, abs=0.07)
    # Far from the face, the input's own pixels: the decoded picture goes back to the
    # encoder as it is (no RGB round trip), so only x264's rounding at CRF 16 is left.
    for a, b in zip(frames(out), frames(talking_video)):
        assert np.abs(a[:32, :32].astype(int) - b[:32, :32]).max() <= 2


def test_unpainted_layers_and_outputs_over_inputs_are_refused(tmp_path, extracted, talking_video, painted_layer):
    one_line_error(run("render", "--edited", extracted.with_suffix(".edit.png"), "--drive", talking_video, "-o", tmp_path / "o.mp4"),
                    "no paint")
    # A painted copy with one erased pixel is still a painted copy, not a layer of the whole face.
    copy = np.asarray(Image.open(extracted).convert("RGBA")).copy()
    copy[0, 0, 3] = 0
    Image.fromarray(copy).save(tmp_path / "copy.png")
    one_line_error(run("render", "--edited", tmp_path / "copy.png", "--sidecar", extracted.with_suffix(".json"),
                         "--drive", talking_video, "-o", tmp_path / "o.mp4"), "no paint")
    same = tmp_path / "same.mp4"
    same.write_bytes(talking_video.read_bytes())
    one_line_error(run("render", "--edited", painted_layer, "--sidecar", extracted.with_suffix(".json"), "--drive", same,
                         "-o", same, "--force"), "also an input")
    one_line_error(run("render", "--edited", tmp_path / "gone.png", "--drive", talking_video, "-o", tmp_path / "o.mp4"),
                    "no such file")
    assert not (tmp_path / "o.mp4").exists()


def test_a_project_folder_moved_as_a_whole_still_renders(tmp_path, talking_video, tiny_model, painted_layer):
    project = tmp_path / "project"
    project.mkdir()
    (project / "talk.mp4").write_bytes(talking_video.read_bytes())
    assert run("extract", project / "talk.mp4", "-o", project / "face.png", "--model", tiny_model, "--size", "128").exit_code == 0
    (project / "face.edit.png").write_bytes(painted_layer.read_bytes())
    moved = project.rename(tmp_path / "moved")
    result = run("render", "--edited", moved / "face.edit.png", "--drive", moved / "talk.mp4", "-o", moved / "out.mp4")
    assert result.exit_code == 0, result.output


def test_paint_changes_the_face_and_nothing_else(tmp_path, extracted, talking_video):
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[40:88, 40:88] = (255, 0, 255, 255)  # a big magenta square in the middle of the face
    painted = tmp_path / "face.edit.png"
    Image.fromarray(layer).save(painted)
    out = tmp_path / "out.mp4"
    result = run("render", "--edited", painted, "--sidecar", extracted.with_suffix(".json"), "--drive", talking_video, "-o", out)
    assert result.exit_code == 0, result.output
    changed = [np.abs(a.astype(int) - b).max(axis=2) > 60 for a, b in zip(frames(out), frames(talking_video))]
    assert all(c.sum() > 50 for c in changed)  # the paint is in every frame
    # ... and only near the moving face: never in the frame's corners.
    assert not any(c[:30, :30].any() or c[-30:, -30:].any() for c in changed)


def test_generate_mode_pastes_the_whole_face(tmp_path, extracted, talking_video):
    out = tmp_path / "generated.mp4"
    result = run("render", "--edited", extracted, "--drive", talking_video, "-o", out, "--mode", "generate", "--lock", "none")
    assert result.exit_code == 0, result.output
    changed = [np.abs(a.astype(int) - b).max(axis=2) > 30 for a, b in zip(frames(out), frames(talking_video))]
    assert min(c.sum() for c in changed) > 2000


def test_bad_inputs_fail_in_one_line(tmp_path, extracted, talking_video, tiny_model):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    empty = tmp_path / "empty.avi"  # a video stream with no frames (MP4 drops an empty track)
    with av.open(str(empty), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = 64
        container.start_encoding()
    faceless = tmp_path / "faceless.mp4"
    with VideoWriter(faceless, fps=25, width=160, height=120) as writer:
        for i in range(10):
            writer.write(np.full((120, 160, 3), 20 * i, np.uint8))
    wrong_size = tmp_path / "wrong.png"
    Image.new("RGB", (100, 100)).save(wrong_size)
    other_model = tmp_path / "other.pt"
    save_checkpoint(other_model, X2Face(ModelConfig(64, 8)))
    sidecar = extracted.with_suffix(".json")
    layer = extracted.with_suffix(".edit.png")
    out = tmp_path / "out.mp4"

    one_line_error(run("extract", tmp_path / "missing.mp4", "-o", tmp_path / "f.png", "--model", tiny_model), "no such file")
    one_line_error(run("extract", text, "-o", tmp_path / "f.png", "--model", tiny_model), "not a video file")
    one_line_error(run("extract", empty, "-o", tmp_path / "f.png", "--model", tiny_model), "no frames")
    one_line_error(run("extract", faceless, "-o", tmp_path / "f.png", "--model", tiny_model), "no face found")
    one_line_error(run("extract", talking_video, "-o", tmp_path / "nowhere" / "f.png", "--model", tiny_model), "output folder does not exist")
    one_line_error(run("extract", talking_video, "-o", tmp_path / "f.jpg", "--model", tiny_model), "write the embedded face as .png")
    one_line_error(run("render", "--edited", wrong_size, "--sidecar", sidecar, "--drive", talking_video, "-o", out),
                    "100x100", "128x128")
    one_line_error(run("render", "--edited", layer, "--drive", talking_video, "-o", out, "--model", other_model),
                    "another model")
    one_line_error(run("render", "--edited", layer, "--drive", talking_video, "-o", tmp_path / "nowhere" / "o.mp4"),
                    "output folder does not exist")
    one_line_error(run("render", "--edited", layer, "--sidecar", tmp_path / "none.json", "--drive", talking_video, "-o", out),
                    "sidecar not found")
    painted = tmp_path / "face.edit.png"
    Image.fromarray(np.full((128, 128, 4), (255, 0, 0, 255), np.uint8)).save(painted)
    one_line_error(run("render", "--edited", painted, "--sidecar", sidecar, "--drive", faceless, "-o", out), "no face found")
    bad_checkpoint = tmp_path / "bad.pt"
    bad_checkpoint.write_bytes(b"\x00" * 100)
    one_line_error(run("extract", talking_video, "-o", tmp_path / "f.png", "--model", bad_checkpoint), "not a readable checkpoint")
    assert not out.exists() and not (tmp_path / "f.png").exists()
    assert not list(tmp_path.glob(".*partial*"))


def test_fit_adapts_the_model_to_the_video(tmp_path, talking_video, tiny_model):
    out = tmp_path / "fitted.pt"
    result = run("fit", talking_video, "-o", out, "--model", tiny_model, "--steps", "8", "--seconds", "60")
    assert result.exit_code == 0, result.output
    import torch

    fitted = torch.load(out, weights_only=True)
    original = torch.load(tiny_model, weights_only=True)
    assert fitted["meta"]["step"] == 8 and "training_state" not in fitted
    changed = [name for name, tensor in fitted["state_dict"].items()
               if tensor.is_floating_point() and not torch.equal(tensor, original["state_dict"][name])]
    assert len(changed) > 10


def test_render_on_a_real_clip_keeps_its_timing_and_sound(tmp_path, shared_clips, tiny_model):
    clip = shared_clips / "pcavs_Input_00002.mp4"  # 224x224 at 25 fps, AAC sound, a face turning away
    face = tmp_path / "face.png"
    assert run("extract", clip, "-o", face, "--model", tiny_model, "--size", "128").exit_code == 0
    layer = np.zeros((128, 128, 4), np.uint8)
    layer[60:70, 60:70] = (0, 255, 0, 255)
    Image.fromarray(layer).save(tmp_path / "face.edit.png")
    out = tmp_path / "out.mp4"
    result = run("render", "--edited", tmp_path / "face.edit.png", "--drive", clip, "-o", out)
    assert result.exit_code == 0, result.output
    source, rendered = probe(clip), probe(out)
    assert (rendered.frame_count, rendered.fps, rendered.width, rendered.height) == (126, source.fps, 224, 224)
    with av.open(str(out)) as ours, av.open(str(clip)) as theirs:
        durations = [float(c.streams.audio[0].duration * c.streams.audio[0].time_base) for c in (ours, theirs)]
    assert durations[0] == pytest.approx(durations[1], abs=0.03)


def test_render_fit_adapts_the_driving_network_and_keeps_the_paint_valid(tmp_path, extracted, talking_video, painted_layer):
    out = tmp_path / "out.mp4"
    # Without paint, refused at once rather than after the fit.
    one_line_error(run("render", "--edited", extracted.with_suffix(".edit.png"), "--drive", talking_video, "-o", out, "--fit", "20"),
                    "no paint")
    assert not (tmp_path / "out.model.pt").exists()
    result = run("render", "--edited", painted_layer, "--sidecar", extracted.with_suffix(".json"), "--drive", talking_video,
                  "-o", out, "--fit", "20")
    assert result.exit_code == 0, result.output
    import torch

    fitted = torch.load(tmp_path / "out.model.pt", weights_only=True)["state_dict"]
    original = torch.load(json.loads(extracted.with_suffix(".json").read_text())["model"]["path"], weights_only=True)["state_dict"]
    for name, tensor in fitted.items():
        same = torch.equal(tensor, original[name])
        assert same if name.startswith("embedding_") else True, name
    assert any(not torch.equal(t, original[n]) for n, t in fitted.items() if n.startswith("driving_") and t.is_floating_point())
    assert probe(out).frame_count == 40

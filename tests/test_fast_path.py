"""The fast render path (threads, batches, bf16, torch.compile) against the simple one,
and the thread helpers it is built on."""

import threading
import time

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from x2face_edit import extract as extracting
from x2face_edit.faces import crop
from x2face_edit.model import ModelInfo, default_model_path, load_model
from x2face_edit.model.checkpoint import file_fingerprint
from x2face_edit.model.images import to_tensor
from x2face_edit.model.inference import BF16_GRID_TOLERANCE, GridPredictor, InferenceOptions
from x2face_edit.paint import Paint, PaintOptions
from x2face_edit.pipeline import InOrderWorker, opencv_in_one_thread, read_ahead
from x2face_edit.render import RenderOptions, render
from x2face_edit.synthetic import write_moving_face_video
from x2face_edit.tracking import track_video
from x2face_edit.video import iter_frames


def test_read_ahead_keeps_order_and_raises_the_producers_error_in_place():
    def frames():
        yield from range(5)
        raise ValueError("frame 5 is corrupt")

    seen = []
    with pytest.raises(ValueError, match="frame 5 is corrupt"):
        for item in read_ahead(frames(), depth=2):
            seen.append(item)
    assert seen == [0, 1, 2, 3, 4]


def test_read_ahead_stops_producing_when_the_caller_stops():
    produced = []

    def endless():
        while True:
            produced.append(len(produced))
            yield produced[-1]

    for item in read_ahead(endless(), depth=3):
        if item == 10:
            break
    count = len(produced)
    time.sleep(0.2)
    assert len(produced) == count <= 10 + 3 + 2
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_opencv_is_given_back_its_threads_when_the_last_of_overlapping_runs_ends():
    """Two runs that overlap (the studio renders and exports at once), the first to start
    ending first: OpenCV stays in one thread until the second ends, then has its own back."""
    before = cv2.getNumThreads()
    first, second = opencv_in_one_thread(), opencv_in_one_thread()
    first.__enter__()
    assert cv2.getNumThreads() == 1
    second.__enter__()
    first.__exit__(None, None, None)
    assert cv2.getNumThreads() == 1
    second.__exit__(None, None, None)
    assert cv2.getNumThreads() == before


def test_in_order_worker_runs_calls_in_order_and_hands_back_their_errors():
    done = []
    with InOrderWorker(depth=2) as worker:
        for i in range(50):
            worker.submit(lambda i=i: (time.sleep(0.001 * (i % 3)), done.append(i)))
    assert done == list(range(50))

    def fail() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), InOrderWorker() as worker:
        worker.submit(fail)
        for i in range(20):
            worker.submit(done.append, i)


@pytest.fixture(scope="module")
def painted(tmp_path_factory):
    """The shipped model, a synthetic talking head, and a red disk painted on its face."""
    folder = tmp_path_factory.mktemp("fast")
    video = write_moving_face_video(folder / "drive.mp4", count=30, fps=25, tone_hz=300)
    model_path = default_model_path()
    model = load_model(model_path)
    info = ModelInfo(str(model_path.resolve()), file_fingerprint(model_path))
    track = track_video(video)
    face = extracting.extract(model, info, video, track, size=256)
    _, layer_png, _, sidecar_path = extracting.save(face, folder / "face.png")
    layer = Image.open(layer_png)
    ImageDraw.Draw(layer).ellipse((90, 140, 130, 180), fill=(230, 20, 20, 255))
    layer.save(layer_png)
    return {"model": model, "info": info, "video": video, "track": track, "layer": layer_png,
            "paint": Paint.read(layer_png, sidecar_path), "folder": folder}


def _render(painted, name: str, options: InferenceOptions, overlap: bool, lock: str = "landmarks") -> np.ndarray:
    out = painted["folder"] / name
    render(painted["model"], painted["info"], painted["paint"], painted["video"], out,
           # Occlusion off: these tests compare arithmetic paths, and the matte (tested in
           # test_occlusion.py) would take part of the disk in some frames of this face.
           RenderOptions(PaintOptions(lock=lock, occlusion="off"), inference=options, overlap=overlap), track=painted["track"])
    return np.stack([frame.rgb for frame in iter_frames(out, fps=25)]).astype(np.int16)


def test_overlapped_batched_render_matches_the_one_frame_at_a_time_render(painted):
    # Lossless frames (a png sequence): an encoder turns a one-level change of a pixel into
    # larger changes of its neighbours, which would hide what the paths themselves do.
    for lock in ("none", "landmarks"):
        simple = _render(painted, f"simple_{lock}_%03d.png", InferenceOptions(precision="fp32", batch=1), overlap=False, lock=lock)
        fast = _render(painted, f"fast_{lock}_%03d.png", InferenceOptions(precision="fp32", batch=8), overlap=True, lock=lock)
        assert simple.shape[0] == 30
        # Batching may change float round-off in the last bit (1e-7 grid units), which moves
        # a composited pixel by one level at most.
        assert np.abs(fast - simple).max() <= 1
        assert np.mean(fast != simple) < 1e-3


def _crops(painted) -> torch.Tensor:
    track, resolution = painted["track"], painted["model"].config.resolution
    return to_tensor([crop(f.rgb, track.crop_box(f.index), resolution) for f in iter_frames(painted["video"])])


def test_bf16_grids_stay_within_the_stated_tolerance_of_fp32(painted):
    crops = _crops(painted)
    fp32 = GridPredictor(painted["model"], InferenceOptions(precision="fp32"))(crops)
    bf16 = GridPredictor(painted["model"], InferenceOptions(precision="bf16"))(crops)
    deviation = (bf16 - fp32).abs().amax(dim=-1)
    assert deviation.flatten().quantile(0.99) < BF16_GRID_TOLERANCE
    assert deviation.mean() < BF16_GRID_TOLERANCE / 4


def test_bf16_render_puts_the_paint_where_fp32_puts_it(painted):
    fp32 = _render(painted, "fp32.mp4", InferenceOptions(precision="fp32"), overlap=True)
    bf16 = _render(painted, "bf16.mp4", InferenceOptions(precision="bf16"), overlap=True)
    unpainted = np.stack([frame.rgb for frame in iter_frames(painted["video"])]).astype(np.int16)
    fp32_disk, bf16_disk = (np.abs(v - unpainted).max(axis=-1) > 40 for v in (fp32, bf16))
    assert fp32_disk.sum(axis=(1, 2)).min() > 100  # the disk is in every frame
    shift = np.linalg.norm(_centroids(bf16_disk) - _centroids(fp32_disk), axis=1)
    print(f"paint centroid shift bf16 vs fp32: mean {shift.mean():.3f} px, max {shift.max():.3f} px")
    assert shift.max() < 0.5


def _centroids(masks: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[: masks.shape[1], : masks.shape[2]]
    return np.stack([(masks * xs).sum(axis=(1, 2)), (masks * ys).sum(axis=(1, 2))], axis=1) / masks.sum(axis=(1, 2))[:, None]


def test_compiled_predictor_matches_eager(painted):
    pytest.importorskip("torch._inductor")
    crops = _crops(painted)[:8]
    eager = GridPredictor(painted["model"], InferenceOptions(precision="fp32"))(crops)
    compiled = GridPredictor(painted["model"], InferenceOptions(precision="fp32", compile=True))(crops)
    assert (compiled - eager).abs().max() < 1e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_render_matches_cpu_render(painted):
    cpu = _render(painted, "cpu.mp4", InferenceOptions(precision="fp32"), overlap=True)
    cuda = _render(painted, "cuda.mp4", InferenceOptions(device="cuda", precision="fp32"), overlap=True)
    painted["model"].to("cpu")
    assert np.abs(cuda - cpu).mean() < 0.1


def test_compositing_only_the_paints_footprint_changes_nothing():
    """``paint_bounds`` limits warping and blending to the pixels the paint can reach: the
    frame comes out the same as compositing over the whole crop box, also where the warp
    puts the paint out of view (then the frame is untouched)."""
    from x2face_edit.paint import composite, paint_bounds

    layer = torch.zeros(4, 256, 256)
    layer[0, 100:130, 60:90] = layer[3, 100:130, 60:90] = 1.0  # a red square
    identity = torch.stack(torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")[::-1], dim=-1)
    generator = np.random.default_rng(0)
    for shift in (0.0, 0.2, 3.0):  # 3.0: the grid samples far outside the embedded face
        grid = identity * 0.9 + shift + 0.02 * torch.sin(identity * 7)
        frame = generator.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
        whole, limited = frame.copy(), frame.copy()
        box = np.array([400.3, 100.7, 900.3, 600.7])
        composite(whole, box, grid, layer)
        composite(limited, box, grid, layer, paint_bounds(layer))
        assert np.array_equal(whole, limited)
        assert (shift == 3.0) == np.array_equal(limited, frame)

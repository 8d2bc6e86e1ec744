import json

import numpy as np
from click.testing import CliRunner
from PIL import Image

from x2face_edit.cli import main
from x2face_edit.model.data import TrackPairs, load_tracks, split_identities, tracks_in_split
from x2face_edit.prepare import PrepareOptions, prepare


def test_synthetic_video_gives_one_track_of_face_crops(tmp_path, synthetic_video):
    manifest = prepare([synthetic_video], tmp_path, options=PrepareOptions(size=96, sample_fps=10))
    assert len(manifest["tracks"]) == 1
    track = manifest["tracks"][0]
    record = json.loads((tmp_path / track["path"] / "track.json").read_text())
    # 40 frames at 25 fps analysed at 10 fps: 16 frames, each with a face.
    assert track["frames"] == len(record["frames"]) == 16
    times = [f["time"] for f in record["frames"]]
    assert times == sorted(times) and times[1] - times[0] == 0.12  # 3 frames of 25 fps
    for frame in record["frames"]:
        assert Image.open(tmp_path / track["path"] / frame["file"]).size == (96, 96)
        x0, y0, x1, y1 = frame["box"]
        assert abs((x1 - x0) - (y1 - y0)) <= 0.02  # square VoxCeleb crop (corners recorded to 0.01 px)
    # The face is in the middle of the crop: its centre is brighter than the flat background.
    crop = np.asarray(Image.open(tmp_path / track["path"] / record["frames"][0]["file"])).astype(float)
    assert abs(crop[40:56, 40:56].mean() - crop.mean()) < 80


def test_prepare_resumes_instead_of_redoing(tmp_path, synthetic_video):
    prepare([synthetic_video], tmp_path, options=PrepareOptions(size=64, sample_fps=5))
    record = tmp_path / synthetic_video.name / "video.json"
    stamp = record.stat().st_mtime_ns
    seen = []
    prepare([synthetic_video], tmp_path, options=PrepareOptions(size=64, sample_fps=5),
            on_video_done=lambda video, rec, err: seen.append((rec is not None, err)))
    assert record.stat().st_mtime_ns == stamp
    assert seen == [(True, None)]


def test_real_clip_gives_one_track_of_the_right_size(tmp_path, shared_clips):
    result = CliRunner().invoke(main, ["prepare", str(shared_clips / "lipnet_bbaf2n.mpg"), "-o", str(tmp_path), "--size", "128", "--sample-fps", "2"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest["tracks"]) == 1
    assert manifest["size"] == 128
    track_dir = tmp_path / manifest["tracks"][0]["path"]
    crops = sorted(track_dir.glob("*.jpg"))
    assert len(crops) == manifest["tracks"][0]["frames"] == 6  # 3 s at 2 fps
    assert {Image.open(c).size for c in crops} == {(128, 128)}


def test_unreadable_videos_are_reported_and_skipped(tmp_path, synthetic_video):
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "broken.mp4").write_bytes(b"this is not a video")
    (videos / "good.mp4").write_bytes(synthetic_video.read_bytes())
    result = CliRunner().invoke(main, ["prepare", str(videos), "-o", str(tmp_path / "out"), "--size", "64", "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "broken.mp4: not a video file" in result.output
    assert "1 tracks" in result.output


def test_prepare_of_a_missing_folder_fails_in_one_line(tmp_path):
    result = CliRunner().invoke(main, ["prepare", str(tmp_path / "nope"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: not a folder: {tmp_path / 'nope'}"


def test_identity_split_holds_out_whole_identities():
    identities = [f"person{i}" for i in range(20)]
    split = split_identities(identities, seed=0)
    counts = {name: sum(1 for s in split.values() if s == name) for name in ("train", "val", "test")}
    assert counts == {"train": 15, "val": 3, "test": 2}
    assert split == split_identities(list(reversed(identities)), seed=0)
    assert split != split_identities(identities, seed=1)
    assert set(split_identities(["a", "b"]).values()) == {"train"}


def test_pairs_come_from_one_track(synthetic_tracks):
    tracks = load_tracks(synthetic_tracks)
    train = tracks_in_split(tracks, "train")
    val = tracks_in_split(tracks, "val")
    assert train and val and not {t.identity for t in train} & {t.identity for t in val}
    pairs = TrackPairs(train, num_sources=3, size=64)
    assert len(pairs) == sum(len(t.frames) for t in train)
    sources, driving = pairs[0]
    assert sources.shape == (3, 3, 64, 64) and driving.shape == (3, 64, 64)
    assert 0 <= float(sources.min()) and float(sources.max()) <= 1
    # Sources are other frames than the driving frame.
    assert all(not (s == driving).all() for s in sources)

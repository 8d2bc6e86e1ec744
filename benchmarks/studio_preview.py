"""How long the studio page takes to answer a preview (issue 29's target: 6 frames of a
720p clip within 5 s of the request on this CPU), through the page's own HTTP route.

    python benchmarks/studio_preview.py [--seconds 20] [--size 1280x720] [--repeats 3]

A synthetic 720p video of the moving astronaut (the face a quarter of the frame's width)
is written, the studio started on it (it extracts the embedded face, as the page does on
a new video), a disc painted on the face's layer, and ``POST /api/preview`` timed from the
request to the answer, then each preview picture fetched. The first request includes
loading the model; the others are what a user sees on every later click. Then a render
is started and its progress polled as the page does: how long each answer takes and the
longest time the progress stands still (target: it moves at least once a second).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from x2face_edit.cli import studio_work
from x2face_edit.studio import Studio, StudioOptions, serve
from x2face_edit.synthetic import write_moving_face_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as folder:
        video = write_moving_face_video(Path(folder) / "clip.mp4", int(args.seconds * 25), width=width, height=height,
                                        face_size=width // 4)
        studio = Studio(video, studio_work(), StudioOptions())
        server = serve(studio)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started = time.perf_counter()
        studio.start_extract()
        while studio.extracting.running or not studio.sidecar.is_file():
            if studio.extracting.error:
                raise SystemExit(studio.extracting.error)
            time.sleep(0.2)
        print(f"{args.size}, {int(args.seconds * 25)} frames: embedded face extracted in {time.perf_counter() - started:.1f} s")
        size = Image.open(studio.face_png).size[0]
        layer = np.zeros((size, size, 4), np.uint8)
        cv2.circle(layer, (size // 3, int(size * 0.62)), size // 14, (230, 30, 200, 255), -1)
        Image.fromarray(layer).save(studio.face_layer)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for repeat in range(args.repeats):
            started = time.perf_counter()
            request = urllib.request.Request(f"{base}/api/preview?frame=face", method="POST", data=b"",
                                             headers={"X-Studio-Token": studio.token})
            with urllib.request.urlopen(request) as answer:
                count = int(json.loads(answer.read())["count"])
            answered = time.perf_counter() - started
            for n in range(count):
                with urllib.request.urlopen(f"{base}/api/preview?n={n}&token={studio.token}") as answer:
                    answer.read()
            fetched = time.perf_counter() - started
            print(f"preview {repeat + 1}{' (model loaded)' if repeat == 0 else ''}: {count} frames answered in "
                  f"{answered:.2f} s, pictures fetched by {fetched:.2f} s")
        # While a render runs: how quickly the page's progress request is answered, and how
        # often the progress it shows moves.
        request = urllib.request.Request(f"{base}/api/render", method="POST", data=b"{}", headers={"X-Studio-Token": studio.token})
        urllib.request.urlopen(request).read()
        started, latencies, moves, last = time.perf_counter(), [], [], None
        while True:
            asked = time.perf_counter()
            with urllib.request.urlopen(f"{base}/api/state?token={studio.token}") as answer:
                progress = json.loads(answer.read())["render"]
            latencies.append(time.perf_counter() - asked)
            if progress["done"] != last:
                moves.append(time.perf_counter())
                last = progress["done"]
            if not progress["running"]:
                break
            time.sleep(0.2)
        gaps = np.diff(moves) if len(moves) > 1 else np.zeros(1)
        print(f"render of {studio.info.frame_count} frames in {time.perf_counter() - started:.1f} s"
              f"{' (error: ' + progress['error'] + ')' if progress['error'] else ''}: progress answered in at most "
              f"{max(latencies) * 1000:.0f} ms (median {np.median(latencies) * 1000:.0f}), moved at least every {gaps.max():.2f} s")
        server.shutdown()


if __name__ == "__main__":
    main()

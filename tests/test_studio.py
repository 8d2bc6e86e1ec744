"""The studio page, driven in a real browser (Debian's Chromium through Playwright)."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from helpers import run
from PIL import Image

from x2face_edit.cli import studio_work
from x2face_edit.preview import spread_frames
from x2face_edit.studio import Studio, StudioOptions, address, serve
from x2face_edit.synthetic import write_moving_face_video
from x2face_edit.video import iter_frames

STROKE_COLOUR = (255, 0, 255)
SCREENSHOT = os.environ.get("X2FACE_STUDIO_SCREENSHOT")  # where a README screenshot is wanted


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("X2FACE_EDIT_CI"):  # CI installs it: a missing browser is a failure there
            pytest.fail("no chromium on PATH (apt-get install -y chromium)")
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    return found


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    """A studio serving a fresh video of a moving face (no embedded face yet: the page
    has it extracted), in a thread of this process."""
    folder = tmp_path_factory.mktemp("studio")
    with _served(write_moving_face_video(folder / "clip.mp4", count=40, fps=25, tone_hz=330)) as served:
        yield served


@contextmanager
def _served(video: Path):
    """A studio of ``video`` and its server, serving in a thread of this process."""
    page = Studio(video, studio_work(), StudioOptions())
    server = serve(page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield page, server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def painted_page(studio, browser):
    """The page, opened at the printed address, a magenta stroke painted with the mouse
    across the embedded face's left cheek."""
    page_state, server = studio
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(address(server))
    page.wait_for_selector("body[data-ready=true]", timeout=180_000)
    page.eval_on_selector("#colour", "(e, c) => { e.value = c; }", "#" + bytes(STROKE_COLOUR).hex())
    page.eval_on_selector("#size", "e => { e.value = '24'; }")
    box = page.locator("#paint").bounding_box()
    size = page.eval_on_selector("#paint", "e => e.width")
    points = [(0.30 * size, 0.62 * size), (0.40 * size, 0.66 * size)]
    to_page = [(box["x"] + x * box["width"] / size, box["y"] + y * box["height"] / size) for x, y in points]
    page.mouse.move(*to_page[0])
    page.mouse.down()
    page.mouse.move(*to_page[1], steps=12)
    page.mouse.up()
    page.wait_for_function("document.getElementById('status').textContent === 'paint saved'")
    yield page, page_state, server, points
    page.close()


def _get(server, path: str, token: str | None, host: str | None = None) -> tuple[int, bytes]:
    port = server.server_address[1]
    query = "" if token is None else ("&" if "?" in path else "?") + f"token={token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}{query}")
    if host:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _post(server, path: str, token: str, body: bytes) -> tuple[int, bytes]:
    port = server.server_address[1]
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST",
                                     headers={"X-Studio-Token": token})
    try:
        with urllib.request.urlopen(request) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _sound(path: Path) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


def _stroke_mask(rgb: np.ndarray) -> np.ndarray:
    """Where a picture shows the stroke's colour (magenta: nothing else on the synthetic face is)."""
    rgb = rgb.astype(int)
    return (rgb[..., 0] > 150) & (rgb[..., 2] > 150) & (rgb[..., 1] < 110)


def test_the_stroke_is_saved_where_the_command_line_reads_it(painted_page):
    _, studio, _, points = painted_page
    layer = np.asarray(Image.open(studio.face_layer))
    assert layer.shape == (*Image.open(studio.face_png).size[::-1], 4)
    for x, y in points:
        assert layer[int(y), int(x), 3] == 255
        assert tuple(layer[int(y), int(x), :3]) == STROKE_COLOUR
    painted = layer[..., 3] > 0
    assert 400 < painted.sum() < 0.05 * painted.size  # a stroke, not the canvas
    ys, xs = np.nonzero(painted)
    assert abs(xs.mean() - np.mean([p[0] for p in points])) < 6 and abs(ys.mean() - np.mean([p[1] for p in points])) < 6


def test_undo_and_redo_take_the_stroke_off_and_back(painted_page):
    page, studio, _, _ = painted_page
    before = np.asarray(Image.open(studio.face_layer))
    page.click("#undo")
    _wait_for(lambda: np.asarray(Image.open(studio.face_layer))[..., 3].max() == 0)
    page.click("#redo")
    _wait_for(lambda: (np.asarray(Image.open(studio.face_layer)) == before).all())


def _wait_for(condition, timeout: float = 10.0) -> None:
    """Until ``condition()`` holds (the page saves its paint a moment after a change)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the page did not save the paint in time"
        time.sleep(0.1)


def test_preview_and_render_show_the_stroke_where_the_command_line_puts_it(painted_page, tmp_path):
    page, studio, server, _ = painted_page
    started = time.monotonic()
    page.click("#preview")
    page.wait_for_function("document.getElementById('status').textContent === 'preview ready'", timeout=60_000)
    page.wait_for_function("[...document.querySelectorAll('#previews img')].every(i => i.complete && i.naturalWidth > 0)")
    previewed = time.monotonic() - started
    shown = spread_frames(studio.info.frame_count, studio.options.preview_frames)
    assert page.locator("#previews img").count() == len(shown)
    previews = []
    for n in range(len(shown)):
        status, data = _get(server, f"/api/preview?n={n}", studio.token)
        assert status == 200
        previews.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))

    page.click("#render")
    page.wait_for_selector("#rendered:not([hidden])", timeout=300_000)
    rendered = studio.renders / f"{studio.video.stem}.painted.mp4"
    assert rendered.is_file()
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)
    cli = tmp_path / "cli.mp4"
    result = run("render", "--edited", studio.face_layer, "--drive", studio.video, "-o", cli)
    assert result.exit_code == 0, result.output
    # The page's render is the command line's: pixel for pixel and sound packet for packet in
    # the video (x264 does not always write the same stream for the same pictures), byte
    # for byte as a PNG sequence.
    frames = [f.rgb for f in iter_frames(rendered)]
    assert len(frames) == studio.info.frame_count
    assert all((a == b.rgb).all() for a, b in zip(frames, iter_frames(cli), strict=True))
    assert _sound(rendered) == _sound(cli) and len(_sound(cli)) > 10
    page.fill("#output-name", "page_%03d.png")
    page.click("#render")
    page.wait_for_function("(t => t !== 'rendered: clip.painted.mp4' && !t.startsWith('rendering'))"
                           "(document.getElementById('status').textContent)", timeout=300_000)
    assert page.text_content('#status') == 'rendered: page_%03d.png', page.text_content('#status')
    assert run("render", "--edited", studio.face_layer, "--drive", studio.video, "-o", tmp_path / "cli_%03d.png").exit_code == 0
    pages, clis = sorted(studio.renders.glob("page_*.png")), sorted(tmp_path.glob("cli_*.png"))
    assert len(pages) == studio.info.frame_count and [p.read_bytes() for p in pages] == [p.read_bytes() for p in clis]
    overlaps = {}
    for index, preview in zip(shown, previews):
        in_render, in_preview = _stroke_mask(frames[index]), _stroke_mask(preview)
        overlaps[index] = (int(in_render.sum()), int(in_preview.sum()), (in_render & in_preview).sum() / max(1, (in_render | in_preview).sum()))
    assert all(render_pixels > 20 and overlap > 0.3 for render_pixels, _, overlap in overlaps.values()), overlaps
    assert np.mean([overlap for *_, overlap in overlaps.values()]) > 0.5, overlaps  # the preview has no smoothing over time
    assert previewed < 60, previewed  # the speed goal is benchmarks/studio_preview.py's


def test_the_page_paints_on_a_frame_too(painted_page):
    page, studio, _, _ = painted_page
    page.check("input[name=canvas][value=frame]")
    page.wait_for_function("document.getElementById('picture').src.includes('frame=0')")
    page.eval_on_selector("#scrubber", "e => { e.value = '20'; e.dispatchEvent(new Event('change')); }")
    page.wait_for_function("document.getElementById('picture').src.includes('frame=20')")
    page.wait_for_function("document.getElementById('paint').width === 320")
    picture, layer = studio.frame_files(20)
    assert picture.is_file() and layer.is_file()
    exported = np.asarray(Image.open(picture))
    decoded = [f.rgb for f in iter_frames(studio.video)][20]
    assert (exported == decoded).all()  # the frame the page paints on is the one render counts as 20
    page.check("input[name=canvas][value=face]")
    page.wait_for_function("document.getElementById('paint').width === 512")


def test_requests_without_the_token_or_outside_the_folders_are_refused(studio):
    page_state, server = studio
    assert _get(server, "/", None)[0] == 403
    assert _get(server, "/api/state", "not-the-token")[0] == 403
    assert _get(server, "/", page_state.token, host="attacker.example:80")[0] == 403  # a rebound name
    assert _get(server, "/", page_state.token)[0] == 200
    status, body = _get(server, "/api/file?path=../../../../etc/passwd", page_state.token)
    assert status == 403 and "reads only" in json.loads(body)["error"]
    status, body = _post(server, "/api/render", page_state.token, json.dumps({"name": "../../elsewhere.mp4"}).encode())
    assert status == 403 and "renders are written in" in json.loads(body)["error"]
    status, body = _post(server, "/api/paint", page_state.token, b"not an image")
    assert status == 400 and "not an image" in json.loads(body)["error"]
    small = io.BytesIO()
    Image.new("RGBA", (16, 16)).save(small, format="PNG")
    status, body = _post(server, "/api/paint?frame=3", page_state.token, small.getvalue())
    assert status == 400 and "320x240 PNG, got a 16x16" in json.loads(body)["error"]


def test_paint_on_an_embedded_face_not_extracted_yet_is_one_line(tmp_path):
    with _served(write_moving_face_video(tmp_path / "clip.mp4", count=10)) as (page, server):
        layer = io.BytesIO()
        Image.new("RGBA", (512, 512)).save(layer, format="PNG")
        status, body = _post(server, "/api/paint", page.token, layer.getvalue())
        assert status == 400 and "not extracted yet" in json.loads(body)["error"]
        assert not page.face_layer.exists()


def test_studio_command_refuses_a_missing_video(tmp_path):
    from helpers import one_line_error

    one_line_error(run("studio", tmp_path / "absent.mp4", "--no-browser"), "no such file")


def test_the_page_files_ship_with_the_package():
    from x2face_edit.studio import PAGE

    assert {p.name for p in Path(PAGE).iterdir()} >= {"index.html", "studio.js", "studio.css"}


def test_a_decal_is_placed_and_a_reopened_page_shows_the_saved_paint(studio, browser, tmp_path):
    page_state, server = studio
    decal = np.zeros((40, 40, 4), np.uint8)
    decal[10:30, 10:30] = (0, 0, 255, 255)
    Image.fromarray(decal).save(tmp_path / "decal.png")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(address(server))
    page.wait_for_selector("body[data-ready=true]", timeout=180_000)
    page.set_input_files("#decal-file", str(tmp_path / "decal.png"))
    page.wait_for_function("!document.getElementById('decal-place').disabled")
    page.click("#decal-place")
    # Placed at the canvas's centre, at its own size: a blue square around (256, 256).
    _wait_for(lambda: tuple(np.asarray(Image.open(page_state.face_layer))[256, 256]) == (0, 0, 255, 255))
    layer = np.asarray(Image.open(page_state.face_layer))
    blue = (layer == (0, 0, 255, 255)).all(axis=2)
    assert blue.sum() == 400 and blue[246:266, 246:266].all()  # the earlier tests' stroke is kept beside it
    page.close()
    reopened = browser.new_page()
    reopened.goto(address(server))
    reopened.wait_for_selector("body[data-ready=true]", timeout=60_000)
    pixel = reopened.evaluate("Array.from(document.getElementById('paint').getContext('2d').getImageData(256, 256, 1, 1).data)")
    assert pixel == [0, 0, 255, 255]
    reopened.close()

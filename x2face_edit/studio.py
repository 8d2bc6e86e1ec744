"""The studio: a page on this machine to paint on a video's embedded face or on one of its
frames, preview the paint on a few frames and render the video (``x2face-edit studio``).

Like the CLI it is a front end over the jobs (``extract``, ``frame``, ``preview``,
``render``): it writes the paint where the CLI looks for it (``FACE.edit.png`` beside the
sidecar, ``VIDEO.frameN.edit.png`` for a frame), so ``x2face-edit render`` gives what the
page gives. The server is the standard library's, bound to 127.0.0.1: every request
carries the access token printed in the address, the Host header must name this server
(a web page cannot rebind a name to it), and files are read and written only in the
video's folder and the renders folder.
"""

from __future__ import annotations

import hmac
import io
import json
import mimetypes
import secrets
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import X2FaceError
from .model import ModelInfo, X2Face, load_model_with_info
from .outputs import atomic_output, frame_paths
from .paint import LOCK_MODES, OCCLUSION_MODES, Paint, PaintOptions
from .sequences import is_sequence_output
from .sidecar import output_paths, read_sidecar
from .video import check_video_output, probe

PAGE = Path(__file__).with_name("studio_page")
# The largest upload taken (a paint layer of a 4K frame is a few MB as PNG).
MAX_UPLOAD = 64 << 20
# What the page may ask a render to be written as.
RENDER_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm")
Image.MAX_IMAGE_PIXELS = 8192 * 8192  # an upload larger than an 8K frame is refused, not decoded


@dataclass(frozen=True)
class StudioOptions:
    """``face_png``, the embedded face painted on (default: VIDEO.face.png beside the
    video; made by ``extract`` where it is missing); ``renders``, the folder renders are
    written to (default: ``renders`` beside the video); ``model`` (default: the one the face
    was extracted with, else the shipped one); ``preview_frames``, frames the preview shows;
    ``port`` (0: a free one)."""

    face_png: Path | None = None
    renders: Path | None = None
    model: Path | None = None
    preview_frames: int = 6
    port: int = 0
    sequence_fps: float | None = None


@dataclass(frozen=True)
class StudioWork:
    """The jobs the page runs, handed in by the front end that serves it (a job imports no
    other job; ``cli.studio_work`` gives the package's):

    - ``extract(model, info, video, face_png, sequence_fps, on_frame)`` writes the embedded
      face and its files (``on_frame(index)`` for each frame tracked);
    - ``frame(video, index, picture, sequence_fps)`` writes frame ``index`` and its layer;
    - ``preview(model, info, paint, video, frame, paint_options, count, sequence_fps)`` gives
      ``count`` painted frames (RGB arrays), ``frame`` being the frame painted on (None: the
      embedded face);
    - ``render(model, info, paint, video, out, frame, settings, sequence_fps, on_frame)``
      renders with the page's ``RenderSettings``."""

    extract: Callable[..., None]
    frame: Callable[..., None]
    preview: Callable[..., list[np.ndarray]]
    render: Callable[..., None]


@dataclass
class Task:
    """A long piece of work the page follows: what it is, how far, and how it ended."""

    name: str = ""
    done: int = 0
    total: int = 0
    running: bool = False
    error: str | None = None
    result: str | None = None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = done, total


@dataclass
class Studio:
    """One video's page: where its files are, the model, and the work in progress."""

    video: Path
    work: StudioWork
    options: StudioOptions = field(default_factory=StudioOptions)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))

    def __post_init__(self) -> None:
        self.video = Path(self.video).resolve()
        if not self.video.exists():
            raise X2FaceError(f"no such file: {self.video}")
        self.info = probe(self.video, fps=self.options.sequence_fps)
        self.folder = self.video.parent
        face_png = self.options.face_png or self.folder / f"{self.video.stem}.face.png"
        self.face_png, self.face_layer, self.guide, self.sidecar = output_paths(Path(face_png).resolve())
        self.renders = Path(self.options.renders or self.folder / "renders").resolve()
        self.extracting, self.rendering = Task("extract"), Task("render")
        self.previews: list[bytes] = []  # the last preview's painted frames, as PNG files
        self._model: tuple[X2Face, ModelInfo] | None = None
        self._lock = threading.Lock()  # one network job at a time: the CPU has no room for two
        self._exporting = threading.Lock()

    # Files the page may read or write.
    def allowed(self, path: Path) -> bool:
        path = Path(path).resolve()
        return path.is_relative_to(self.folder) or path.is_relative_to(self.renders)

    def frame_files(self, index: int) -> tuple[Path, Path]:
        """Frame ``index`` and its paint layer (``frame.frame_paths``)."""
        return frame_paths(self.folder / f"{self.video.stem}.frame{index}.png")

    def canvas_files(self, frame: int | None) -> tuple[Path, Path]:
        """The picture painted on and its paint layer: the embedded face, or frame ``frame``."""
        return (self.face_png, self.face_layer) if frame is None else self.frame_files(frame)

    def model(self) -> tuple[X2Face, ModelInfo]:
        if self._model is None:
            path = self.options.model
            if path is None and self.sidecar.is_file():
                recorded = Path(read_sidecar(self.sidecar).model.info.path)
                path = recorded if recorded.is_file() else None
            self._model = load_model_with_info(path)
        return self._model

    def state(self) -> dict:
        return {"video": self.video.name, "frames": self.info.frame_count, "fps": float(self.info.fps),
                "width": self.info.width, "height": self.info.height, "ready": self.sidecar.is_file(),
                "extract": vars(self.extracting), "render": vars(self.rendering)}

    def start_extract(self) -> None:
        """``extract`` the video's embedded face in the background where it has none yet."""
        if self.sidecar.is_file() or self.extracting.running:
            return
        self._start(self.extracting, self._extract)

    def _extract(self) -> str:
        model, info = self.model()
        total = self.info.frame_count
        self.work.extract(model, info, self.video, self.face_png, self.options.sequence_fps,
                          lambda index: self.extracting.progress(index + 1, total))
        return self.face_png.name

    def canvas(self, frame: int | None) -> Path:
        """The picture to paint on (the frame is exported the first time it is asked for)."""
        picture = self.canvas_files(frame)[0]
        with self._exporting:  # the page asks for a frame and its layer at once
            if frame is not None and not picture.is_file():
                self.work.frame(self.video, frame, picture, self.options.sequence_fps)
        return picture

    def save_paint(self, frame: int | None, data: bytes) -> Path:
        """Keep the page's paint layer (a PNG of the canvas's size) where the CLI reads it."""
        layer = self.canvas_files(frame)[1]
        try:
            image = Image.open(io.BytesIO(data))
            image.load()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
            raise X2FaceError(f"the paint is not an image ({error})") from None
        if not (canvas := self.canvas(frame)).is_file():
            raise X2FaceError("the embedded face is not extracted yet: paint on it when extract is done, or on a frame")
        expected = Image.open(canvas).size
        if image.format != "PNG" or image.size != expected:
            raise X2FaceError(f"the paint must be a {expected[0]}x{expected[1]} PNG, got a {image.size[0]}x{image.size[1]} {image.format}")
        with atomic_output(layer, force=True) as partial:  # whole or not at all: the CLI may be reading it
            image.convert("RGBA").save(partial, format="PNG")
        return layer

    def paint(self, frame: int | None) -> Paint:
        return Paint.read(self.canvas_files(frame)[1], self.sidecar)

    def preview(self, frame: int | None, paint_options: PaintOptions) -> list[bytes]:
        """The painted frames the preview shows, as PNG files."""
        model, info = self.model()
        if not self._lock.acquire(blocking=False):
            raise X2FaceError("the render is running: preview when it is done")
        try:
            shown = self.work.preview(model, info, self.paint(frame), self.video, frame, paint_options, self.options.preview_frames,
                                      self.options.sequence_fps)
        finally:
            self._lock.release()
        pictures = []
        for after in shown:
            buffer = io.BytesIO()
            Image.fromarray(after).save(buffer, format="PNG", compress_level=1)
            pictures.append(buffer.getvalue())
        self.previews = pictures
        return pictures

    def start_render(self, frame: int | None, settings: RenderSettings) -> Path:
        """Render the whole video with the paint in the background; the output's path."""
        if self.rendering.running:
            raise X2FaceError("a render is already running")
        out = settings.output(self)
        paint = self.paint(frame)

        def run() -> str:
            model, info = self.model()
            with self._lock:
                self.work.render(model, info, paint, self.video, out, frame, settings, self.options.sequence_fps,
                                 self.rendering.progress)
            return str(out.relative_to(self.renders))

        self._start(self.rendering, run)
        return out

    def _start(self, task: Task, work: Callable[[], str]) -> None:
        task.running, task.error, task.result, task.done, task.total = True, None, None, 0, 0

        def run() -> None:
            try:
                task.result = work()
            except X2FaceError as error:
                task.error = str(error)
            except Exception as error:  # noqa: BLE001 - the page shows it; the server goes on
                traceback.print_exc()
                task.error = f"{type(error).__name__}: {error}"
            finally:
                task.running = False

        threading.Thread(target=run, name=f"studio-{task.name}", daemon=True).start()


@dataclass(frozen=True)
class RenderSettings:
    """What the page asks a render for: the CLI's options that matter there, and the
    output's name in the renders folder (a video, or an image sequence such as
    ``shot_%05d.png``; default: VIDEO.painted.mp4, numbered rather than overwritten)."""

    lock: str = LOCK_MODES[0]
    occlusion: str = OCCLUSION_MODES[0]
    codec: str | None = None
    layer_only: bool = False
    name: str | None = None

    @classmethod
    def of(cls, record: dict) -> RenderSettings:
        known = {key: record[key] for key in ("lock", "occlusion", "codec", "layer_only", "name") if record.get(key) not in (None, "")}
        return cls(**known)

    def output(self, studio: Studio) -> Path:
        if self.name is not None:
            out = (studio.renders / self.name).resolve()
            if not studio.allowed(out):
                raise PermissionError(f"{self.name}: renders are written in {studio.renders} or {studio.folder}")
            if out.suffix.lower() not in RENDER_SUFFIXES and not is_sequence_output(out):
                raise X2FaceError(f"{out.name}: render to {', '.join(RENDER_SUFFIXES)} or an image sequence (NAME_%05d.png)")
            out.parent.mkdir(parents=True, exist_ok=True)
            check_video_output(out, force=False, codec=self.codec, alpha=self.layer_only)  # refuses what exists, at once
            return out
        suffix = ".mov" if self.layer_only else ".mp4"
        studio.renders.mkdir(parents=True, exist_ok=True)
        number, out = 1, studio.renders / f"{studio.video.stem}.painted{suffix}"
        while out.exists():
            number += 1
            out = studio.renders / f"{studio.video.stem}.painted-{number}{suffix}"
        return out


def _paint_options(query: dict[str, str]) -> PaintOptions:
    return PaintOptions(lock=query.get("lock", LOCK_MODES[0]), occlusion=query.get("occlusion", OCCLUSION_MODES[0]))


def _frame_of(query: dict[str, str]) -> int | None:
    value = query.get("frame", "")
    if value in ("", "face"):
        return None
    if not value.isdigit():
        raise X2FaceError(f"frame must be a frame number, got {value!r}")
    return int(value)


class _Handler(BaseHTTPRequestHandler):
    studio: Studio  # set on the subclass the server makes

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass  # the terminal shows the address, not every request

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self._answer("POST")

    def _answer(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        try:
            if not self._host_is_this_server() or (url.path not in PUBLIC and not self._token_given(query)):
                return self._send_error(HTTPStatus.FORBIDDEN, "this page needs the address with its token that 'studio' printed")
            route = ROUTES.get((method, url.path))
            if route is None:
                return self._send_error(HTTPStatus.NOT_FOUND, f"no such page: {url.path}")
            route(self, query)
        except PermissionError as error:
            self._send_error(HTTPStatus.FORBIDDEN, str(error))
        except X2FaceError as error:
            self._send_error(HTTPStatus.BAD_REQUEST, str(error))
        except Exception as error:  # noqa: BLE001 - one line to the page; the server goes on
            traceback.print_exc()
            self._send_error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}")

    def _host_is_this_server(self) -> bool:
        port = self.server.server_address[1]
        return self.headers.get("Host", "") in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _token_given(self, query: dict[str, str]) -> bool:
        given = self.headers.get("X-Studio-Token") or query.get("token", "")
        return hmac.compare_digest(given.encode(), self.studio.token.encode())

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD:
            raise X2FaceError(f"uploads are limited to {MAX_UPLOAD >> 20} MB")
        return self.rfile.read(length)

    def send_bytes(self, data: bytes, content_type: str) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, record: object) -> None:
        self.send_bytes(json.dumps(record).encode(), "application/json")

    def send_file(self, path: Path) -> None:
        if not self.studio.allowed(path):
            raise PermissionError(f"{path}: the studio reads only {self.studio.folder} and {self.studio.renders}")
        if not path.is_file():
            raise X2FaceError(f"no such file: {path.name}")
        self.send_bytes(path.read_bytes(), mimetypes.guess_type(path.name)[0] or "application/octet-stream")

    def _send_error(self, status: HTTPStatus, message: str) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _page(handler: _Handler, query: dict[str, str]) -> None:
    handler.send_bytes((PAGE / "index.html").read_bytes(), "text/html; charset=utf-8")


def _asset(name: str, content_type: str) -> Callable[[_Handler, dict[str, str]], None]:
    return lambda handler, query: handler.send_bytes((PAGE / name).read_bytes(), content_type)


def _state(handler: _Handler, query: dict[str, str]) -> None:
    handler.studio.start_extract()
    handler.send_json(handler.studio.state())


def _canvas(handler: _Handler, query: dict[str, str]) -> None:
    handler.send_file(handler.studio.canvas(_frame_of(query)))


def _layer(handler: _Handler, query: dict[str, str]) -> None:
    frame = _frame_of(query)
    layer = handler.studio.canvas_files(frame)[1]
    if not layer.is_file():
        handler.studio.canvas(frame)  # a frame's layer is written with the frame
    handler.send_file(layer)


def _guide(handler: _Handler, query: dict[str, str]) -> None:
    handler.send_file(handler.studio.guide)


def _save_paint(handler: _Handler, query: dict[str, str]) -> None:
    layer = handler.studio.save_paint(_frame_of(query), handler.body())
    handler.send_json({"saved": layer.name})


def _preview(handler: _Handler, query: dict[str, str]) -> None:
    pictures = handler.studio.preview(_frame_of(query), _paint_options(query))
    handler.send_json({"count": len(pictures)})


def _preview_picture(handler: _Handler, query: dict[str, str]) -> None:
    pictures = handler.studio.previews
    number = query.get("n", "")
    if not number.isdigit() or int(number) >= len(pictures):
        raise X2FaceError(f"no preview picture {number!r}")
    handler.send_bytes(pictures[int(number)], "image/png")


def _render(handler: _Handler, query: dict[str, str]) -> None:
    try:
        record = json.loads(handler.body() or b"{}")
    except json.JSONDecodeError:
        raise X2FaceError("the render settings are not JSON") from None
    out = handler.studio.start_render(_frame_of(query), RenderSettings.of(record))
    handler.send_json({"output": out.name})


def _output(handler: _Handler, query: dict[str, str]) -> None:
    handler.send_file((handler.studio.renders / query.get("path", "")).resolve())


# The page's own code, which holds nothing of the user's: loaded by the page without the token.
PUBLIC = frozenset({"/studio.js", "/studio.css"})
ROUTES: dict[tuple[str, str], Callable[[_Handler, dict[str, str]], None]] = {
    ("GET", "/"): _page,
    ("GET", "/studio.js"): _asset("studio.js", "text/javascript; charset=utf-8"),
    ("GET", "/studio.css"): _asset("studio.css", "text/css; charset=utf-8"),
    ("GET", "/api/state"): _state,
    ("GET", "/api/canvas"): _canvas,
    ("GET", "/api/layer"): _layer,
    ("GET", "/api/guide"): _guide,
    ("POST", "/api/paint"): _save_paint,
    ("POST", "/api/preview"): _preview,
    ("GET", "/api/preview"): _preview_picture,
    ("POST", "/api/render"): _render,
    ("GET", "/api/file"): _output,
}


def serve(studio: Studio) -> ThreadingHTTPServer:
    """A server for ``studio`` on 127.0.0.1 (``serve_forever`` it, or run it in a thread);
    ``address(server)`` is the page's address with its token."""
    handler = type("StudioHandler", (_Handler,), {"studio": studio})
    server = ThreadingHTTPServer(("127.0.0.1", studio.options.port), handler)
    server.daemon_threads = True
    return server


def address(server: ThreadingHTTPServer) -> str:
    """The page's address, with the token every request needs."""
    studio: Studio = server.RequestHandlerClass.studio  # type: ignore[attr-defined]
    return f"http://127.0.0.1:{server.server_address[1]}/?token={studio.token}"

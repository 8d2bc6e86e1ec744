"""The paint and how it goes onto a frame: a premultiplied RGBA layer on the embedded
face, warped by a frame's driving grid at the frame's own pixels inside the crop box (so
the edit lands at full resolution with sub-pixel placement) and alpha-composited; pixels
the paint does not reach keep their values exactly. Where the face is lost nothing is
painted, and the paint fades out before and in after (``fade_weights``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .choices import LOCK_MODES, MODES, OCCLUSION_MODES
from .embedding import Embedding, embed, rebuild, source_frames
from .errors import X2FaceError
from .faces import cells_in_frame, crop
from .guide import is_guide
from .lock import LandmarkLock
from .model import X2Face
from .model.images import to_tensor
from .model.networks import sample
from .occlusion import Occlusion
from .sidecar import Sidecar, read_sidecar, sidecar_beside
from .video import Frame

# Colour differences (0-255) below LOW are unpainted (editor round-off); above HIGH, fully painted.
PAINT_LOW, PAINT_HIGH = 3.0, 15.0
# An image at least this transparent (fraction of fully transparent pixels) is a paint layer.
LAYER_TRANSPARENT = 0.25
# Frames over which the paint fades out before the face is lost and in after it returns.
FADE_FRAMES = 6


@dataclass(frozen=True)
class Paint:
    """What the user painted (``edited``: a paint layer, or a painted copy of the embedded
    face) and the sidecar of the embedded face it renders through; ``painted_on``, the
    sidecar of another person's embedded face where the layer was painted on that one
    (embedded faces share one layout, so the layer applies as painted: the paper's edits
    across identities)."""

    edited: Path
    sidecar: Sidecar
    painted_on: Sidecar | None = None

    @classmethod
    def read(cls, edited: str | Path, sidecar: str | Path | None = None) -> Paint:
        """The paint in ``edited`` and its sidecar (by default the one beside it,
        ``sidecar.sidecar_beside``). Where another ``sidecar`` is given than the one beside
        a layer and they describe different embedded faces, the layer was painted on the
        face beside it and is applied to the other (the paper's edits across identities)."""
        edited = Path(edited)
        if not edited.is_file():
            raise X2FaceError(f"no such file: {edited}")
        given = read_sidecar(sidecar or sidecar_beside(edited))
        own = sidecar_beside(edited)
        painted_on = None
        if sidecar is not None and own.is_file() and own.resolve() != Path(sidecar).resolve():
            beside = read_sidecar(own)
            if (beside.video, beside.frames, beside.crop_boxes) != (given.video, given.frames, given.crop_boxes):
                painted_on = beside
        return cls(edited, given, painted_on)

    def layer_on(self, embedded: np.ndarray) -> torch.Tensor:
        """The paint as a premultiplied (4, S, S) layer on ``embedded``, the embedded face
        ``sidecar`` describes (``paint_layer``; a layer painted on ``painted_on``'s face is
        taken as painted, resized to this one's size)."""
        if self.painted_on is None:
            return paint_layer(self.edited, embedded)
        rgba = _paint_image(self.edited, (self.painted_on.size, self.painted_on.size), "the embedded face it was painted on")
        if not _is_layer(rgba):
            raise X2FaceError(f"{self.edited.name} is a painted copy of another person's embedded face ({self.painted_on.video.name}): "
                              "to apply an edit to someone else, give its paint layer (the .edit.png, painted with transparency)")
        layer = _premultiplied(rgba, rgba[..., 3] / 255)
        if layer.shape[1:] == embedded.shape[:2]:
            return layer
        return F.interpolate(layer[None], size=embedded.shape[:2], mode="bilinear", align_corners=False, antialias=True)[0].clamp(0, 1)


@dataclass(frozen=True)
class PaintOptions:
    """How the paint follows a face: ``mode`` (``MODES``), ``lock`` "landmarks" (each frame's
    warp corrected by its landmarks, ``lock.py``) or "none" (the paper's pure X2Face warp),
    and ``face``, the face of the driving video by number (0: the most prominent; None: the
    person the paint was made on, ``Sidecar.followed_face``); ``occlusion`` "auto" hides
    the paint where something covers the face (``occlusion.py``), "off" draws it over."""

    mode: str = "edit"
    lock: str = "landmarks"
    face: int | None = None
    occlusion: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise X2FaceError(f"mode must be one of {', '.join(MODES)}")
        if self.lock not in LOCK_MODES:
            raise X2FaceError(f"lock must be one of {', '.join(LOCK_MODES)}")
        if self.occlusion not in OCCLUSION_MODES:
            raise X2FaceError(f"occlusion must be one of {', '.join(OCCLUSION_MODES)}")


@dataclass(frozen=True)
class PreparedPaint:
    """What carries the paint through frames: the premultiplied RGBA ``layer``, the landmark
    ``lock`` (None: the pure warp) and the ``occlusion`` that hides it (None: off)."""

    layer: torch.Tensor
    lock: LandmarkLock | None
    occlusion: Occlusion | None


def paint_layer(edited: str | Path, original: np.ndarray, canvas: str = "the embedded face") -> torch.Tensor:
    """The paint as a premultiplied RGBA (4, H, W) tensor in [0, 1], made on ``original``
    (``canvas`` says what it is, for the error where the sizes differ).

    An image that is transparent over much of its area (``LAYER_TRANSPARENT``) is a layer:
    its alpha says where the paint is. Anything else (an opaque image, or a painted copy
    of the embedded face with a few erased pixels) is a painted copy: the paint is where
    its colours differ from the embedded face.
    """
    rgba = _paint_image(Path(edited), original.shape[:2], canvas)
    if _is_layer(rgba):
        alpha = rgba[..., 3] / 255
    else:
        difference = np.abs(rgba[..., :3] - original.astype(np.float32)).max(axis=2)
        alpha = np.clip((difference - PAINT_LOW) / (PAINT_HIGH - PAINT_LOW), 0, 1)
    return _premultiplied(rgba, alpha)


def _paint_image(edited: Path, shape: tuple[int, int], canvas: str) -> np.ndarray:
    """The (H, W, 4) float32 RGBA (0-255) of the image painted on ``canvas``, of ``shape`` (H, W)."""
    if not edited.is_file():
        raise X2FaceError(f"no such file: {edited}")
    try:
        image = Image.open(edited)
        image.load()
    except (OSError, ValueError):
        raise X2FaceError(f"not an image: {edited}") from None
    if is_guide(image):
        raise X2FaceError(f"{edited.name} is the painting guide, not paint: paint on a copy of the embedded face or on its .edit.png layer")
    if image.size != shape[::-1]:
        raise X2FaceError(
            f"{edited.name} is {image.size[0]}x{image.size[1]} but {canvas} is "
            f"{shape[1]}x{shape[0]}: paint on the image 'extract' or 'frame' wrote, without resizing it"
        )
    return np.asarray(image.convert("RGBA")).astype(np.float32)


def _is_layer(rgba: np.ndarray) -> bool:
    """Whether an (H, W, 4) image is a paint layer: transparent over much of it (``LAYER_TRANSPARENT``)."""
    return bool(np.mean(rgba[..., 3] == 0) >= LAYER_TRANSPARENT)


def _premultiplied(rgba: np.ndarray, alpha: np.ndarray) -> torch.Tensor:
    colour = rgba[..., :3] / 255 * alpha[..., None]
    return torch.from_numpy(np.concatenate([colour, alpha[..., None]], axis=2)).permute(2, 0, 1).contiguous()


def require_paint(layer: torch.Tensor, edited: str | Path) -> None:
    """Refuse a paint layer with no paint: rendering it would only re-encode the video."""
    if not layer[3].any():
        raise X2FaceError(f"no paint in {Path(edited).name}: paint on it (or on a copy of the embedded face) first")


def require_paint_before(model: X2Face, paint: Paint, options: PaintOptions) -> None:
    """``require_paint`` before long work (``render --fit``) rather than after it, as
    ``prepare_paint`` would."""
    if options.mode == "edit":
        require_paint(paint.layer_on(rebuild(model, paint.sidecar)), paint.edited)


def opaque_layer(image: np.ndarray, feather: float = 0.06) -> torch.Tensor:
    """A premultiplied RGBA layer of a whole RGB image, opaque but for a border of
    ``feather`` x its side where alpha fades to 0, so a pasted face has no hard seam."""
    rgb = to_tensor([image])[0]
    height, width = image.shape[:2]
    ramp_y = torch.minimum(torch.arange(height) + 0.5, height - 0.5 - torch.arange(height)) / max(feather * height, 1e-6)
    ramp_x = torch.minimum(torch.arange(width) + 0.5, width - 0.5 - torch.arange(width)) / max(feather * width, 1e-6)
    alpha = torch.minimum(ramp_y[:, None], ramp_x[None, :]).clamp(0, 1).unsqueeze(0)
    return torch.cat([rgb * alpha, alpha])


def paint_bounds(layer: torch.Tensor) -> tuple[float, float, float, float] | None:
    """The (x0, y0, x1, y1) grid coordinates of the texels of ``layer`` that hold paint,
    widened by a texel (bilinear sampling reaches that far); None for a layer without paint."""
    rows, columns = torch.nonzero(layer[3] > 0, as_tuple=True)
    if not len(rows):
        return None
    size_y, size_x = layer.shape[1:]
    return (float(columns.min() - 1) / size_x * 2 - 1, float(rows.min() - 1) / size_y * 2 - 1,
            float(columns.max() + 2) / size_x * 2 - 1, float(rows.max() + 2) / size_y * 2 - 1)


def footprint(grid: torch.Tensor, bounds: tuple[float, float, float, float]) -> tuple[int, int, int, int] | None:
    """The crop cells (first column, first row, last column + 1, last row + 1) of a
    (h, w, 2) ``grid`` that can sample inside ``bounds``, widened by a cell, since pixels
    between cells interpolate the grid; None if none can (the paint is out of view)."""
    step = max(float((grid[1:] - grid[:-1]).abs().max()), float((grid[:, 1:] - grid[:, :-1]).abs().max()))
    x, y = grid[..., 0], grid[..., 1]
    inside = (x >= bounds[0] - step) & (x <= bounds[2] + step) & (y >= bounds[1] - step) & (y <= bounds[3] + step)
    rows, columns = torch.nonzero(inside, as_tuple=True)
    if not len(rows):
        return None
    return int(columns.min()) - 1, int(rows.min()) - 1, int(columns.max()) + 2, int(rows.max()) + 2


def warp_paint(shape: tuple[int, ...], crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
               bounds: tuple[float, float, float, float] | None = None,
               visibility: torch.Tensor | None = None) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """``layer`` warped by the crop's (h, w, 2) ``grid`` onto the pixels of a frame of
    ``shape`` inside the crop box: the region's slices and its premultiplied (h, w, 4)
    float RGBA in [0, 1]; None where no paint lands. With the layer's ``paint_bounds``,
    only the pixels the paint can reach are warped. ``visibility`` (h, w), on the grid's
    cells (``Occlusion.visibility``), scales the paint where something covers the face."""
    height, width = shape[:2]
    x0, y0, x1, y1 = crop_box
    left, top = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    right, bottom = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if bounds is not None:
        if (cells := footprint(grid, bounds)) is None:
            return None
        cell_width, cell_height = (x1 - x0) / grid.shape[1], (y1 - y0) / grid.shape[0]
        left, right = max(left, int(np.floor(x0 + cells[0] * cell_width))), min(right, int(np.ceil(x0 + cells[2] * cell_width)))
        top, bottom = max(top, int(np.floor(y0 + cells[1] * cell_height))), min(bottom, int(np.ceil(y0 + cells[3] * cell_height)))
    if right <= left or bottom <= top:
        return None
    positions = _pixel_positions(crop_box, left, top, right, bottom)
    cells = grid.permute(2, 0, 1).float()
    if visibility is not None:
        cells = torch.cat([cells, visibility[None].float()])
    at_pixels = sample(cells.unsqueeze(0), positions, padding="border")
    frame_grid = at_pixels[:, :2].permute(0, 2, 3, 1)
    warped = sample(layer.unsqueeze(0), frame_grid)[0].permute(1, 2, 0).numpy()
    if visibility is not None:
        warped *= _visible_at(at_pixels[0].numpy())[..., None]
    if not (warped[..., 3] > 0).any():
        return None
    return (slice(top, bottom), slice(left, right)), warped


def _pixel_positions(crop_box: np.ndarray, left: int, top: int, right: int, bottom: int) -> torch.Tensor:
    """(1, h, w, 2): the centres of the frame pixels from (left, top) to (right, bottom),
    exclusive, in the crop's [-1, 1] coordinates."""
    x0, y0, x1, y1 = crop_box
    u = (torch.arange(left, right, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    v = (torch.arange(top, bottom, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    return torch.stack(torch.meshgrid(v, u, indexing="ij")[::-1], dim=-1).unsqueeze(0)


def visibility_matte(shape: tuple[int, ...], crop_box: np.ndarray, grid: torch.Tensor, visibility: torch.Tensor) -> np.ndarray:
    """(H, W) float32 in [0, 1] over a frame of ``shape``: the ``visibility`` of the face
    (on the (h, w) cells of the crop's ``grid``, ``Occlusion.visibility``) at each pixel
    where the grid samples the embedded face, as ``warp_paint`` multiplies the paint by it;
    1 elsewhere (no paint lands there)."""
    height, width = shape[:2]
    matte = np.ones((height, width), np.float32)
    left, top = max(0, int(np.floor(crop_box[0]))), max(0, int(np.floor(crop_box[1])))
    right, bottom = min(width, int(np.ceil(crop_box[2]))), min(height, int(np.ceil(crop_box[3])))
    if right <= left or bottom <= top:
        return matte
    cells = torch.cat([grid.permute(2, 0, 1).float(), visibility[None].float()])
    at_pixels = sample(cells.unsqueeze(0), _pixel_positions(crop_box, left, top, right, bottom), padding="border")[0]
    matte[top:bottom, left:right] = _visible_at(at_pixels.numpy())
    return matte


def _visible_at(at_pixels: np.ndarray) -> np.ndarray:
    """(h, w): from a crop's grid and visibility sampled at frame pixels (3, h, w), the
    visibility where the grid samples the embedded face, 1 beyond it (no paint lands there).
    In NumPy: PyTorch's operators, run beside the network's thread, would each start a team
    of threads competing with it for the cores."""
    on_face = (np.abs(at_pixels[0]) <= 1) & (np.abs(at_pixels[1]) <= 1)
    return np.where(on_face, np.clip(at_pixels[2], 0, 1), np.float32(1))


def composite(frame: np.ndarray, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
              bounds: tuple[float, float, float, float] | None = None, visibility: torch.Tensor | None = None) -> None:
    """Warp ``layer`` by the crop's (h, w, 2) ``grid`` and blend it into ``frame`` (8- or
    16-bit) in place; ``bounds`` (``paint_bounds``) limits the work to where paint lands."""
    if (warped := warp_paint(frame.shape, crop_box, grid, layer, bounds, visibility)) is None:
        return
    region_slices, paint = warped
    blend(frame[region_slices], paint)


def composited(frame: Frame, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
               bounds: tuple[float, float, float, float] | None = None, visibility: torch.Tensor | None = None) -> Frame:
    """``frame`` with ``layer`` composited as ``composite`` does, pasted (``Frame.paste``)
    so that only the pixels the paint reaches are converted, here and for the encoder."""
    if (warped := warp_paint((frame.height, frame.width), crop_box, grid, layer, bounds, visibility)) is not None:
        region_slices, paint = warped
        region = frame.pixels(*region_slices)
        frame.paste(*region_slices, region, blend(region, paint))
    return frame


def blend(region: np.ndarray, paint: np.ndarray) -> np.ndarray:
    """Blend premultiplied (h, w, 4) ``paint`` in [0, 1] into an (h, w, 3) 8- or 16-bit
    ``region`` in place; the mask of the pixels painted."""
    full = np.iinfo(region.dtype).max
    alpha = paint[..., 3]
    painted = alpha > 0
    blended = region.astype(np.float32) * (1 - alpha[..., None]) + paint[..., :3] * full
    region[painted] = np.clip(np.round(blended[painted]), 0, full).astype(region.dtype)
    return painted


def paint_alone(canvas: np.ndarray, crop_box: np.ndarray, grid: torch.Tensor, layer: torch.Tensor,
                bounds: tuple[float, float, float, float] | None = None, visibility: torch.Tensor | None = None) -> None:
    """Warp ``layer`` like ``composite`` into a transparent (H, W, 4) ``canvas`` with
    straight (not premultiplied) colour, as compositors expect of a layer's alpha."""
    if (warped := warp_paint(canvas.shape, crop_box, grid, layer, bounds, visibility)) is None:
        return
    region_slices, paint = warped
    full = np.iinfo(canvas.dtype).max
    alpha = paint[..., 3:]
    colour = np.divide(paint[..., :3], alpha, out=np.zeros_like(paint[..., :3]), where=alpha > 0)
    canvas[region_slices] = np.clip(np.round(np.concatenate([colour, alpha], axis=2) * full), 0, full).astype(canvas.dtype)


@dataclass(frozen=True)
class CarriedPaint:
    """Paint carried from a frame into the embedded face: the premultiplied (4, S, S)
    ``layer`` and its ``coverage`` (S, S), how many of the frame's pixels show each texel
    (smoothed; low where the frame sees that part of the face foreshortened, 0 where it
    does not see it)."""

    layer: torch.Tensor
    coverage: torch.Tensor


def carried_from_frame(paint: torch.Tensor, crop_box: np.ndarray, grid: torch.Tensor, size: int,
                       oversample: int = 3) -> CarriedPaint:
    """Premultiplied (4, H, W) ``paint`` made on a frame, carried into a (4, size, size)
    layer on the embedded face through the frame's crop ``grid`` (h, w, 2): the inverse of
    ``warp_paint``, so that warping the layer by the same grid puts the paint back where it
    was. Points ``oversample`` times finer than the frame's pixels are each taken to their
    place on the embedded face and averaged there per texel; a texel none reached takes the
    mean of its neighbours that were. How many reach each texel is its coverage."""
    height, width = paint.shape[1:]
    nothing = CarriedPaint(torch.zeros(4, size, size), torch.zeros(size, size))
    rows, columns = torch.nonzero(paint[3] > 0, as_tuple=True)
    if not len(rows):
        return nothing
    left, top = max(int(columns.min()) - 1, int(np.floor(crop_box[0])), 0), max(int(rows.min()) - 1, int(np.floor(crop_box[1])), 0)
    right = min(int(columns.max()) + 2, int(np.ceil(crop_box[2])), width)
    bottom = min(int(rows.max()) + 2, int(np.ceil(crop_box[3])), height)
    if right <= left or bottom <= top:
        return nothing
    xs = left + (torch.arange((right - left) * oversample, dtype=torch.float32) + 0.5) / oversample
    ys = top + (torch.arange((bottom - top) * oversample, dtype=torch.float32) + 0.5) / oversample
    x0, y0, x1, y1 = crop_box
    in_crop = torch.stack(torch.meshgrid((ys - y0) / (y1 - y0) * 2 - 1, (xs - x0) / (x1 - x0) * 2 - 1, indexing="ij")[::-1], dim=-1)
    on_face = sample(grid.permute(2, 0, 1)[None].float(), in_crop[None], padding="border")[0]
    in_frame = torch.stack(torch.meshgrid(ys / height * 2 - 1, xs / width * 2 - 1, indexing="ij")[::-1], dim=-1)
    values = sample(paint[None].float(), in_frame[None])[0].reshape(4, -1)
    texel = ((on_face + 1) / 2 * size).floor().long().reshape(2, -1)
    inside = ((texel >= 0) & (texel < size)).all(dim=0)
    ids = texel[1, inside] * size + texel[0, inside]
    sums = torch.zeros(4, size * size).index_add_(1, ids, values[:, inside])
    counts = torch.zeros(size * size).index_add_(0, ids, torch.ones(len(ids)))
    sums, counts = sums.view(4, size, size), counts.view(1, size, size)
    box = torch.ones(1, 1, 3, 3)
    near_sums = F.conv2d(sums[:, None], box, padding=1)[:, 0]
    near_counts = F.conv2d(counts[None], box, padding=1)[0]
    filled = torch.where(counts > 0, sums / counts.clamp(min=1), near_sums / near_counts.clamp(min=1))
    # Coverage over 7 x 7 texels: counts per texel jump by whole points where texels and
    # points do not line up, which would speckle a blend weighted by them.
    coverage = F.avg_pool2d(counts, 7, stride=1, padding=3, count_include_pad=False)[0] / oversample**2
    return CarriedPaint(filled.clamp(0, 1), coverage)


def fade_weights(found: np.ndarray, frames: int = FADE_FRAMES) -> np.ndarray:
    """Per-frame paint opacity: 0 where the face is lost, rising linearly to 1 over
    ``frames`` frames away from a lost frame (the video's ends are not losses)."""
    weights = np.where(found, 1.0, 0.0)
    if found.all() or frames <= 0:
        return weights
    # Distance to the nearest lost frame before and after, in one pass each way (a
    # frames x lost-frames table would not fit in memory for a long video).
    index = np.arange(len(found))
    far = 2 * len(found)
    before = index - np.maximum.accumulate(np.where(found, -far, index))
    after = np.minimum.accumulate(np.where(found, far, index)[::-1])[::-1] - index
    return np.minimum(weights, np.minimum(before, after) / (frames + 1))


def prepare_paint(model: X2Face, paint: Paint, options: PaintOptions,
                  layer_of: Callable[[LandmarkLock | None], torch.Tensor] | None = None) -> PreparedPaint:
    """The layer to warp (the paint; in "generate" mode the whole painted embedded face),
    the landmark lock and the occlusion, rebuilt from the sidecar's frames. ``layer_of(lock)``
    gives the paint on the embedded face where it was not painted there (``carried_from_frame``)."""
    frames, boxes = source_frames(paint.sidecar)
    embedding = embed(model, frames, boxes, paint.sidecar.size)
    landmark_lock = LandmarkLock(embedding.landmarks) if options.lock == "landmarks" else None
    layer = paint.layer_on(embedding.image) if layer_of is None else layer_of(landmark_lock)
    if options.mode == "edit":
        require_paint(layer, paint.edited)
    if options.mode == "generate":
        face = to_tensor([embedding.image])
        if face.shape[2:] != layer.shape[1:]:  # paint made on a frame: a layer finer than the face's crop there
            face = F.interpolate(face, size=layer.shape[1:], mode="bicubic", align_corners=False).clamp(0, 1)
        painted = (layer[:3] + face[0] * (1 - layer[3:])).permute(1, 2, 0).numpy()
        layer = opaque_layer(np.round(painted * 255).astype(np.uint8))
    occlusion = occlusion_of(model, embedding, frames, boxes, landmark_lock) if options.occlusion == "auto" else None
    return PreparedPaint(layer, landmark_lock, occlusion)


def occlusion_of(model: X2Face, embedding: Embedding, frames: list[np.ndarray], boxes: list[np.ndarray],
                 lock: LandmarkLock | None) -> Occlusion:
    """What hides paint on ``embedding`` where something covers the face: its tolerance
    learnt from its source ``frames`` (crop ``boxes``) as ``lock`` corrects them."""
    views = clear_views(model, frames, boxes, embedding.frame_landmarks, lock)
    return Occlusion.of(embedding.image, model.config.resolution, embedding.landmarks, embedding.source_images).learnt(views)


@torch.inference_mode()
def clear_views(model: X2Face, frames: list[np.ndarray], boxes: list[np.ndarray], landmarks: tuple[np.ndarray, ...],
                lock: LandmarkLock | None) -> list[tuple[np.ndarray, torch.Tensor, np.ndarray]]:
    """The face as the source ``frames`` show it where nothing covers it: each frame's crop
    of its box at the model's resolution, its driving grid, corrected by ``lock`` by the
    frame's ``landmarks`` (crop grid coordinates) as a render corrects a frame's, and the
    crop's cells within the frame (``Occlusion.learnt``'s views)."""
    resolution = model.config.resolution
    crops = [crop(frame, box, resolution) for frame, box in zip(frames, boxes)]
    device = next(model.parameters()).device
    grids = model.decode(model.driving_vector(to_tensor(crops).to(device))).float().cpu()
    views = []
    for frame, box, face, grid, points in zip(frames, boxes, crops, grids, landmarks):
        if lock is not None and (correction := lock.correction(grid, points)[0]) is not None:
            grid = lock.apply(grid, correction)
        views.append((face, grid, cells_in_frame(box, resolution, *frame.shape[:2])))
    return views

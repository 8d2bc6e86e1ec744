"""Image sequences (numbered frames, ``shot_%05d.png`` or a folder of them): how VFX
shots are delivered. FFmpeg's image2 format reads and writes them once we know the
pattern, the first number and that no frame is missing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .errors import X2FaceError

# Still-image suffixes read as frames of a sequence (FFmpeg decodes them all).
FRAME_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".exr", ".dpx", ".bmp")
# A sequence's frame rate when none is given (--fps).
DEFAULT_SEQUENCE_FPS = 25.0
_PATTERN = re.compile(r"%(0?\d*)d")


@dataclass(frozen=True)
class ImageSequence:
    pattern: str  # a printf pattern with one %d (e.g. /shots/a_%05d.png)
    start: int
    count: int

    def frame_path(self, number: int) -> Path:
        return Path(self.pattern % number)


def is_sequence(path: str | Path) -> bool:
    """Whether ``path`` names an image sequence (a %d pattern or a folder) rather than a file."""
    path = Path(path)
    return bool(_PATTERN.search(path.name)) or path.is_dir()


def media_exists(path: str | Path) -> bool:
    """Whether ``path`` is a video file, a folder, or a sequence pattern with frames on disk."""
    path = Path(path)
    if path.is_dir():
        return True
    return bool(existing_frames(path)) if is_sequence(path) else path.is_file()


def is_sequence_output(path: str | Path) -> bool:
    """Whether an output ``path`` is an image sequence: a still-image suffix."""
    return Path(path).suffix.lower() in FRAME_SUFFIXES


def _numbered(pattern: str) -> tuple[re.Pattern, Path]:
    """A regex matching the file names of ``pattern`` (capturing the number) and its folder."""
    path = Path(pattern)
    match = _PATTERN.search(path.name)
    width = match.group(1)
    digits = rf"(\d{{{int(width)}}})" if width.startswith("0") and len(width) > 1 else r"(\d+)"
    regex = re.escape(path.name[: match.start()]) + digits + re.escape(path.name[match.end():]) + "$"
    return re.compile(regex), path.parent


def existing_frames(pattern: str | Path, numbers: range | None = None) -> list[Path]:
    """The files on disk that ``pattern`` (with its %d) names; with ``numbers``, only
    those whose number is one of them (a chunk's, beside other chunks' frames)."""
    regex, folder = _numbered(str(pattern))
    if not folder.is_dir():
        return []
    matches = ((p, regex.match(p.name)) for p in folder.glob("*"))
    return sorted(p for p, match in matches if match and (numbers is None or int(match.group(1)) in numbers))


def _pattern_of_folder(folder: Path) -> str:
    """The %d pattern of the numbered frames in ``folder``: one prefix, one suffix."""
    frames = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith("."))
    if not frames:
        raise X2FaceError(f"no image frames in {folder} (looked for {', '.join(FRAME_SUFFIXES)})")
    shapes = {re.sub(r"\d+(?=\D*$)", "#", name) for name in frames}
    if len(shapes) > 1 or "#" not in next(iter(shapes)):
        raise X2FaceError(f"{folder} holds frames of more than one sequence (or unnumbered images): "
                          f"{', '.join(sorted(shapes)[:3])}; pass the sequence as NAME_%05d.png")
    lengths = {len(re.search(r"(\d+)\D*$", name).group(1)) for name in frames}
    number = "%d" if len(lengths) > 1 else f"%0{lengths.pop()}d"  # unpadded 1..12, or padded to one width
    first = re.search(r"(\d+)(\D*)$", frames[0])
    return str(folder / (frames[0][: first.start()] + number + first.group(2)))


def find_sequence(path: str | Path) -> ImageSequence:
    """The image sequence ``path`` names, checked: frames exist, none is missing in the
    numbering, all have one size."""
    path = Path(path)
    pattern = _pattern_of_folder(path) if path.is_dir() else str(path)
    regex, folder = _numbered(pattern)
    if not folder.is_dir():
        raise X2FaceError(f"no such folder: {folder}")
    numbers = sorted(int(regex.match(p.name).group(1)) for p in existing_frames(pattern))
    if not numbers:
        raise X2FaceError(f"no frames match {pattern}")
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        raise X2FaceError(f"the sequence {Path(pattern).name} misses frame {Path(pattern % missing[0]).name}"
                          + (f" and {len(missing) - 1} more" if len(missing) > 1 else ""))
    sequence = ImageSequence(pattern=pattern, start=numbers[0], count=len(numbers))
    sizes: dict[tuple[int, int], int] = {}
    for number in numbers:
        try:
            with Image.open(sequence.frame_path(number)) as image:
                size = image.size
        except OSError:
            raise X2FaceError(f"not an image: {sequence.frame_path(number)}") from None
        sizes.setdefault(size, number)
        if len(sizes) > 1:
            (first_size, first), (other_size, other) = sizes.items()
            raise X2FaceError(f"frames of one sequence differ in size: {sequence.frame_path(first).name} is "
                              f"{first_size[0]}x{first_size[1]}, {sequence.frame_path(other).name} is {other_size[0]}x{other_size[1]}")
    return sequence

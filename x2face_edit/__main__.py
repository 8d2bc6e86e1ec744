"""``python -m x2face_edit`` (and ``torchrun -m x2face_edit``) runs the command line."""

from .cli import main

main()

"""x2face-edit: edit faces in video with X2Face.

The package imports nothing heavy at the top so that its training half runs on machines
without video or face-detection libraries; import the submodules you need::

    from x2face_edit.model import X2Face, ModelConfig, load_checkpoint
"""

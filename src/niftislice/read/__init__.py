"""Readers: every input format ends as a checked :class:`~.nifti.NiftiFile` description plus a
stream of voxel volumes, handed to the same orientation/window/slicing steps."""

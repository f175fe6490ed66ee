"""The round trip: exported images (and their sidecar) back into a NIfTI volume."""

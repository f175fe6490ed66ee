"""Many inputs: discovery, output layout, resume, parallel workers, Dask, per-input results."""

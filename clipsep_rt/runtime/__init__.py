"""Runtime: audio/video input and output and batch separation."""

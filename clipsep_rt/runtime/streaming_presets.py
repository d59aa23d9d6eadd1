"""The streaming latency presets, free of torch so that the command line can offer them
(`--latency`, `bench --preset`) without loading the runtime."""

# name -> (hop frames H, look-ahead frames L): algorithmic latency at 16 kHz / hop 256
PRESETS = {
    "low": (2, 1),  # 96 ms: for GPUs (one network call every 32 ms)
    "balanced": (12, 4),  # 304 ms: one network call every 192 ms, real time on 2 CPU cores in bf16
    "quality": (16, 32),  # 816 ms: more context after each frame
}

"""Runtime: engines, the offline and streaming separators, live audio and file jobs."""

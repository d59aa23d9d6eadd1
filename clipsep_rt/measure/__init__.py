"""Measurement: streaming latency and throughput of engines on this machine, the machine's
description, and result tables (used by `clipsep-rt bench` and the scripts in benchmarks/)."""

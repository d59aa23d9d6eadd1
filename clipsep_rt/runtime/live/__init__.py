"""Live audio: PortAudio devices (devices), the real-time buffers (buffers), the separation
worker thread (worker), the runner that ties a microphone (or a paced file) to speakers
and/or a recording (runner), what a run reports (status) and query switches typed on stdin
(stdin)."""

"""Live audio: PortAudio devices (devices) and their streams (streams), the real-time buffers
(buffers), the separation worker thread (worker), the recordings that outlive its failures
(recording), how a run is sized (plan), the runner that ties a microphone (or a paced file)
to speakers and/or a recording (runner), what a run reports (status, from the runner's
snapshot) and query switches typed on stdin (stdin)."""

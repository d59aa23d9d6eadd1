"""Signal processing: the spectral front end (STFT, log-frequency warp, masks), network
windowing, and separation metrics. Pure functions of arrays and tensors."""

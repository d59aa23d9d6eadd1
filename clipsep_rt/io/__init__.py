"""Media and file I/O: decoding and encoding audio and video, input expansion, resampling,
atomic writes. Depends on nothing in clipsep_rt but `errors`."""

"""`clipsep-rt separate ... --report DIR`: a static HTML page of what was separated.

- `spectrogram`: log-frequency spectrogram PNGs on the model's own warp (matplotlib, Agg).
- `page`: the HTML page, a pure function of the results.
- `build`: `ReportJob`, which checks the request, separates in memory and writes the folder.
"""

from clipsep_rt.report.build import GroundTruth, ReportJob

__all__ = ["GroundTruth", "ReportJob"]

"""The file jobs' building blocks: the batch job's row layout, the results manifest, input lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clipsep_rt.errors import OptionError
from clipsep_rt.io.inputs import collect_inputs
from clipsep_rt.jobs.batch import BatchJob
from clipsep_rt.jobs.outputs import OutputOptions
from clipsep_rt.jobs.results import FileResult, ResultsManifest


def test_a_batch_job_refuses_noise_heads_the_outputs_do_not_expect(tmp_path):
    """Queries prepared with noise heads give Q * (1 + H) rows: written without --noise-heads,
    query 2 and the union would read query 1's noise-head rows."""
    vectors = np.ones((2, 8), np.float32)
    with pytest.raises(OptionError, match="noise_heads"):
        BatchJob(("a", "b"), vectors, OutputOptions(combine=True), tmp_path, noise_heads=2)
    with pytest.raises(OptionError, match="noise_heads"):
        BatchJob(("a", "b"), vectors, OutputOptions(noise_heads=True), tmp_path, noise_heads=0)
    job = BatchJob(("a", "b"), vectors, OutputOptions(noise_heads=True, combine=True), tmp_path, noise_heads=2)
    rows = {target.name: target.row for target in job.targets}
    assert rows == {"a": 0, "a_noise1": 1, "a_noise2": 2, "b": 3, "b_noise1": 4, "b_noise2": 5, "combined": 6}
    assert job.union_rows == [0, 3]


def test_a_result_after_a_torn_manifest_line_is_kept(tmp_path):
    """A crash mid-write leaves a line without its end: the next result starts a line of its own."""
    manifest = ResultsManifest(tmp_path)
    manifest.append(FileResult(str(tmp_path / "a.wav")))
    with open(manifest.path, "a", encoding="utf-8") as handle:
        handle.write('{"input": "' + str(tmp_path / "b.wav") + '", "outp')
    manifest.append(FileResult(str(tmp_path / "c.wav")))
    assert sorted(Path(name).name for name in manifest.read()) == ["a.wav", "c.wav"]
    manifest.append(FileResult(str(tmp_path / "d.wav")))  # and no blank line before a whole one
    assert manifest.path.read_text().count("\n\n") == 0 and len(manifest.read()) == 3


def test_an_input_list_that_names_nothing_is_an_error(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing yet\n\n")
    (tmp_path / "a.wav").write_bytes(b"")
    found = collect_inputs([str(tmp_path / "empty.txt"), str(tmp_path / "a.wav")])
    assert found.files == [tmp_path / "a.wav"]
    assert found.errors == [f"{tmp_path / 'empty.txt'}: the list names no inputs"]

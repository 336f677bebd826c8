"""tclib.search.bigfile: TeachCLIP's BigFile layout written and read back, an index exported and indexed
again, and a test split's features whose evaluation (as TeachCLIP's evaluation.py computes it) gives
tclib's metrics."""

import numpy as np
import pandas as pd
import pytest

from tclib.errors import DataError
from tclib.experiment.runs import parse_run
from tclib.metrics import retrieval_metrics
from tclib.search.bigfile import export_index, export_split, read_bigfile, write_bigfile
from tclib.search.build import IndexJob, build_index, import_bigfile
from tclib.search.model import student_spec
from tclib.search.query import Index
from tclib.search.units import collection_of

RUN, SEED = "teachclip:xclip+ts2net", 0


def test_the_layout_is_what_teachclip_reads(tmp_path):
    vectors = np.arange(6, dtype=np.float32).reshape(3, 2)
    folder = write_bigfile(tmp_path / "f", ["v1", "v2", "v3"], vectors)
    assert (folder / "shape.txt").read_text() == "3 2\n" and (folder / "id.txt").read_text() == "v1\nv2\nv3\n"
    assert (folder / "feature.bin").read_bytes() == vectors.tobytes()  # float32 rows, row after row
    ids, read = read_bigfile(folder)
    assert ids == ["v1", "v2", "v3"] and np.array_equal(read, vectors)
    with pytest.raises(DataError, match=r"cannot be empty or hold whitespace: 'my video', 'tab\\there'"):
        write_bigfile(tmp_path / "g", ["my video", "tab\there", "ok"], vectors)
    with pytest.raises(DataError, match="'v1' repeats"):
        write_bigfile(tmp_path / "h", ["v1", "v1", "v2"], vectors)
    (folder / "shape.txt").write_text("4 2\n")
    with pytest.raises(DataError, match="4 ids|shape.txt says 4"):
        read_bigfile(folder)


def test_an_index_exported_and_indexed_again_searches_the_same(demo_run, synthetic_set, tmp_path):
    _, P = demo_run
    spec = student_spec(P, RUN, SEED)
    build_index(IndexJob(tmp_path / "index", collection_of(videos=str(synthetic_set / "videos")), spec, workers=2))
    export_index(tmp_path / "index", tmp_path / "bigfile")
    import_bigfile(tmp_path / "again", tmp_path / "bigfile", spec)
    queries = ["a red circle", "a blue square on a gray background"]
    a, b = Index(tmp_path / "index").search(queries, 5), Index(tmp_path / "again").search(queries, 5)
    assert a.key.tolist() == b.key.tolist()
    np.testing.assert_allclose(a.score, b.score, atol=2e-3)  # float16 vectors, normalized again


def test_the_split_features_give_tclibs_metrics_under_teachclips_evaluation(demo_run, tmp_path, monkeypatch):
    import tclib.experiment.data as data_stage

    exp_dir, P = demo_run
    reads = []
    prepared = data_stage.prepared_data
    monkeypatch.setattr(data_stage, "prepared_data", lambda *args: reads.append(1) or prepared(*args))
    out = export_split(P, RUN, SEED, tmp_path / "export")
    assert len(reads) == 1  # the data stage is read once, for the student and for the test set
    # TeachCLIP's evaluation.py: queries and videos in the order the gt file names them first, both
    # L2-normalized, one similarity matrix; with one caption per video its metrics are the matrix's
    pairs = [line.split("\t") for line in (out / "gt.txt").read_text().splitlines()]
    query_ids, video_ids = list(dict.fromkeys(q for q, _ in pairs)), list(dict.fromkeys(v for _, v in pairs))
    (qid, q), (vid, v) = read_bigfile(out / "queries"), read_bigfile(out / "videos")
    q = q[[qid.index(i) for i in query_ids]]
    v = v[[vid.index(i) for i in video_ids]]
    sim = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T
    assert sim.shape[0] == sim.shape[1]  # the demo's test split: one caption per video
    ours = retrieval_metrics(sim)
    metrics = pd.read_csv(exp_dir / "metrics.csv")
    row = metrics[(metrics.model == parse_run(RUN).label) & (metrics.seed == SEED)].iloc[0]
    for key in ("R1", "R5", "R10", "MdR", "MnR"):
        assert ours[key] == pytest.approx(row[f"t2v_{key}"]), key


def test_an_interrupted_import_resumed_with_another_shard_size_is_the_whole_import(demo_run, tmp_path, monkeypatch):
    import tclib.search.build as build

    _, P = demo_run
    spec = student_spec(P, RUN, SEED)
    dim = spec.load().clip.text_projection.shape[-1]
    ids = [f"clip{i}" for i in range(7)]
    write_bigfile(tmp_path / "bigfile", ids, np.random.default_rng(0).normal(size=(7, dim)).astype(np.float32))
    import_bigfile(tmp_path / "straight", tmp_path / "bigfile", spec, shard_size=3)

    written = []
    write_shard = build.write_shard

    def interrupted(*args, **kwargs):
        if written:
            raise KeyboardInterrupt  # after the first shard of 3
        written.append(write_shard(*args, **kwargs))

    monkeypatch.setattr(build, "write_shard", interrupted)
    with pytest.raises(KeyboardInterrupt):
        import_bigfile(tmp_path / "resumed", tmp_path / "bigfile", spec, shard_size=3)
    monkeypatch.setattr(build, "write_shard", write_shard)
    report = import_bigfile(tmp_path / "resumed", tmp_path / "bigfile", spec, shard_size=2)
    assert (report.reused, report.encoded) == (3, 4)
    queries = ["a red circle", "a blue square on a gray background"]
    a, b = Index(tmp_path / "straight").search(queries, 7), Index(tmp_path / "resumed").search(queries, 7)
    assert a.key.tolist() == b.key.tolist() and sorted(set(a.key)) == ids
    np.testing.assert_allclose(a.score, b.score, rtol=0, atol=1e-6)

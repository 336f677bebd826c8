"""tclib.search.query on the small demo: an index of the test split ranks every test caption's video as
04_evaluate does; queries, models and index folders that do not fit are refused, naming why."""

import json

import pandas as pd
import pytest

from tclib.cli import main
from tclib.errors import ParamsError
from tclib.experiment.data import split_annotations
from tclib.experiment.runs import parse_run
from tclib.search.build import IndexJob, build_index
from tclib.search.model import ModelMismatch, student_spec
from tclib.search.query import Index
from tclib.search.store import IndexMismatch
from tclib.search.units import collection_of

RUN, SEED = "teachclip:xclip", 1


@pytest.fixture(scope="module")
def test_index(demo_run, tmp_path_factory):
    _, P = demo_run
    out = tmp_path_factory.mktemp("index") / "test"
    build_index(IndexJob(out, collection_of(split=(P, P.test_split)), student_spec(P, RUN, SEED), batch_size=3, workers=2,
                shard_size=5))
    return out


def test_searching_every_test_caption_gives_the_ranks_of_the_evaluation(demo_run, test_index):
    exp_dir, P = demo_run
    test = split_annotations(P, P.test_split)
    index = Index(test_index)
    assert len(index) == test.clip_id.nunique() and index.manifest["index"]["kind"] == "exact"
    results = index.search(list(test.caption), k=len(index))
    k = len(index)
    ours = [int(results.iloc[i * k:(i + 1) * k].query("key == @clip")["rank"].item()) for i, clip in
            enumerate(test.clip_id)]
    ranks = pd.read_csv(exp_dir / "ranks.csv")
    evaluated = ranks[(ranks.model == parse_run(RUN).label) & (ranks.seed == SEED)].sort_values("caption")
    assert ours == evaluated["rank"].tolist()
    assert list(results.columns) == ["query", "rank", "score", "key", "video_id", "path", "start", "end", "clock",
                                    "truncated"]
    assert results.groupby("query", sort=False)["score"].apply(lambda s: s.is_monotonic_decreasing).all()


def test_queries_that_do_not_fit(test_index):
    index = Index(test_index)
    with pytest.raises(ParamsError, match="query 2 of 2 is empty"):
        index.search(["a red circle", "  "])
    long = " ".join(["a red circle on a blue background"] * 10)
    results = index.search([long, "a red circle"], k=2)
    assert results.truncated.tolist() == [True, True, False, False]


def test_another_model_or_a_changed_folder_is_refused(demo_run, test_index, tmp_path):
    import shutil

    _, P = demo_run
    with pytest.raises(ModelMismatch, match="afa"):  # a meanP student: another head, no AFA
        Index(test_index, model=student_spec(P, "clip4clip-meanP", SEED))
    with pytest.raises(ModelMismatch, match="weights"):
        Index(test_index, model=student_spec(P, RUN, 0))  # the same run, another seed: other weights
    broken = shutil.copytree(test_index, tmp_path / "broken")
    units = (broken / "units.csv").read_text().splitlines()
    (broken / "units.csv").write_text("\n".join(units[:-1]) + "\n")  # a unit less than the manifest says
    with pytest.raises(IndexMismatch, match="units: the manifest says"):
        Index(broken)
    with pytest.raises(ParamsError, match="not a finished index"):
        Index(tmp_path)


def test_tclib_search_prints_the_best_units(test_index, capsys):
    assert main(["search", str(test_index), "a red circle", "-k", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "a red circle" and len(out) == 4 and out[1].split()[0] == "1"
    assert main(["search", str(test_index), "a red circle", "-k", "2", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["start"] is None
    assert main(["search", str(test_index), " "]) == 2  # an empty query: the kit's error, exit code 2


def test_index_is_importable_from_the_package():
    import tclib.search
    from tclib.search import Index, export_student, exported_spec
    from tclib.search.exported import export_student as writes
    from tclib.search.query import Index as QueryIndex

    assert Index is QueryIndex and export_student is writes and exported_spec.__module__ == "tclib.search.exported"
    with pytest.raises(AttributeError, match="has no attribute 'Indx'"):
        tclib.search.Indx  # noqa: B018 (the attribute access is what is tested)

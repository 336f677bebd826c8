"""tclib.search.demo and .views on the small demo: the test split's index and moments of joined videos,
and how a result is judged to show a caption's own video."""

import pandas as pd

from tclib.experiment.data import prepare_data
from tclib.search import demo, views
from tclib.search.query import Index


def test_the_demo_indexes_and_the_moments_a_caption_finds(demo_run):
    _, P = demo_run
    folders = demo.experiment_indexes(P)
    assert set(folders) == {"test", "moments"}
    assert demo.experiment_indexes(P) == folders  # a rerun: found done
    moments = Index(folders["moments"])
    truth = views.truth_of(moments)
    assert len(truth) == 2  # the 8 test videos of the small demo, 4 a long video
    for video, parts in truth.items():  # every long video cut into 4 s moments every 2 s, to its end
        units = moments.units[moments.units.video_id == video]
        assert units.start.tolist() == list(range(0, parts[-1]["end"] - 4 + 1, 2)) + (
            [parts[-1]["end"] - 4] if (parts[-1]["end"] - 4) % 2 else [])
    recall = demo.moment_recall(moments, prepare_data(P).test)
    assert recall.captions.item() == 8 and recall.moments.item() == len(moments)
    assert 0 <= recall["R@1"].item() <= recall["R@5"].item() <= recall["R@10"].item() <= 100


def test_a_result_shows_the_video_itself_or_a_moment_inside_its_stretch():
    truth = {"long0": [{"video_id": "v1", "start": 0, "end": 10}, {"video_id": "v2", "start": 10, "end": 22}]}
    row = lambda key, video, start, end: pd.Series({"key": key, "video_id": video, "start": start, "end": end})  # noqa
    assert views.is_correct(row("long0@12-16", "long0", 12, 16), "v2", truth)
    assert not views.is_correct(row("long0@8-12", "long0", 8, 12), "v2", truth)  # across two videos
    assert not views.is_correct(row("long0@2-6", "long0", 2, 6), "v2", truth)
    assert views.is_correct(row("v2", "v2", pd.NA, pd.NA), "v2", truth)  # a whole video: itself
    assert not views.is_correct(row("v2", "v2", pd.NA, pd.NA), None, truth)


def test_the_search_widget_follows_the_query(demo_run, monkeypatch):
    _, P = demo_run
    index = Index(demo.experiment_indexes(P)["moments"])
    shown = []
    attention_of = views.attention_of
    monkeypatch.setattr(views, "attention_of", lambda index, key: shown.append(key) or attention_of(index, key))
    query, _, pick, _ = views.widget(index, k=3).children
    text = "a blue square in front of a white backdrop"
    query.value = text
    assert list(pick.options) == index.search(text, 3).key.tolist() and pick.value == pick.options[0]
    assert shown[-1] == pick.value  # the best moment's frames under AFA, without a click

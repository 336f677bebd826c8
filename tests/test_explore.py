"""The explorer (tclib.explore) over the small demo's trained models."""


import numpy as np
import pandas as pd
import pytest

from tclib.experiment.data import prepare_data


@pytest.fixture(scope="module")
def explorer(demo_run):
    from tclib.explore import Explorer

    _, params = demo_run
    return Explorer(params, prepare_data(params), device="cpu")

def test_explorer_ranks_a_test_caption_as_the_evaluation_does(demo_run, explorer):
    exp_dir, _ = demo_run
    ranks = pd.read_csv(exp_dir / "ranks.csv")
    captions = explorer.captions
    for i in range(len(captions)):
        if captions.count(captions[i]) > 1:
            continue
        table = explorer.rank(captions[i], k=3)
        assert len(table) == 3 * len(explorer.models)
        for model, group in table.groupby("model"):
            expected = ranks[(ranks.model == model) & (ranks.seed == 0) & (ranks.caption == i)]["rank"].item()
            assert group.correct_rank.iloc[0] == expected, (model, i)
            assert group.correct.any() == (expected <= 3)
            assert list(group.place) == [1, 2, 3] and group.score.is_monotonic_decreasing

def test_explorer_takes_any_query_text(explorer):
    query = "a green square in front of a white backdrop"
    assert query not in explorer.captions
    table = explorer.rank(query, k=5)
    assert len(table) == 5 * len(explorer.models) and not table.correct.any() and table.correct_rank.isna().all()
    assert explorer.ranking_figure(query, k=5).axes

def test_explorer_attention_of_a_video_for_two_captions(explorer):
    video_id = explorer.video_ids[0]
    own = explorer.data.test.caption[explorer.data.test.clip_id == video_id].iloc[0]
    mine = explorer.attention(video_id, own)
    other = explorer.attention(video_id, "a green square in front of a white backdrop")
    afa = [label for label in mine.index if label.endswith(" AFA")]
    teachers = [label for label in mine.index if label.endswith(" relevance")]
    assert len(afa) == 3 and len(teachers) == 3 and "ground truth" in mine.index and "ground truth" not in other.index
    np.testing.assert_allclose(mine.loc[afa + teachers].sum(axis=1), 1.0, atol=1e-5)
    pd.testing.assert_frame_equal(mine.loc[afa], other.loc[afa])  # AFA never sees the caption
    assert not np.allclose(mine.loc[teachers[0]], other.loc[teachers[0]])  # a teacher's relevance does
    with pytest.raises(KeyError, match="not a test video"):
        explorer.attention("no-such-video", own)

def test_explorer_widget_follows_the_query(explorer):
    box = explorer.widget(k=3)
    pick, query, video = box.children[0], box.children[1], box.children[4]
    first_student = next(iter(explorer.models))  # noqa: F841 (read by the query string below)
    # a text of one's own: the first model's best video is shown
    text = "a red circle moving across a dark background"
    query.value = text
    assert video.value == explorer.rank(text, 1).query("model == @first_student").video_id.item()
    # a test caption picked from the list: its own video
    caption = explorer.captions[-1]
    pick.value = caption
    assert query.value == caption and video.value == explorer.correct_video(caption)


def test_the_bank_places_every_model_on_its_device_and_scores_them_on_one_scale(demo_run, explorer):
    from tclib.evaluate import similarity_matrix

    bank = explorer.bank
    assert all(next(model.parameters()).device == bank.device for model in bank.models.values())
    assert all(not model.training for model in bank.models.values())
    caption = 0  # the first test caption: its row of each model's evaluation logits
    scores = bank.scores(explorer.captions[caption])
    for label in ("TeachCLIP (X-CLIP + TS2-Net)", "X-CLIP (teacher)"):  # a student and a teacher
        logits, _ = similarity_matrix(bank.models[label], bank.test, 50, bank.device)
        np.testing.assert_allclose(scores[label], logits[caption], rtol=1e-4, atol=1e-3)  # not cosines: logits

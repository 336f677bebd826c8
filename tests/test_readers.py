"""Tests of tclib.data.readers: one tiny fake data set per layout, values derived by hand."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import N_TRAIN, read_json_file

from tclib.data import PAPER_COUNTS, READERS, VideoIndex, check_dataset, get_reader, read_annotations
from tclib.data.readers import COLUMNS, coerce_options
from tclib.errors import DataError


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, data) -> Path:
    return write(path, json.dumps(data))


def write_pickle(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(data))
    return path


def no_segment(df: pd.DataFrame) -> bool:
    return bool(df["start"].isna().all() and df["end"].isna().all())


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------


def msrvtt_layout(root: Path) -> Path:
    ann = root / "Annotations"
    sentences = [
        {"video_id": "video0", "caption": "a cat", "sen_id": 0},
        {"video_id": "video1", "caption": "a dog", "sen_id": 1},
        {"video_id": "video0", "caption": "a kitten", "sen_id": 2},
        {"video_id": "video2", "caption": "a bird", "sen_id": 3},
    ]
    write_json(ann / "MSRVTT_data.json", {"videos": [], "sentences": sentences})
    write(ann / "MSRVTT_train.9k.csv", "video_id\nvideo0\nvideo1\n")
    write(ann / "MSRVTT_train.7k.csv", "video_id\nvideo1\n")
    write(ann / "MSRVTT_JSFUSION_test.csv", "key,vid_key,video_id,sentence\nret0,msr2,video2,a bird flies\n")
    touch(root / "MSRVTT_Videos" / "video0.mp4")
    touch(root / "MSRVTT_Videos" / "video1.avi")
    return root


def vatex_layout(root: Path) -> Path:
    sentences = [
        {"video_id": "vA", "caption": "one"},
        {"video_id": "vB", "caption": "two"},
        {"video_id": "vA", "caption": "three"},
    ]
    write_json(root / "VATEX_data.json", {"sentences": sentences})
    write(root / "VATEX_train.csv", "video_id\nvA\n")
    write(root / "VATEX_val.csv", "video_id,sentence\nvB,two b\n")
    write(root / "VATEX_test.csv", "video_id,sentence\nvC,c one\nvC,c two\n")
    touch(root / "VideoData" / "vA.webm")
    return root


def msvd_layout(root: Path) -> Path:
    write(root / "train_list.txt", "vidA_1_5\nvidB_0_3\n\n")
    write(root / "val_list.txt", "vidC_2_4\n")
    write(root / "test_list.txt", "vidB_0_3\n")
    captions = {
        "vidA_1_5": [["a", "man", "sings"], ["someone", "sings"]],
        "vidB_0_3": [["a", "dog", "runs"]],
        "vidC_2_4": [["rain"]],
    }
    write_pickle(root / "raw-captions.pkl", captions)
    touch(root / "YouTubeClips" / "vidA_1_5.avi")
    return root


def didemo_layout(root: Path) -> Path:
    write(root / "test_list.txt", "v2.mp4\nv1.mov\nv3\n")
    data = [
        {"video": "v1.mov", "description": "a man walks", "times": [[0, 0], [0, 1]]},
        {"video": "v2.mp4", "description": "a red car", "times": [[2, 3]]},
        {"video": "v1.mov", "description": "he stops", "times": [[4, 4]]},
        {"video": "v9", "description": "not in the list", "times": [[1, 1]]},
    ]
    write_json(root / "test_data.json", data)
    touch(root / "DiDeMo_Videos" / "v1.mov.mp4")  # TeachCLIP: "<id>.mp4" with the id keeping its extension
    touch(root / "DiDeMo_Videos" / "v2.mp4")  # CLIP4Clip: the file name is the id
    return root


def activitynet_layout(root: Path) -> Path:
    ann = root / "Annotations"
    write_json(ann / "val_ids.json", ["v_abc", "v_def", "v_abc", "v_ghi"])
    write_json(
        ann / "val_1.json",
        {
            "v_abc": {"duration": 12.3, "timestamps": [[0.5, 3.0], [4.0, 12.0]],
                      "sentences": ["A man runs.", " He jumps."]},
            "v_def": {"duration": 20.0, "timestamps": [[1, 2]], "sentences": ["Rain falls."]},
        },
    )
    write_json(ann / "train_ids.json", ["v_xyz"])
    write_json(ann / "train.json", {"v_xyz": {"duration": "7", "timestamps": [], "sentences": ["x"]}})
    touch(root / "Activity_Videos" / "v_abc.mkv")  # TeachCLIP naming
    touch(root / "Activity_Videos" / "def.mp4")  # CLIP4Clip naming (no "v_")
    return root


def teachclip_layout(root: Path) -> Path:
    write(root / "VideoSet" / "msrvtt1k-test.txt", "video7\nvideo8\nvideo9\n")
    write(root / "VideoSet" / "msrvtt1k-train.txt", "video1\nvideo2\n")
    write(root / "QuerySet" / "msrvtt1k-test-query.txt", "video8#0\ta dog barks\nvideo7#0\ta cat\tsleeps\n")
    write(root / "Annotations" / "msrvtt1k-gt.txt", "video8#0\tvideo8\nvideo7#0\tvideo7\n")
    touch(root / "VideoData" / "video7.mp4")
    touch(root / "VideoData" / "video9.avi")
    return root


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def test_registry_has_every_dataset_and_same_columns(tmp_path):
    assert sorted(READERS) == ["activitynet", "didemo", "msrvtt", "msvd", "teachclip", "vatex"]
    df = read_annotations("msrvtt", msrvtt_layout(tmp_path), "test")
    assert list(df.columns) == COLUMNS == ["video_id", "caption", "split", "start", "end", "clip_id", "video_path"]


def test_msrvtt_train_and_test(tmp_path):
    root = msrvtt_layout(tmp_path)
    train = read_annotations("msrvtt", root, "train")
    # sentences of the training videos in json order
    assert train["video_id"].tolist() == ["video0", "video1", "video0"]
    assert train["caption"].tolist() == ["a cat", "a dog", "a kitten"]
    assert (train["split"] == "train").all() and no_segment(train)
    assert train["clip_id"].tolist() == train["video_id"].tolist()
    assert train["video_path"].tolist() == [
        str(root / "MSRVTT_Videos" / "video0.mp4"),
        str(root / "MSRVTT_Videos" / "video1.avi"),
        str(root / "MSRVTT_Videos" / "video0.mp4"),
    ]
    test = read_annotations("msrvtt", root, "test")
    assert test[["video_id", "caption"]].values.tolist() == [["video2", "a bird flies"]]
    # no file: the .mp4 path under the first existing video folder
    assert test["video_path"].tolist() == [str(root / "MSRVTT_Videos" / "video2.mp4")]


def test_msrvtt_options_and_count_keys(tmp_path):
    root = msrvtt_layout(tmp_path)
    first = read_annotations("msrvtt", root, "train", expand_sentences=False)
    assert first[["video_id", "caption"]].values.tolist() == [["video0", "a cat"], ["video1", "a dog"]]
    seven = read_annotations("msrvtt", root, "train", train_csv="MSRVTT_train.7k.csv")
    assert seven["caption"].tolist() == ["a dog"]
    reader = get_reader("msrvtt")
    assert reader.expected_counts("train") == PAPER_COUNTS["msrvtt"]["train"]
    assert reader.expected_counts("train", {"train_csv": "MSRVTT_train.7k.csv"}).videos == 7010
    assert reader.expected_counts("test", {"test_csv": "MSRVTT_full_split_test.csv"}).videos == 2990


def test_paper_counts_are_consistent():
    msrvtt = PAPER_COUNTS["msrvtt"]
    assert (msrvtt["train"].videos, msrvtt["train"].captions) == (9000, 20 * 9000)
    assert (msrvtt["train-7k"].videos, msrvtt["train-7k"].captions) == (6513 + 497, 20 * 7010)
    for name in ("didemo", "activitynet"):  # paragraph retrieval: one query per video
        assert all(c.videos == c.captions for c in PAPER_COUNTS[name].values())
    assert "vatex" not in PAPER_COUNTS


def test_vatex_splits(tmp_path):
    root = vatex_layout(tmp_path)
    train = read_annotations("vatex", root, "train")
    assert train[["video_id", "caption"]].values.tolist() == [["vA", "one"], ["vA", "three"]]
    assert train["video_path"].tolist() == [str(root / "VideoData" / "vA.webm")] * 2
    val = read_annotations("vatex", root, "val")
    assert val[["video_id", "caption", "split"]].values.tolist() == [["vB", "two b", "val"]]
    test = read_annotations("vatex", root, "test")
    assert test["caption"].tolist() == ["c one", "c two"] and no_segment(test)
    assert test["video_path"].tolist() == [str(root / "VideoData" / "vC.mp4")] * 2


def test_msvd_tokens_joined_every_caption_a_row(tmp_path):
    root = msvd_layout(tmp_path)
    train = read_annotations("msvd", root, "train")
    assert train[["video_id", "caption"]].values.tolist() == [
        ["vidA_1_5", "a man sings"],
        ["vidA_1_5", "someone sings"],
        ["vidB_0_3", "a dog runs"],
    ]
    assert no_segment(train) and train["clip_id"].tolist() == train["video_id"].tolist()
    assert train["video_path"].tolist() == [str(root / "YouTubeClips" / "vidA_1_5.avi")] * 2 + [
        str(root / "YouTubeClips" / "vidB_0_3.mp4")
    ]
    assert read_annotations("msvd", root, "val")["caption"].tolist() == ["rain"]
    assert read_annotations("msvd", root, "test")["video_id"].tolist() == ["vidB_0_3"]


def test_didemo_paragraphs_and_fixed_segment(tmp_path, caplog):
    root = didemo_layout(tmp_path)
    df = read_annotations("didemo", root, "test")
    # one paragraph per video, descriptions in json order; v3 has none and is skipped; v9 is not listed
    assert df[["video_id", "caption"]].values.tolist() == [["v1.mov", "a man walks he stops"], ["v2.mp4", "a red car"]]
    assert df["start"].tolist() == [0, 0] and df["end"].tolist() == [31, 31]
    assert df["clip_id"].tolist() == ["v1.mov@0-31", "v2.mp4@0-31"]
    assert df["video_path"].tolist() == [
        str(root / "DiDeMo_Videos" / "v1.mov.mp4"),
        str(root / "DiDeMo_Videos" / "v2.mp4"),
    ]
    assert "have no captions" in caplog.text


def test_activitynet_paragraphs_duration_segment_and_file_names(tmp_path):
    root = activitynet_layout(tmp_path)
    df = read_annotations("activitynet", root, "val_1")
    # ids deduplicated, v_ghi has no captions; sentences joined with one space as they are
    assert df[["video_id", "caption", "split"]].values.tolist() == [
        ["v_abc", "A man runs.  He jumps.", "test"],
        ["v_def", "Rain falls.", "test"],
    ]
    assert df["start"].tolist() == [0, 0] and df["end"].tolist() == [13, 20]  # ceil(duration)
    assert df["clip_id"].tolist() == ["v_abc@0-13", "v_def@0-20"]
    assert df["video_path"].tolist() == [
        str(root / "Activity_Videos" / "v_abc.mkv"),
        str(root / "Activity_Videos" / "def.mp4"),
    ]
    assert read_annotations("activitynet", root, "val")["video_id"].tolist() == ["v_abc", "v_def"]
    train = read_annotations("activitynet", root, "train")
    assert train[["caption", "end"]].values.tolist() == [["x", 7]]
    assert train["video_path"].tolist() == [str(root / "Activity_Videos" / "v_xyz.mp4")]


def test_teachclip_queries_gt_and_gallery(tmp_path):
    root = teachclip_layout(tmp_path)
    assert get_reader("teachclip").available_splits(root) == ("msrvtt1k-test", "msrvtt1k-train")
    df = read_annotations("teachclip", root, "msrvtt1k-test")
    assert df["video_id"].tolist() == ["video8", "video7", "video9"]
    # split on the first tab only; video9 is a gallery video without query
    assert df["caption"].tolist()[:2] == ["a dog barks", "a cat\tsleeps"]
    assert df["caption"].isna().tolist() == [False, False, True]
    assert no_segment(df)
    assert df["video_path"].tolist() == [
        str(root / "VideoData" / "video8.mp4"),
        str(root / "VideoData" / "video7.mp4"),
        str(root / "VideoData" / "video9.avi"),
    ]
    train = read_annotations("teachclip", root, "msrvtt1k-train")
    assert train["video_id"].tolist() == ["video1", "video2"] and train["caption"].isna().all()


def test_teachclip_didemo_segment_from_path_and_gt_option(tmp_path):
    root = tmp_path / "didemo"
    write(root / "VideoSet" / "didemo-test.txt", "a\nb\n")
    write(root / "QuerySet" / "didemo-test-query.txt", "q1\tfirst\n")
    write(root / "Annotations" / "truth.txt", "q1\tb\n")
    with pytest.raises(DataError, match="didemo-gt.txt"):
        read_annotations("teachclip", root, "didemo-test")
    df = read_annotations("teachclip", root, "didemo-test", gt_file="truth.txt")
    assert df["clip_id"].tolist() == ["b@0-31", "a@0-31"]
    plain = read_annotations("teachclip", root, "didemo-test", gt_file="truth.txt", didemo_segment=False)
    assert plain["clip_id"].tolist() == ["b", "a"]


# ---------------------------------------------------------------------------------------------
# Video paths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["videos", "MSRVTT_Videos", "VideoData", "MSVD_Videos", "YouTubeClips",
                                    "DiDeMo_Videos", "Activity_Videos", "Videos"])
@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v"])
def test_video_found_in_each_folder_and_extension(tmp_path, folder, ext):
    path = touch(tmp_path / folder / f"clip{ext}")
    assert VideoIndex(tmp_path).find(["clip"]) == str(path)


def test_video_index_order_nesting_case_root_and_default(tmp_path):
    touch(tmp_path / "VideoData" / "a.mp4")
    first = touch(tmp_path / "videos" / "a.mp4")
    nested = touch(tmp_path / "videos" / "all" / "b.MP4")
    at_root = touch(tmp_path / "c.webm")
    touch(tmp_path / "d.json")
    bare = touch(tmp_path / "VideoData" / "e.3gp")
    index = VideoIndex(tmp_path)
    assert index.find(["a"]) == str(first)  # same name: videos/ is listed before VideoData/
    assert index.find(["b"]) == str(nested)
    assert index.find(["c"]) == str(at_root)
    assert index.find(["e.3gp"]) == str(bare)  # an id that carries its extension
    assert index.find(["d"]) == str(tmp_path / "videos" / "d.mp4")  # root files count only as videos
    assert VideoIndex(tmp_path / "empty").find(["x"]) == str(tmp_path / "empty" / "x.mp4")


def test_videos_dir_overrides_the_root(tmp_path):
    root = msrvtt_layout(tmp_path / "set")
    elsewhere = touch(tmp_path / "disk" / "sub" / "video2.mov")
    df = read_annotations("msrvtt", root, "test", videos_dir=tmp_path / "disk")
    assert df["video_path"].tolist() == [str(elsewhere)]
    train = read_annotations("msrvtt", root, "train", videos_dir=tmp_path / "disk")
    assert train["video_path"].iloc[0] == str(tmp_path / "disk" / "video0.mp4")
    with pytest.raises(DataError, match="videos folder not found: .*nowhere"):
        read_annotations("msrvtt", root, "test", videos_dir=tmp_path / "nowhere")


def test_index_is_built_once_per_read(tmp_path, monkeypatch):
    import os

    root = msvd_layout(tmp_path)
    calls = []
    walk = os.walk
    monkeypatch.setattr(os, "walk", lambda folder, **kwargs: calls.append(folder) or walk(folder, **kwargs))
    read_annotations("msvd", root, "train")
    assert calls == [root / "YouTubeClips"]  # one listing of the one video folder, whatever the number of videos


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dataset, layout, split, remove",
    [
        ("msrvtt", msrvtt_layout, "train", "Annotations/MSRVTT_data.json"),
        ("msrvtt", msrvtt_layout, "test", "Annotations/MSRVTT_JSFUSION_test.csv"),
        ("vatex", vatex_layout, "train", "VATEX_data.json"),
        ("vatex", vatex_layout, "val", "VATEX_val.csv"),
        ("msvd", msvd_layout, "train", "raw-captions.pkl"),
        ("msvd", msvd_layout, "test", "test_list.txt"),
        ("didemo", didemo_layout, "test", "test_data.json"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_ids.json"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_1.json"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "VideoSet/msrvtt1k-test.txt"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "Annotations/msrvtt1k-gt.txt"),
    ],
)
def test_missing_annotation_file(tmp_path, dataset, layout, split, remove):
    root = layout(tmp_path)
    (root / remove).unlink()
    with pytest.raises(DataError, match="not found") as err:
        read_annotations(dataset, root, split)
    assert Path(remove).name in str(err.value) and str(root) in str(err.value)


def _break(root: Path, relative: str, content: str | bytes) -> Path:
    path = root / relative
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


@pytest.mark.parametrize(
    "dataset, layout, split, relative, content, message",
    [
        ("didemo", didemo_layout, "test", "test_data.json", "[{\"video\": ", "invalid JSON"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_1.json", "{oops", "invalid JSON"),
        ("vatex", vatex_layout, "train", "VATEX_data.json", "not json", "invalid JSON"),
        ("msvd", msvd_layout, "train", "raw-captions.pkl", b"\x80\x04garbage", "cannot unpickle"),
        ("msvd", msvd_layout, "train", "raw-captions.pkl", pickle.dumps(["a list"]), "must hold a dict"),
        ("didemo", didemo_layout, "test", "test_data.json", json.dumps([{"video": "v1.mov"}]),
         "entry 0 .*'description'"),
        ("didemo", didemo_layout, "test", "test_data.json", json.dumps({"v1": 1}), "JSON list"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_1.json",
         json.dumps({"v_abc": {"sentences": ["a"]}}), "v_abc.*'duration'"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_1.json",
         json.dumps({"v_abc": {"duration": "long", "sentences": ["a"]}}), "v_abc.*'long' is not a number"),
        ("activitynet", activitynet_layout, "test", "Annotations/val_ids.json", json.dumps({"v_abc": 1}),
         "list of video ids"),
        ("vatex", vatex_layout, "train", "VATEX_data.json", json.dumps({"sentences": [{"video_id": "vA"}]}),
         "sentence 0 .*'caption'"),
        ("vatex", vatex_layout, "test", "VATEX_test.csv", "video_id,caption\nvC,x\n", "no column 'sentence'"),
        ("msrvtt", msrvtt_layout, "train", "Annotations/MSRVTT_train.9k.csv", "id\nvideo0\n", "no column 'video_id'"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "QuerySet/msrvtt1k-test-query.txt",
         "video8#0\ta dog\nvideo7#0 no tab here\n", "line 2 of .*msrvtt1k-test-query.txt"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "Annotations/msrvtt1k-gt.txt",
         "video8#0\tvideo8\textra\n", "line 1 of .*msrvtt1k-gt.txt"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "Annotations/msrvtt1k-gt.txt",
         "video8#0\tvideo8\nvideo7#0\tvideo42\n", "video 'video42' on line 2 of .*msrvtt1k-gt.txt"),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "Annotations/msrvtt1k-gt.txt",
         "video8#5\tvideo8\n", "query 'video8#5' on line 1"),
        ("msvd", msvd_layout, "test", "test_list.txt", "vidB_0_3\nunknown_1_2\n", "unknown_1_2 .*test_list.txt"),
    ],
)
def test_malformed_content(tmp_path, dataset, layout, split, relative, content, message):
    root = layout(tmp_path)
    path = _break(root, relative, content)
    with pytest.raises(DataError, match=message) as err:
        read_annotations(dataset, root, split)
    assert str(path) in str(err.value)


@pytest.mark.parametrize(
    "dataset, layout, split, relative, content",
    [
        ("msrvtt", msrvtt_layout, "train", "Annotations/MSRVTT_data.json",
         json.dumps({"sentences": [{"video_id": "video0", "caption": " "}, {"video_id": "video1", "caption": "b"}]})),
        ("msrvtt", msrvtt_layout, "test", "Annotations/MSRVTT_JSFUSION_test.csv", "video_id,sentence\nvideo2,\n"),
        ("vatex", vatex_layout, "train", "VATEX_data.json",
         json.dumps({"sentences": [{"video_id": "vA", "caption": ""}]})),
        ("vatex", vatex_layout, "test", "VATEX_test.csv", "video_id,sentence\nvC,ok\nvC, \n"),
        ("msvd", msvd_layout, "val", "raw-captions.pkl", pickle.dumps({"vidC_2_4": [[]]})),
        ("didemo", didemo_layout, "test", "test_data.json", json.dumps([{"video": "v2.mp4", "description": "  "}])),
        ("activitynet", activitynet_layout, "test", "Annotations/val_1.json",
         json.dumps({"v_abc": {"duration": 3, "sentences": [""]}})),
        ("teachclip", teachclip_layout, "msrvtt1k-test", "QuerySet/msrvtt1k-test-query.txt", "video8#0\t  \n"),
    ],
)
def test_empty_caption(tmp_path, dataset, layout, split, relative, content):
    root = layout(tmp_path)
    path = _break(root, relative, content)
    with pytest.raises(DataError, match="empty caption") as err:
        read_annotations(dataset, root, split)
    assert str(path) in str(err.value)


def test_unknown_dataset_split_and_option(tmp_path):
    root = msrvtt_layout(tmp_path)
    with pytest.raises(DataError, match="unknown data set 'lsmdc'"):
        read_annotations("lsmdc", root, "test")
    with pytest.raises(DataError, match="unknown msrvtt split 'val'"):
        read_annotations("msrvtt", root, "val")
    with pytest.raises(DataError, match="unknown option 'csv'"):
        read_annotations("msrvtt", root, "test", csv="x.csv")


def test_coerce_options():
    assert coerce_options("msrvtt", {"expand_sentences": "false", "train_csv": "MSRVTT_train.7k.csv"}) == {
        "expand_sentences": False,
        "train_csv": "MSRVTT_train.7k.csv",
    }
    assert coerce_options("teachclip", {"didemo_segment": "yes", "gt_file": "gt.txt"}) == {
        "didemo_segment": True,
        "gt_file": "gt.txt",
    }
    with pytest.raises(DataError, match="true or false"):
        coerce_options("msrvtt", {"expand_sentences": "maybe"})


def test_msrvtt_with_a_relative_root(tmp_path, monkeypatch):
    root = msrvtt_layout(tmp_path)
    monkeypatch.chdir(root.parent)
    relative = Path(root.name)
    assert read_annotations("msrvtt", relative, "train")["caption"].tolist() == ["a cat", "a dog", "a kitten"]
    assert read_annotations("msrvtt", relative, "test")["video_id"].tolist() == ["video2"]


# --------------------------------------------------------------------- MSR-VTT files, broken one by one


@pytest.fixture()
def ann(synthetic_set, tmp_path) -> Path:
    """A copy of the synthetic annotation files (videos not copied) to break."""
    for name in ("MSRVTT_data.json", "MSRVTT_train.9k.csv", "MSRVTT_JSFUSION_test.csv", "relevance.json"):
        shutil.copy(synthetic_set / name, tmp_path / name)
    return tmp_path


def test_msrvtt_reader_missing_files(ann):
    (ann / "MSRVTT_data.json").unlink()
    with pytest.raises(DataError, match=f"not found: {ann / 'MSRVTT_data.json'}"):
        read_annotations("msrvtt", ann, "train")
    with pytest.raises(DataError, match="MSRVTT_JSFUSION_test"):
        read_annotations("msrvtt", ann, "test", test_csv="MSRVTT_JSFUSION_test.csv.missing")
    with pytest.raises(DataError, match="split"):
        read_annotations("msrvtt", ann, "validation")


def test_msrvtt_reader_missing_videos_are_reported(ann):
    df = read_annotations("msrvtt", ann, "test")
    assert df["video_path"].iloc[0] == str(ann / f"video{N_TRAIN}.mp4")  # no video folder: root itself
    assert check_dataset("msrvtt", ann, splits=["test"], decode=False).missing == df["video_path"].tolist()


def test_msrvtt_reader_malformedread_json_file(ann):
    path = ann / "MSRVTT_data.json"
    path.write_text(path.read_text()[:-20])
    with pytest.raises(DataError, match=f"invalid JSON in {path}"):
        read_annotations("msrvtt", ann, "train")


def test_msrvtt_reader_missing_sentences(ann):
    path = ann / "MSRVTT_data.json"
    data = read_json_file(path)
    del data["sentences"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="MSRVTT_data.json has no 'sentences'"):
        read_annotations("msrvtt", ann, "train")


def test_msrvtt_reader_missing_column(ann):
    path = ann / "MSRVTT_JSFUSION_test.csv"
    text = path.read_text().replace("sentence", "text", 1)
    path.write_text(text)
    with pytest.raises(DataError, match=f"{path} has no column 'sentence'"):
        read_annotations("msrvtt", ann, "test")
    path = ann / "MSRVTT_train.9k.csv"
    path.write_text("vid\nvideo0\n")
    with pytest.raises(DataError, match=f"{path} has no column 'video_id'"):
        read_annotations("msrvtt", ann, "train")


def test_msrvtt_reader_empty_caption(ann):
    path = ann / "MSRVTT_data.json"
    data = read_json_file(path)
    data["sentences"][5]["caption"] = "   "
    path.write_text(json.dumps(data))
    vid = data["sentences"][5]["video_id"]
    with pytest.raises(DataError, match=f"empty caption for {vid} \\(sen_id 5\\) in {path}"):
        read_annotations("msrvtt", ann, "train")

    csv_path = ann / "MSRVTT_JSFUSION_test.csv"
    lines = csv_path.read_text().splitlines()
    key, vid_key, vid, _ = lines[2].split(",", 3)
    lines[2] = f"{key},{vid_key},{vid},"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=f"empty caption for {vid} in {csv_path}"):
        read_annotations("msrvtt", ann, "test")


def test_msrvtt_reader_train_video_without_sentence(ann):
    path = ann / "MSRVTT_train.9k.csv"
    path.write_text(path.read_text() + "video999\n")
    with pytest.raises(DataError, match="video999"):
        read_annotations("msrvtt", ann, "train")

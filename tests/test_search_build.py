"""tclib.search.build: `tclib index` over a folder of videos: incremental reruns, resuming (after an
exception or a kill -9) to the index an uninterrupted run makes, one run per folder, two processes
giving one process's vectors, and every kind of bad input with its outcome."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, write_mp4

from tclib.cli import main
from tclib.errors import LockedError
from tclib.lock import experiment_lock
from tclib.search import build as build_module
from tclib.search.build import IndexJob, build_index
from tclib.search.model import ModelMismatch, student_spec
from tclib.search.query import Index
from tclib.search.store import ShardVectors, read_manifest, read_units
from tclib.search.units import CollectionError, Moments, collection_of

RUN, SEED = "teachclip:xclip", 0


@pytest.fixture(scope="module")
def spec(demo_run):
    _, P = demo_run
    return student_spec(P, RUN, SEED)


@pytest.fixture
def videos(synthetic_set, tmp_path) -> Path:
    """A folder of videos to index: four of the synthetic set, two in a subfolder, names with spaces and
    non-ASCII letters, beside files that are not videos."""
    folder = tmp_path / "my videos"
    (folder / "sub dir").mkdir(parents=True)
    for i, name in enumerate(["a.mp4", "b c.mp4", "sub dir/été.mp4", "sub dir/d.mp4"]):
        shutil.copy(synthetic_set / "videos" / f"video{i}.mp4", folder / name)
    (folder / "notes.txt").write_text("not a video")
    (folder / "sub dir" / "thumb.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a video either")
    return folder


def index_of(out: Path) -> tuple[pd.DataFrame, np.ndarray]:
    units = read_units(out)
    return units.drop(columns=["shard", "row"]), ShardVectors(out, units).take(np.arange(len(units)))


def test_a_folder_is_indexed_and_a_rerun_encodes_only_what_changed(videos, spec, tmp_path):
    out = tmp_path / "index"
    first = build_index(IndexJob(out, collection_of(videos=str(videos)), spec, batch_size=2, workers=2, shard_size=3))
    assert (first.units, first.encoded, first.skipped, first.failed) == (4, 4, 2, 0)
    units, vectors = index_of(out)
    assert sorted(units.key) == ["a", "b c", "sub dir/d", "sub dir/été"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-2)  # float16 unit vectors
    assert build_index(IndexJob(out, collection_of(videos=str(videos)), spec, workers=2, shard_size=3)).encoded == 0

    shutil.copy(videos / "a.mp4", videos / "new.mp4")  # a new file
    shutil.copy(videos / "sub dir" / "d.mp4", videos / "b c.mp4")  # a file replaced with other content
    (videos / "sub dir" / "été.mp4").unlink()  # a file gone
    again = build_index(IndexJob(out, collection_of(videos=str(videos)), spec, workers=2, shard_size=3))
    assert (again.encoded, again.reused, again.units) == (2, 2, 4)
    fresh = tmp_path / "fresh"
    build_index(IndexJob(fresh, collection_of(videos=str(videos)), spec, workers=1, shard_size=3))
    (units, vectors), (fresh_units, fresh_vectors) = index_of(out), index_of(fresh)
    assert units.equals(fresh_units) and np.array_equal(vectors, fresh_vectors)  # as if built now


def test_an_interrupted_run_resumes_to_the_index_of_an_uninterrupted_one(videos, spec, tmp_path, monkeypatch):
    for name in ("e.mp4", "f.mp4"):
        shutil.copy(videos / "a.mp4", videos / name)
    encode = build_module.Encoding.encode
    calls = []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return encode(*args)

    monkeypatch.setattr(build_module.Encoding, "encode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index(IndexJob(tmp_path / "resumed", collection_of(videos=str(videos)), spec, batch_size=1, shard_size=2))
    assert len(list((tmp_path / "resumed" / "shards").glob("*.npy"))) == 1 and read_manifest(tmp_path / "resumed") is None
    monkeypatch.setattr(build_module.Encoding, "encode", encode)
    resumed = build_index(IndexJob(tmp_path / "resumed", collection_of(videos=str(videos)), spec, batch_size=1, shard_size=2))
    assert (resumed.encoded, resumed.units) == (4, 6)
    build_index(IndexJob(tmp_path / "whole", collection_of(videos=str(videos)), spec, batch_size=1, shard_size=2))
    (a_units, a), (b_units, b) = index_of(tmp_path / "resumed"), index_of(tmp_path / "whole")
    assert a_units.equals(b_units) and np.array_equal(a, b)


def test_a_kill_9_in_the_middle_of_encoding_loses_only_the_chunk_under_way(videos, demo_run, tmp_path):
    _, P = demo_run
    params = tmp_path / "small.yaml"
    import yaml

    params.write_text(yaml.safe_dump(P.to_dict()))
    command = [sys.executable, "-m", "tclib.cli", "index", str(tmp_path / "killed"), "--videos", str(videos),
               "--params", str(params), "--run", RUN, "--seed", str(SEED), "--segment-seconds", "1",
               "--shard-size", "4", "--batch-size", "1", "--workers", "1"]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "killed" / "shards"
    deadline = time.monotonic() + 120
    while not (shards.is_dir() and len(list(shards.glob("*.npy"))) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(shards.glob("*.npy")))
    assert read_manifest(tmp_path / "killed") is None and 2 <= done
    assert main(command[3:]) == 0  # resumed, in the same folder (the lock went with the killed process)
    assert main(command[3:4] + [str(tmp_path / "whole")] + command[5:]) == 0
    (a_units, a), (b_units, b) = index_of(tmp_path / "killed"), index_of(tmp_path / "whole")
    assert a_units.equals(b_units) and np.array_equal(a, b) and len(a_units) > 4 * done


def test_one_run_per_index_folder_and_one_model_per_index(videos, demo_run, spec, tmp_path):
    _, P = demo_run
    out = tmp_path / "index"
    with experiment_lock(out):
        with pytest.raises(LockedError, match="in use by another run"):
            build_index(IndexJob(out, collection_of(videos=str(videos)), spec))
    build_index(IndexJob(out, collection_of(videos=str(videos)), spec, workers=2))
    with pytest.raises(ModelMismatch, match="was made with another model: it differs in model field"):
        build_index(IndexJob(out, collection_of(videos=str(videos)), student_spec(P, RUN, 1)))


def test_bad_files_are_failures_or_skipped_and_the_rest_is_indexed(videos, spec, tmp_path):
    (videos / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (videos / "empty.mkv").write_bytes(b"")
    report = build_index(IndexJob(tmp_path / "index", collection_of(videos=str(videos)), spec, workers=2))
    assert (report.units, report.failed, report.skipped) == (4, 2, 2)
    failures = pd.read_csv(tmp_path / "index" / "failures.csv")
    assert sorted(failures.unit) == ["corrupt", "empty"]
    assert failures.reason.str.contains(str(videos / "corrupt.mp4"), regex=False).any()
    empty = tmp_path / "nothing"
    (empty / "deeper").mkdir(parents=True)
    (empty / "deeper" / "readme.txt").write_text("no video here")
    with pytest.raises(CollectionError, match=r"no video under .*nothing \(1 other files skipped\)"):
        collection_of(videos=str(empty))


def test_moments_segments_shots_and_their_bad_rows(videos, spec, tmp_path):
    short = tmp_path / "short"
    short.mkdir()
    write_mp4(short / "brief.mp4", np.zeros((4, 32, 32, 3), np.uint8) + 90, fps=2)  # 2 s
    segments = collection_of(videos=str(short), moments=Moments(seconds=5))
    assert segments.units[["key", "start", "end"]].values.tolist() == [["brief@0-2", 0, 2]]  # shorter: whole
    cut = collection_of(videos=str(videos), moments=Moments(seconds=4, stride=2))
    lengths = cut.units.groupby("video_id")["end"].max()
    assert (cut.units.end - cut.units.start <= 4).all() and (lengths >= 10).all()  # to each video's end
    shots = tmp_path / "shots.tsv"
    shots.write_text("video\tstart\tend\na\t1.5\t3.2\nb c.mp4\t0\t0.5\nmissing\t0\t4\na\t400\t402\n")
    collection = collection_of(videos=str(videos), moments=Moments(shots=str(shots)))
    assert collection.units[["key", "start", "end", "clock"]].values.tolist() == [  # real seconds, as given
        ["a@1.5-3.2", 1.5, 3.2, "player"], ["b c@0-0.5", 0, 0.5, "player"]]
    assert collection.failures["missing@0-4"].endswith("no such video in the collection")
    assert "starts after the video ends" in collection.failures["a@400-402"]
    report = build_index(IndexJob(tmp_path / "moments", collection, spec))
    assert report.units == 2 and report.failed == 2


def as_an_earlier_tclib_wrote_it(out: Path) -> None:
    """An index folder as format 1 left it: no clock in the shards' unit identities nor in units.csv."""
    for record_path in (out / "shards").glob("*.json"):
        record = json.loads(record_path.read_text())
        record["rows"] = [json.dumps(json.loads(row)[:6]) for row in record["rows"]]
        record_path.write_text(json.dumps(record))
    units = pd.read_csv(out / "units.csv", dtype=str, keep_default_na=False).drop(columns=["clock"])
    units.to_csv(out / "units.csv", index=False)
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))


def test_an_index_of_moments_in_the_samplers_seconds_is_searched_with_a_note_and_rebuilt_in_one_command(
        videos, spec, tmp_path, capsys):
    whole, moments = tmp_path / "whole", tmp_path / "moments"
    build_index(IndexJob(whole, collection_of(videos=str(videos)), spec, batch_size=4, workers=1))
    collection = collection_of(videos=str(videos), moments=Moments(seconds=4))
    build_index(IndexJob(moments, collection, spec, batch_size=4, workers=1))
    for out in (whole, moments):
        as_an_earlier_tclib_wrote_it(out)
    assert Index(whole).note == ""  # whole videos: no times to speak of
    index = Index(moments)
    assert "times are the reference sampler's seconds" in index.note
    results = index.search("a red circle", k=2)
    assert (results.clock == "sampler").all()  # their frames are read back as they were encoded
    assert main(["search", str(moments), "a red circle", "-k", "1"]) == 0
    assert "note: its moments' times are the reference sampler's seconds" in capsys.readouterr().err
    again = build_index(IndexJob(moments, collection, spec, batch_size=4, workers=1))
    assert (again.encoded, again.reused) == (len(collection.units), 0)  # [start, end] then, [start, end) now
    assert Index(moments).note == "" and (Index(moments).units.clock == "player").all()
    assert build_index(IndexJob(whole, collection_of(videos=str(videos)), spec, workers=1)).encoded == 0


def test_a_shot_file_names_videos_by_their_path_or_a_unique_file_name(tmp_path):
    for path in ("x/clip.mp4", "y/clip.mp4", "z/only.mp4"):
        (tmp_path / "videos" / path).parent.mkdir(parents=True, exist_ok=True)
        write_mp4(tmp_path / "videos" / path, np.zeros((6, 32, 32, 3), np.uint8) + 90, fps=2)  # 3 s
    shots = tmp_path / "shots.csv"
    shots.write_text("# shots of part one\nvideo,start,end\nx/clip.mp4,0,1\ny/clip,1,2\n\n"
                     "# part two, its own header\nfile,begin time,end time\nclip.mp4,0,1\nonly,2,3\n")
    collection = collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots)))
    assert collection.units[["key", "path"]].values.tolist() == [
        ["x/clip@0-1", "x/clip.mp4"], ["y/clip@1-2", "y/clip.mp4"], ["z/only@2-3", "z/only.mp4"]]
    assert collection.failures == {"clip.mp4@0-1": "shots.csv line 8: shot clip.mp4 0-1 s: the file name is "
                                   "ambiguous: 2 videos have it (x/clip.mp4, y/clip.mp4); give its path"}
    shots.write_text("x/clip.mp4,0,1\nx/clip.mp4,0.5\n")
    with pytest.raises(CollectionError, match=r"line 2 of .*shots.csv is not 'video start end'"):
        collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots)))


def test_shots_given_in_frame_numbers_are_converted_with_each_videos_frame_rate(tmp_path):
    (tmp_path / "videos").mkdir()
    write_mp4(tmp_path / "videos" / "slow.mp4", np.zeros((12, 32, 32, 3), np.uint8) + 90, fps=2)  # 6 s
    write_mp4(tmp_path / "videos" / "fast.mp4", np.zeros((150, 32, 32, 3), np.uint8) + 90, fps=25)  # 6 s
    shots = tmp_path / "msb.txt"  # TRECVID's master shot boundaries: start and end frame, the end included
    shots.write_text("slow 2 5\nfast 50 74\nfast 0 24\nfast 400 420\n")
    collection = collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots), shots_in="frames"))
    # slow: frames 2..5 at 2 fps are 1.0-3.0 s; fast: frames 50..74 at 25 fps are 2.0-3.0 s, 0..24 are 0-1 s
    assert collection.units[["key", "start", "end"]].values.tolist() == [
        ["slow@1-3", 1, 3], ["fast@2-3", 2, 3], ["fast@0-1", 0, 1]]
    assert collection.failures == {"fast@16-16.84": "msb.txt line 4: shot fast 400-420 frames: starts after the video "
                                                 "ends (6 s)"}
    with pytest.raises(CollectionError, match="shot times are in one of"):
        collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots), shots_in="minutes"))


def test_a_video_whose_frame_rate_cannot_be_read_is_a_failure_and_the_other_shots_are_kept(tmp_path, monkeypatch):
    from tclib.search import units as units_module

    (tmp_path / "videos").mkdir()
    for name in ("good", "odd"):
        write_mp4(tmp_path / "videos" / f"{name}.mp4", np.zeros((12, 32, 32, 3), np.uint8) + 90, fps=2)  # 6 s
    read = units_module.video_metadata
    monkeypatch.setattr(units_module, "video_metadata",
                        lambda path: (12, float("nan")) if "odd" in str(path) else read(path))
    shots = tmp_path / "msb.txt"
    shots.write_text("good 0 3\nodd 0 3\n")
    collection = collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots), shots_in="frames"))
    assert collection.units.key.tolist() == ["good@0-2"]
    assert collection.failures == {"odd.mp4": f"{tmp_path / 'videos' / 'odd.mp4'}: its frame rate cannot be read "
                                              f"(nan fps), so no time in it can be located"}


def test_a_shot_that_ends_before_it_starts_is_an_error_naming_its_line(tmp_path):
    (tmp_path / "videos").mkdir()
    write_mp4(tmp_path / "videos" / "a.mp4", np.zeros((12, 32, 32, 3), np.uint8) + 90, fps=2)
    shots = tmp_path / "shots.txt"
    shots.write_text("a 0 2\na 3 3\n")
    with pytest.raises(CollectionError, match=r"line 2 of .*shots.txt: a shot must have 0 <= start < end, got 3.0, 3.0"):
        collection_of(videos=str(tmp_path / "videos"), moments=Moments(shots=str(shots)))


def test_two_processes_give_the_vectors_of_one(videos, demo_run, tmp_path):
    _, P = demo_run
    import yaml

    params = tmp_path / "small.yaml"
    params.write_text(yaml.safe_dump(P.to_dict()))
    args = ["--videos", str(videos), "--params", str(params), "--run", RUN, "--seed", str(SEED), "--shard-size", "1",
            "--workers", "1", "--device", "cpu"]
    assert main(["index", str(tmp_path / "one"), *args]) == 0
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    two = subprocess.run([sys.executable, "-m", "tclib.cli", "index", str(tmp_path / "two"), *args, "--gpus", "2"],
                         env=environment, capture_output=True, text=True)
    assert two.returncode == 0, two.stdout + two.stderr
    (a_units, a), (b_units, b) = index_of(tmp_path / "one"), index_of(tmp_path / "two")
    assert a_units.equals(b_units) and np.array_equal(a, b)

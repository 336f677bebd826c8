"""The published sizes of each split, which `tclib data check` compares a data set with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SplitCounts:
    """Numbers of videos and captions of one split as published; ``None`` where unverified."""

    videos: int | None
    captions: int | None
    source: str
    note: str = ""


# Keys are data set name -> count key (see AnnotationReader.counts_key).
# Left out on purpose, because they could not be checked against a paper or a split file:
# the caption counts of MSVD (about 40 sentences per video; the totals quoted in later papers
# were not verified), the caption count of the MSR-VTT full test csv, and every VATEX number:
# TeachCLIP ships its own VATEX_{train,val,test}.csv, whose sizes neither its README nor its
# configs state (the split commonly used elsewhere has 25,991 / 1,500 / 1,500 videos with 10
# English captions each).
PAPER_COUNTS: dict[str, dict[str, SplitCounts]] = {
    "msrvtt": {
        # 20 sentences per video in MSRVTT_data.json (200K sentences for 10K videos, MSR-VTT paper).
        "train": SplitCounts(9000, 180_000, "JSFusion 1k-A split: 9,000 training videos x 20 captions"),
        "train-7k": SplitCounts(
            7010, 140_200, "MSR-VTT full split train + val (6,513 + 497 videos) x 20 captions"
        ),
        "test": SplitCounts(1000, 1000, "JSFusion 1k-A test: 1,000 videos, one caption each"),
        "test-full": SplitCounts(2990, None, "MSR-VTT full split test: 2,990 videos"),
    },
    "msvd": {
        "train": SplitCounts(1200, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
        "val": SplitCounts(100, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
        "test": SplitCounts(670, None, "MSVD split of Venugopalan et al. (collaborative-experts lists)"),
    },
    "didemo": {
        # One paragraph per video, so captions == videos.
        "train": SplitCounts(
            8395,
            8395,
            "DiDeMo split (Hendricks et al. 2017)",
            "the train_list.txt distributed by collaborative-experts / CLIP4Clip lists 8,392 videos",
        ),
        "val": SplitCounts(1065, 1065, "DiDeMo split (Hendricks et al. 2017; collaborative-experts lists)"),
        "test": SplitCounts(1004, 1004, "DiDeMo split (Hendricks et al. 2017; collaborative-experts lists)"),
    },
    "activitynet": {
        # One paragraph per video, so captions == videos.
        "train": SplitCounts(10009, 10009, "ActivityNet Captions train (Krishna et al. 2017)"),
        "test": SplitCounts(4917, 4917, "ActivityNet Captions val_1 (Krishna et al. 2017)"),
    },
}

"""The indexes 08_search shows: the experiment's test split, and, for the synthetic demo, moments of
longer videos made by joining its test videos (tclib.data.synthetic.write_long_videos), so that moment
search has something to find. Both under results/<exp>/index/, built unless done (a rerun encodes
nothing), with the params' last run and first seed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..data.synthetic import write_long_videos
from ..params import Params
from .build import IndexJob, build_index
from .model import student_spec
from .units import Moments, collection_of

MOMENT_SECONDS, MOMENT_STRIDE = 4, 2


def index_folder(P: Params, name: str) -> Path:
    return P.exp_dir / "index" / name


def experiment_indexes(P: Params, run: str | None = None, seed: int | None = None) -> dict[str, Path]:
    """{name: folder}: "test" (the test split's videos, whole), and for a synthetic set "moments"."""
    spec = student_spec(P, run, seed)
    workers, batch = P.decode_workers, P.eval_batch_size
    folders = {"test": index_folder(P, "test")}
    build_index(IndexJob(folders["test"], collection_of(split=(P, P.test_split), workers=workers), spec, batch,
                         workers, device=P.device))
    if P.synthetic:
        videos = write_long_videos(P.data_root, P.exp_dir / "long_videos")
        folders["moments"] = index_folder(P, "moments")
        moments = collection_of(videos=str(videos), moments=Moments(seconds=MOMENT_SECONDS, stride=MOMENT_STRIDE),
                                workers=workers)
        build_index(IndexJob(folders["moments"], moments, spec, batch, workers, device=P.device))
    return folders


def moment_recall(index, test: pd.DataFrame, k: int = 10) -> pd.DataFrame:
    """How often the best moments of a test caption include one inside the caption's own video (of the
    demo's joined videos; captions of videos not joined are left out): R@1, R@5, R@10 in percent."""
    from .views import is_correct, truth_of

    truth = truth_of(index)
    joined = {part["video_id"] for parts in truth.values() for part in parts}
    test = test[test.clip_id.isin(joined)]
    results = index.search(list(test.caption), k)
    found = [[is_correct(row, clip, truth) for row in results.iloc[n * k:(n + 1) * k].itertuples(index=False)]
             for n, clip in enumerate(test.clip_id)]
    row = {f"R@{r}": 100 * sum(any(f[:r]) for f in found) / max(1, len(found)) for r in (1, 5, 10) if r <= k}
    return pd.DataFrame([{"captions": len(found), "moments": len(index), **row}])

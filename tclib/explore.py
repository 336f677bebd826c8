"""The explorer: rankings of any query text and frame weights of any (video, caption), for every
trained model side by side.

    from tclib.explore import Explorer
    explorer = Explorer(P, data)                  # models of the first seed, features computed once
    explorer.rank("a red circle on a blue background", k=10)   # one row per (model, place)
    explorer.attention("video7", "a red circle ...")            # one row per weights, one column per frame
    explorer.widget()                             # the same in ipywidgets, in JupyterLab

`ModelBank` holds the models (placed on their device when loaded) and answers in tables: scores,
rankings, frame weights. `Explorer` draws them: figures and the widget. Every video's features are
computed once per model, a batch of frames at a time (tensors of features are kept, never frames); a
query then costs one text forward per model. Every model's score is its retrieval score — its logits,
the cosine times the model's logit scale, as the evaluation ranks by — so students and teachers are
on one scale.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from .analysis import afa_weights, correct_ranks, ground_truth, read_videos
from .evaluate import TestSet, video_features
from .experiment.data import Data, test_set
from .experiment.runs import parse_run, teacher_label
from .experiment.students import load_student
from .experiment.teachers import load_teacher, prepared_teachers
from .models import CLIP4Clip, Teacher, Tokenizer
from .models.teachers import select
from .params import Params
from .plots import Figure, attention_figure, ranking_figure, thumbnail_strip
from .train import resolve_device


class ModelBank:
    """Every trained model of a params file (students and teachers, one seed) over its test split, each
    in eval mode on `device` from the start."""

    def __init__(self, P: Params, data: Data, seed: int | None = None, device: str | None = None) -> None:
        self.P, self.data = P, data
        self.seed = P.seeds[0] if seed is None else seed
        self.device = resolve_device(device or P.device)
        self.test: TestSet = test_set(P, data)
        self.tokenizer = Tokenizer(P.max_words)
        self.models: dict[str, CLIP4Clip | Teacher] = {}
        teachers = prepared_teachers(P, data)
        for run in P.runs:
            seed_of_run = None if run in P.student_checkpoints else self.seed
            self.models[parse_run(run).label] = load_student(P, data, teachers, run, seed_of_run)
        for name in P.teachers:
            self.models[teacher_label(name)] = load_teacher(P, data, teachers[(name, self.seed)])
        for model in self.models.values():
            model.eval().to(self.device)
        self._video_features: dict[str, Any] = {}
        self.truth, _ = ground_truth(P.data_root, data.cache.sampling)

    @property
    def video_ids(self) -> list[str]:
        return self.test.video_ids

    @property
    def captions(self) -> list[str]:
        """The test captions, in order (any other text can be a query too)."""
        return list(self.data.test.caption)

    def video_features(self, label: str) -> Any:
        """The test videos' features of one model, computed on first use (a batch at a time)."""
        if label not in self._video_features:
            self._video_features[label] = video_features(self.models[label], self.test, self.P.eval_batch_size,
                                                         self.device, desc=f"{label} videos")
        return self._video_features[label]

    @torch.no_grad()
    def scores(self, query: str) -> dict[str, np.ndarray]:
        """{model: (V,) the model's retrieval score (logits: cosine times its logit scale) of the query
        text with every test video}."""
        tokens = self.tokenizer([query]).to(self.device)
        out = {}
        for label, model in self.models.items():
            video = self.video_features(label)
            if isinstance(model, Teacher):
                text_features = model.encode_text(tokens)
                sims = [model.similarity(text_features, {k: v.to(self.device) for k, v in
                                               select(video, slice(i, i + self.P.eval_batch_size)).items()})
                        for i in range(0, len(self.video_ids), self.P.eval_batch_size)]
                out[label] = torch.cat(sims, dim=1)[0].float().cpu().numpy()
            else:
                text = model.encode_text(tokens)
                out[label] = (model.logit_scale * (text @ video.to(self.device).t()))[0].float().cpu().numpy()
        return out

    def correct_video(self, query: str) -> str | None:
        """The video of a test caption (its first, if several share the text); None for other text."""
        matches = self.data.test.clip_id[self.data.test.caption == query]
        return str(matches.iloc[0]) if len(matches) else None

    def rank(self, query: str, k: int = 10) -> pd.DataFrame:
        """The top-k test videos of `query` for every model: columns model, place (1 = best),
        video_id, score (the model's logits, see `scores`), correct, and correct_rank (the place of the caption's own video among all
        test videos; NaN when the query is not a test caption)."""
        correct = self.correct_video(query)
        rows = []
        for label, score in self.scores(query).items():
            order = np.argsort(-score, kind="stable")
            correct_rank = (float(correct_ranks(score[None], np.array([self.video_ids.index(correct)]))[0])
                            if correct is not None else float("nan"))
            for place, v in enumerate(order[:k], 1):
                rows.append({"model": label, "place": place, "video_id": self.video_ids[v],
                             "score": float(score[v]), "correct": self.video_ids[v] == correct,
                             "correct_rank": correct_rank})
        return pd.DataFrame(rows)

    @torch.no_grad()
    def attention(self, video_id: str, caption: str) -> pd.DataFrame:
        """Per-frame weights of one video, one row each: every AFA student's aggregation weights
        (caption-independent), every teacher's frame-text relevance for `caption` (any text), and
        the ground truth where the data set has it for that (video, caption). Columns: the frames
        0..F-1 (padded slots included; see the mask from data.cache.get)."""
        position = self._position(video_id)
        rows: dict[str, np.ndarray] = {}
        for label, model in self.models.items():
            if isinstance(model, CLIP4Clip) and model.afa is not None:
                rows[f"{label} AFA"] = afa_weights(model, self.test, 1, self.device, np.array([position]))[0]
        tokens = self.tokenizer([caption]).to(self.device)
        frames, mask = read_videos(self.test, np.array([position]), self.device)
        for label, model in self.models.items():
            if isinstance(model, Teacher):
                rows[f"{label} relevance"] = model.relevance(model.encode_text(tokens),
                                                            model.encode_video(frames, mask))[0].cpu().numpy()
        if (video_id, caption) in self.truth:
            rows["ground truth"] = self.truth[(video_id, caption)]
        return pd.DataFrame.from_dict({label: np.asarray(row, dtype=float) for label, row in rows.items()},
                                      orient="index")

    def _position(self, video_id: str) -> int:
        if video_id not in self.video_ids:
            raise KeyError(f"{video_id!r} is not a test video of {self.P.exp} "
                           f"(test videos: {', '.join(self.video_ids[:5])}, ...)")
        return self.video_ids.index(video_id)


class Explorer:
    """The bank's tables as figures and an ipywidgets explorer (the bank: `bank`, or the same methods
    here: rank, attention, captions, video_ids, correct_video, models)."""

    def __init__(self, P: Params, data: Data, seed: int | None = None, device: str | None = None) -> None:
        self.bank = ModelBank(P, data, seed, device)
        self.data, self.models = data, self.bank.models
        self.rank, self.attention, self.correct_video = self.bank.rank, self.bank.attention, self.bank.correct_video

    @property
    def captions(self) -> list[str]:
        return self.bank.captions

    @property
    def video_ids(self) -> list[str]:
        return self.bank.video_ids

    # ----------------------------------------------------------------------------------- figures

    def ranking_figure(self, query: str, k: int = 10) -> Figure:
        """The top-k videos of every model as thumbnail strips with their scores (the model's logits)."""
        table = self.rank(query, k)
        thumbnails = {}
        for video_id in table.video_id.unique():
            thumbnails[video_id] = thumbnail_strip(*self.data.cache.get(video_id))
        rankings = {}
        for label, group in table.groupby("model", sort=False):
            rank = group.correct_rank.iloc[0]
            name = label if np.isnan(rank) else f"{label}\ncorrect video: #{rank:.0f}"
            rankings[name] = group
        return ranking_figure(rankings, thumbnails, query)

    def attention_figure(self, video_id: str, caption: str) -> Figure:
        frames, mask = self.data.cache.get(video_id)
        rows = {label: row.to_numpy() for label, row in self.attention(video_id, caption).iterrows()}
        return attention_figure([{"frames": frames, "mask": mask, "video_id": video_id, "caption": caption,
                                  "rows": rows}], seed=self.bank.seed)

    # ----------------------------------------------------------------------------------- widgets

    def widget(self, k: int = 10) -> Any:
        """The explorer in ipywidgets: a query box (type anything, or pick a test caption) with the
        top-k videos of every model, and a video picker with the frame weights for that caption."""
        import ipywidgets as w
        from IPython.display import display

        first = self.captions[0]
        pick = w.Dropdown(options=list(dict.fromkeys(self.captions)), value=first, description="caption",
                          layout=w.Layout(width="95%"))
        query = w.Text(value=first, description="query", layout=w.Layout(width="95%"),
                       placeholder="any text; Enter to search", continuous_update=False)
        video = w.Dropdown(options=self.video_ids, value=self.correct_video(first) or self.video_ids[0],
                           description="video")
        ranking_out, attention_out = w.Output(), w.Output()

        def show_ranking(*_: Any) -> None:
            ranking_out.clear_output(wait=True)
            with ranking_out:
                display(self.ranking_figure(query.value, k))

        def show_attention(*_: Any) -> None:
            attention_out.clear_output(wait=True)
            with attention_out:
                display(self.attention_figure(video.value, query.value))

        def on_pick(change: dict) -> None:
            query.value = change["new"]

        def on_query(change: dict) -> None:
            # the caption's own video, or for any other text the first model's best video
            best = self.correct_video(change["new"]) or self.rank(change["new"], 1).video_id.iloc[0]
            show_ranking()
            if video.value == best:
                show_attention()
            else:
                video.value = best  # shows the attention through its own observer

        pick.observe(on_pick, names="value")
        query.observe(on_query, names="value")
        video.observe(show_attention, names="value")
        show_ranking()
        show_attention()
        return w.VBox([pick, query, w.HTML("<b>Top videos per model</b> (green: the caption's own video)"),
                       ranking_out, video, attention_out])

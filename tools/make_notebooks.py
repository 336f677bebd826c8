"""Write notebooks/*.ipynb: a short parameters cell (the params file and the step's own knobs), the
shared set-up, then the step's calls into tclib with a few words on each. Run after changing them:
`python tools/make_notebooks.py` (or `make notebooks`)."""

from __future__ import annotations

import json
from pathlib import Path

PARAMETERS = '''\
# Parameters (papermill). `params` is the experiment: a params file, relative to the project root
# (params/<exp>.yaml; `tclib reproduce` points it at results/<exp>/params.yaml, the run's own copy).
# A value that is not None overrides the file's.
params = "params/demo.yaml"
seeds = None  # e.g. [0]
device = None  # e.g. "cuda"'''

SETUP = '''\
%matplotlib inline
from IPython.display import Markdown, display

from tclib import notebook
from tclib.experiment.data import prepare_data

notebook.setup_logging()
P = notebook.notebook_params(params, globals())
out = notebook.output_dir(P)  # results/<exp>/ in `tclib reproduce`, else results/<exp>/scratch/
data = prepare_data(P)  # 01 builds it; later notebooks find every part done'''

# name -> (title and story, the step's knobs, [(markdown or None, code, is a figure)])
NOTEBOOKS = {
    "01_data_prep": (
        "# 01 · Data preparation\n"
        "The annotations are read in the data set's own layout, every video is decoded once into the frame "
        "cache (`results/<exp>/frames/`, uint8 or JPEG, read a batch at a time), and for the demo the synthetic data set is "
        "written and a small CLIP is pretrained on synthetic image-caption pairs first. Videos that fail to "
        "decode are listed in the cache's `failures.csv` and their captions left out.",
        "sample_videos = 3  # videos shown with their sampled frames",
        [("## Splits\nVideos and captions per split, and how many frames each video gives after sampling "
          "(`max_frames` at `framerate` frames per second; shorter videos are padded).",
          "notebook.data_summary(P, data)", False),
         ("## What the models see\nThe sampled frames of a few training videos, with the second of the video "
          "each was taken at, and the video's captions.",
          "notebook.sample_videos(P, data, count=sample_videos)", True)]),
    "02_teacher_scoring": (
        "# 02 · Teachers\n"
        "Each teacher (X-CLIP, TS2-Net, X-Pool) is loaded from its checkpoint (`teacher_checkpoints`, the "
        "released files in TeachCLIP's layout) or trained here. With `teacher_mode: cached` its text and video "
        "features on the training set are then cached (float16, read a batch at a time), so that student training "
        "scores every batch without running the teachers' towers.",
        "show_teacher = None  # the teacher shown below; None: the first of the params' teachers\n"
        "batch_captions = 8  # captions (one per test video) in the batch shown\n"
        "relevance_captions = 3  # of which this many with their frame relevance",
        [(None, "from tclib.experiment.teachers import prepare_teachers\n\n"
                "teachers = prepare_teachers(P, data)\nnotebook.teacher_summary(teachers)",
          False),
         ("## Training curves\nTeachers trained here (the demo); a teacher loaded from a checkpoint has none.",
          "notebook.training_curves(P, data, kind=\"teachers\")", True),
         ("## One batch through a teacher\nWhat the student learns from: the teacher's similarity of every caption "
          "of a batch with every video (coarse-grained teaching makes the student's in-batch similarities imitate "
          "it; the true pairs are on the diagonal), and its frame-text relevance of a caption over its own video "
          "(fine-grained teaching makes AFA's weights imitate it).",
          "similarity, relevance = notebook.teacher_view(P, data, show_teacher or P.teachers[0],\n"
          "                                               captions=batch_captions, relevance_captions=relevance_captions)\n"
          "similarity", True),
         (None, "relevance", True)]),
    "03_train_student": (
        "# 03 · Students\n"
        "CLIP4Clip baselines (meanP, seqTransf) and TeachCLIP students (coarse-grained teaching only, coarse + "
        "fine-grained), one run per seed; `teachclip:xclip+ts2net` names the teachers of a run (default: all of "
        "`teachers`, averaged as the reference does). Runs given in `student_checkpoints` (a file of tclib's or "
        "of the reference code) are evaluated, not trained. A run interrupted resumes from its last epoch.",
        "",
        [(None, "from tclib.experiment.students import train_students\nfrom tclib.experiment.teachers import "
                "prepared_teachers\n\nteachers = prepared_teachers(P, data)  # 02's result\n"
                "train_students(P, data, teachers)", False),
         ("## Training curves", "notebook.training_curves(P, data, kind=\"students\")", True),
         ("## Logged while training\nWhat each run (its first seed) wrote to `scalars.csv` and to TensorBoard every few "
          "steps, in its stage folder (`tensorboard --logdir results/<exp>` shows them live): the loss and its terms "
          "(dots: each epoch's mean), the learning rate of each parameter group, samples per second, the share of "
          "each step spent waiting for the next batch and, on a GPU, peak memory.",
          "notebook.training_scalars(P, data)", True)]),
    "04_evaluate": (
        "# 04 · Evaluation\n"
        "Text-to-video and video-to-text retrieval on the test split, for every student and teacher and seed, "
        "under the data set's protocol: every caption is a query (MSR-VTT 1k-A: one per video; MSVD, VATEX: all "
        "of them; DiDeMo, ActivityNet: one paragraph per video), and for video-to-text a video is matched by any "
        "of its captions. Each model's features are extracted once. `metrics.csv` has one row per model and seed, "
        "`table.md` the mean ± std over seeds (SumR = R@1 + R@5 + R@10), `ranks.csv` where each caption's own "
        "video ranks. With `dsl: true` the same similarities are also ranked with dual-softmax inference, in rows "
        "(`inference: dsl`) and tables labelled DSL, apart from the default numbers.",
        "",
        [(None, "from tclib.experiment.evaluation import evaluate_all\n\n"
                "metrics = evaluate_all(P, data, out)\ndisplay(Markdown((out / \"table.md\").read_text()))",
          False),
         ("Every model and seed, with the costs: floats stored per video and seconds to score all pairs.",
          "metrics", False),
         ("## Where the correct video ranks\nOne histogram per model over every test caption and seed; the dashed "
          "lines mark ranks 1, 5 and 10.",
          "notebook.rank_histograms(P, out)", True)]),
    "05_attention_plots": (
        "# 05 · AFA attention against teacher relevance\n"
        "For every test caption: each TeachCLIP student's AFA weights over the caption's video, each teacher's "
        "frame-text relevance, and, where the data set has it (the demo), the ground truth of which frames the "
        "caption describes. `attention_correlation.csv` holds their statistics against the ground truth; "
        "`attention.png` the heatmaps of a few videos.",
        "plot_videos = None  # heatmaps of the first caption of this many test videos...\n"
        "plot_video_ids = None  # ...or of these test videos, e.g. [\"video7\", \"video9\"]",
        [("## Statistics against the ground truth\nPearson correlation with the caption's relevant frames, mean "
          "largest weight, weight on the video's two key scenes, and % of videos where one key scene gets < 10% "
          "(mean over seeds).",
          "from tclib.experiment.attention import attention_report\n\n"
          "correlation, figure = attention_report(P, data, out)\ncorrelation.set_index(\"weights\").round(3)", False),
         ("## Heatmaps", "figure", True)]),
    "06_explore": (
        "# 06 · Explorer\n"
        "Every trained model side by side (first seed): the top videos of any query text, and the frame weights "
        "of any video for a caption. The widget at the end does the same interactively; the functions under it "
        "(`explorer.rank`, `explorer.attention`) return tables and work without widgets.",
        "query = None  # a test caption or any text; None: the first test caption\n"
        "own_query = \"a green square in front of a white backdrop\"  # any text, not only test captions\n"
        "video_id = None  # the video whose frame weights are shown; None: the query's own video\n"
        "top_k = 10",
        [(None, "from tclib.explore import Explorer\n\nexplorer = Explorer(P, data)\n"
                "query = query or explorer.captions[0]\n"
                "explorer.rank(query, k=top_k).pivot(index=\"place\", columns=\"model\", values=\"video_id\")", False),
         ("## The top videos of a query\nFour frames per video, spread over its length, its score, and a green frame "
          "around the caption's own video; each model's label gives the place of that video among all.",
          "explorer.ranking_figure(query, k=top_k)", True),
         ("## A video's frames under every model\nAFA weights (one per student: they do not depend on the caption), "
          "each teacher's relevance for the query, and the ground truth where the data set has it.",
          "explorer.attention_figure(video_id or explorer.correct_video(query) or explorer.video_ids[0], query)", True),
         ("## Your own query\nAny text is a query; its table has no correct video.",
          "explorer.ranking_figure(own_query, k=top_k)", True),
         ("## Interactive\nPick a test caption or type any text (Enter searches), and pick a video.",
          "explorer.widget(k=top_k)", False)]),
    "08_search": (
        "# 08 · Search\n"
        "What the student is for: one vector per video (or per moment of one), so a collection is searched with "
        "one text forward and an index lookup. `tclib index` encodes a collection with a trained student (here "
        "the params' last run, first seed), `tclib search` searches it; the same in Python below. For the demo "
        "two indexes are built unless done: the test split's videos, and moments (4 s every 2 s) of longer "
        "videos made by joining test videos, so that moment search has something to find.",
        "indexes = None  # {name: index folder}; None: results/<exp>/index/test (and the demo's moments)\n"
        "queries = None  # None: the first three test captions\n"
        "top_k = 5",
        [(None, "from pathlib import Path\n\nfrom tclib.search import demo, views\nfrom tclib.search.query import Index\n\n"
                "folders = {name: Path(f) for name, f in indexes.items()} if indexes else demo.experiment_indexes(P)\n"
                "opened = {name: Index(folder) for name, folder in folders.items()}\n"
                "views.summary(opened)", False),
         ("## Test captions as queries\nThe best test videos of each caption, with their scores; the caption's own "
          "video is framed in green.",
          "queries = queries or list(data.test.caption[:3])\n"
          "wanted = [data.test.clip_id[data.test.caption == q].iloc[0] if (data.test.caption == q).any() else None\n"
          "          for q in queries]\n"
          "results, figure = views.search_figure(opened[\"test\"], queries, top_k, wanted)\nfigure", True),
         ("## Moments\nThe same queries over moments: each result is a stretch of a video, with its seconds (on the "
          "demo, a moment inside the caption's own video is framed in green).",
          "name = \"moments\" if \"moments\" in opened else \"test\"\n"
          "moments, figure = views.search_figure(opened[name], queries, top_k, wanted)\nfigure", True),
         ("How often the best moments of a test caption include one inside its own video (the demo's joined "
          "videos; chance at R@10 is about 10 × 6 / the number of moments).",
          "demo.moment_recall(opened[\"moments\"], data.test) if \"moments\" in opened else None", False),
         ("## One moment under the student's AFA weights\nThe best moment of the first query: its frames, and the "
          "weight AFA gives each (they do not depend on the query).",
          "views.attention_of(opened[name], moments.key.iloc[0])", True),
         ("## Interactive\nType any text (Enter searches), and pick a moment to see its frames under AFA.",
          "views.widget(opened[name], k=top_k)", False)]),
}


# 07 reads every experiment, not one: its own parameters and set-up; `tclib reproduce` leaves it out
# (metadata tclib.scope = "project") and `tclib tables` (`make tables`) runs it.
PAPER_TABLES = (
    "07_paper_tables",
    "# 07 · The paper's tables\n"
    "Every experiment (a params file in `params/`, its evaluation in `results/<exp>/metrics.csv`) beside the "
    "published numbers of `results/paper_numbers.csv`, in the paper's layout: one table per data set, backbone "
    "and direction, each cell *ours (mean ± std over seeds) / published (difference)*. An experiment not yet "
    "run shows as `not run`; a published number that was not found in its source shows as `n/f`. Dual-softmax "
    "(DSL) results are compared only with published DSL results. Runs with no published counterpart, and the "
    "synthetic demo, have tables of their own.",
    '''\
# Parameters (papermill). Paths are relative to the project root.
params_dir = "params"  # the experiments: one params file each
results_dir = "results"  # results/<exp>/metrics.csv and params.yaml of each run
published = "results/paper_numbers.csv"  # the published numbers, with their sources
out = "results/tables"  # tables.md and comparison.csv are written here''',
    '''\
from IPython.display import Markdown, display

from tclib import notebook, paper_tables
from tclib.project import resolve_path

notebook.setup_logging()
experiments = paper_tables.find_experiments(resolve_path(params_dir), resolve_path(results_dir))
numbers = paper_tables.read_published(resolve_path(published))''',
    [("## Experiments\nWhat each params file runs, and whether its evaluation is there.",
      "paper_tables.experiments_table(experiments)", False),
     (None, "tables = paper_tables.write_tables(experiments, numbers, resolve_path(out))\n"
            "display(Markdown(tables.read_text()))", False),
     ("## Every compared cell\nLong form, as `comparison.csv` holds it: ours, published and the difference.",
      "paper_tables.comparison(experiments, numbers)", False)])


def cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    out = {"cell_type": kind, "id": "", "metadata": {}, "source": source.splitlines(keepends=True)}
    if kind == "code":
        out.update(execution_count=None, outputs=[])
    if tags:
        out["metadata"]["tags"] = tags
    return out


def notebook(name: str, title: str, parameters: str, setup: str, steps: list, metadata: dict | None = None) -> dict:
    cells = [cell("markdown", title), cell("code", parameters, ["parameters"]), cell("code", setup)]
    for markdown, code, is_figure in steps:
        if markdown:
            cells.append(cell("markdown", markdown))
        cells.append(cell("code", code, ["figure"] if is_figure else None))
    for i, c in enumerate(cells):
        c["id"] = f"{name[:2]}-{i}"
    return {"cells": cells,
            "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                         "language_info": {"name": "python"}, **(metadata or {})},
            "nbformat": 4, "nbformat_minor": 5}


def notebook_texts() -> dict[str, str]:
    """{file name: its text} of every notebook, as notebooks/ holds them."""
    books = {name: notebook(name, title, PARAMETERS + (f"\n{knobs}" if knobs else ""), SETUP, steps)
             for name, (title, knobs, steps) in NOTEBOOKS.items()}
    name, title, parameters, setup, steps = PAPER_TABLES
    books[name] = notebook(name, title, parameters, setup, steps, {"tclib": {"scope": "project"}})
    return {f"{name}.ipynb": json.dumps(book, indent=1) + "\n" for name, book in books.items()}


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "notebooks"
    out.mkdir(exist_ok=True)
    for name, text in notebook_texts().items():
        (out / name).write_text(text)


if __name__ == "__main__":
    main()

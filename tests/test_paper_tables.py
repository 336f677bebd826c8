"""tclib.paper_tables: runs beside published numbers, with values worked out by hand."""

from pathlib import Path

import pandas as pd
import pytest

from tclib import paper_tables
from tclib.errors import DataError
from tclib.paper_tables import PUBLISHED_COLUMNS, backbone_name, find_experiments, read_published, write_tables

ROOT = Path(__file__).resolve().parent.parent
HEADER = ",".join(PUBLISHED_COLUMNS)


def write_published(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def metrics_rows(run: str, model: str, r1s: list[float], inference: str = "plain") -> list[dict]:
    """metrics.csv rows of one model: seeds 0, 1, ... with the given t2v R@1, and fixed other values."""
    rows = []
    for seed, r1 in enumerate(r1s):
        row = {"model": model, "run": run, "seed": seed, "inference": inference}
        for direction in ("t2v", "v2t"):
            row.update({f"{direction}_R1": r1, f"{direction}_R5": 70.0, f"{direction}_R10": 80.0,
                        f"{direction}_R50": 95.0, f"{direction}_MdR": 2.0, f"{direction}_MnR": 14.0,
                        f"{direction}_SumR": r1 + 150.0})
        rows.append(row)
    return rows


@pytest.fixture
def project(tmp_path):
    """params/ with an MSR-VTT 9k experiment that has been run (two seeds) and an MSVD one that has not,
    results/ with the run's metrics.csv and params.yaml, and the synthetic demo's results."""
    (tmp_path / "params").mkdir()
    common = "clip_model: ViT-B-32-quickgelu\nteachers: [xclip, ts2net]\n"
    msrvtt = f"exp: msrvtt-9k\ndataset: msrvtt\n{common}runs: [clip4clip-seqTransf, teachclip, teachclip:xclip]\n"
    (tmp_path / "params" / "msrvtt-9k.yaml").write_text(msrvtt)
    (tmp_path / "params" / "msvd.yaml").write_text(f"exp: msvd\ndataset: msvd\n{common}")
    run = tmp_path / "results" / "msrvtt-9k"
    run.mkdir(parents=True)
    (run / "params.yaml").write_text(msrvtt)
    rows = (metrics_rows("clip4clip-seqTransf", "CLIP4Clip (seqTransf)", [44.0, 45.0])
            + metrics_rows("teachclip", "TeachCLIP (coarse + fine)", [46.0, 47.0])
            + metrics_rows("teachclip:xclip", "TeachCLIP (X-CLIP)", [40.0, 41.0])
            + metrics_rows("xclip", "X-CLIP (teacher)", [46.0, 46.0]))
    pd.DataFrame(rows).to_csv(run / "metrics.csv", index=False)
    demo = tmp_path / "results" / "demo"
    demo.mkdir()
    (demo / "params.yaml").write_text("exp: demo\nsynthetic: true\nclip_model: tclib-tiny\n")
    pd.DataFrame(metrics_rows("teachclip", "TeachCLIP (coarse + fine)", [20.0])).to_csv(demo / "metrics.csv",
                                                                                           index=False)
    published = write_published(tmp_path / "paper_numbers.csv", [
        "TeachCLIP,msrvtt-9k,ViT-B/32,t2v,no,46.8,74.3,82.6,2.0,,203.7,TeachCLIP paper,Table 1,",
        "CLIP4Clip-seqTransf,msrvtt-9k,ViT-B/32,t2v,no,44.5,71.4,81.6,2.0,15.3,197.5,CLIP4Clip paper,Table 1,",
        "TeachCLIP,msvd,ViT-B/32,t2v,no,47.4,,,,,,TeachCLIP paper,Table 2,",
    ])
    return tmp_path, published


def test_backbone_names():
    assert backbone_name("ViT-B-32-quickgelu") == "ViT-B/32"
    assert backbone_name("ViT-B-16") == "ViT-B/16"
    assert backbone_name("tclib-tiny") == "tclib-tiny"


def test_a_run_beside_the_published_numbers(project):
    root, published = project
    experiments = find_experiments(root / "params", root / "results")
    assert [e.exp for e in experiments] == ["demo", "msrvtt-9k", "msvd"]
    assert [e.metrics is None for e in experiments] == [False, False, True]
    compared = paper_tables.comparison(experiments, read_published(published))
    table = paper_tables.paper_table(compared, "msrvtt-9k", "ViT-B/32", "t2v").set_index("model")
    # TeachCLIP: seeds 46 and 47 -> mean 46.5, std 0.5; published 46.8 -> -0.3
    assert table.loc["TeachCLIP", "R@1"] == "46.5 ± 0.5 / 46.8 (-0.3)"
    # MnR: ours 14.0 ± 0.0; the published cell is empty (not found)
    assert table.loc["TeachCLIP", "MnR"] == "14.0 ± 0.0 / n/f"
    # SumR: (46 + 150 + 47 + 150) / 2 = 196.5; published 203.7 -> -7.2
    assert table.loc["TeachCLIP", "SumR"] == "196.5 ± 0.5 / 203.7 (-7.2)"
    assert table.loc["CLIP4Clip-seqTransf", "R@1"] == "44.5 ± 0.5 / 44.5 (+0.0)"
    # a teacher that was run but has no published row: compared with nothing
    assert table.loc["X-CLIP", "R@1"] == "46.0 ± 0.0 / n/f" and table.loc["X-CLIP", "source"] == "not published"
    assert table.loc["TeachCLIP", "source"] == "TeachCLIP paper, Table 1"
    # the run taught by X-CLIP alone is not the paper's TeachCLIP (the params' teachers are X-CLIP + TS2-Net)
    assert "TeachCLIP (X-CLIP)" not in table.index and len(table) == 3
    msvd = paper_tables.paper_table(compared, "msvd", "ViT-B/32", "t2v").set_index("model")
    assert msvd.loc["TeachCLIP", "R@1"] == "not run / 47.4" and msvd.loc["TeachCLIP", "R@5"] == "not run / n/f"


def test_written_tables_keep_the_demo_and_other_runs_apart(project):
    root, published = project
    path = write_tables(find_experiments(root / "params", root / "results"), read_published(published), root / "out")
    text = path.read_text()
    mine, other, demo = (text.split("## Other runs")[0], text.split("## Other runs")[1].split("## Demo")[0],
                         text.split("## Demo")[1])
    assert "## MSR-VTT 1k-A (trained on 9k), ViT-B/32, text-to-video" in mine and "## MSVD, ViT-B/32" in mine
    assert "20.0" not in mine and "| demo | TeachCLIP (coarse + fine) | t2v | plain | 20.0 ± 0.0 |" in demo
    assert "| msrvtt-9k | TeachCLIP (X-CLIP) | t2v | plain | 40.5 ± 0.5 |" in other
    compared = pd.read_csv(root / "out" / "comparison.csv")
    teachclip = compared[(compared.model == "TeachCLIP") & (compared.dataset == "msrvtt-9k")
                         & (compared.direction == "t2v")].iloc[0]
    assert teachclip.R1 == 46.5 and teachclip.R1_paper == 46.8 and teachclip.R1_diff == pytest.approx(-0.3)


def test_dsl_rows_are_compared_only_with_dsl_rows(project):
    root, published = project
    run = root / "results" / "msrvtt-9k"
    metrics = pd.read_csv(run / "metrics.csv")
    dsl = pd.DataFrame(metrics_rows("teachclip", "TeachCLIP (coarse + fine)", [50.0, 50.0], "dsl"))
    pd.concat([metrics, dsl]).to_csv(run / "metrics.csv", index=False)
    compared = paper_tables.comparison(find_experiments(root / "params", root / "results"), read_published(published))
    plain = paper_tables.paper_table(compared, "msrvtt-9k", "ViT-B/32", "t2v").set_index("model")
    assert plain.loc["TeachCLIP", "R@1"] == "46.5 ± 0.5 / 46.8 (-0.3)"
    with_dsl = paper_tables.paper_table(compared, "msrvtt-9k", "ViT-B/32", "t2v", dsl="yes").set_index("model")
    assert with_dsl.loc["TeachCLIP", "R@1"] == "50.0 ± 0.0 / n/f"


def test_bad_published_numbers_name_the_file_and_line(tmp_path):
    bad = write_published(tmp_path / "bad.csv", [
        "TeachCLIP,msrvtt-9k,ViT-B/32,t2v,no,46.8,74.3,82.6,2.0,,,TeachCLIP paper,Table 1,",
        "TeachCLIP,msrvtt-9k,ViT-B/32,text,no,about 47,,,,,,TeachCLIP paper,Table 1,",
        "TeachCLIP,msvd,ViT-B/32,t2v,maybe,47.4,,,,,,,Table 2,",
        "TeachCLIP,msrvtt-9k,ViT-B/32,t2v,no,46.0,,,,,,another source,Table 9,",
    ])
    with pytest.raises(DataError) as err:
        read_published(bad)
    lines = str(err.value).splitlines()
    assert lines == [f"{bad}, line 3: direction 'text' is not t2v or v2t", f"{bad}, line 3: R1 'about 47' is not a number",
                     f"{bad}, line 4: dsl 'maybe' is not yes or no", f"{bad}, line 4: no source",
                     f"{bad}, line 5: a second row for TeachCLIP, msrvtt-9k, ViT-B/32, t2v, no"]
    (tmp_path / "short.csv").write_text("model,dataset\nTeachCLIP,msvd\n")
    with pytest.raises(DataError, match="short.csv: missing column"):
        read_published(tmp_path / "short.csv")


def test_the_kit_s_published_numbers_read_and_name_their_sources():
    table = read_published(ROOT / "results" / "paper_numbers.csv")
    assert table.source.str.strip().ne("").all()
    teachclip = table[(table.model == "TeachCLIP") & (table.dataset == "msrvtt-9k") & (table.backbone == "ViT-B/32")
                      & (table.direction == "t2v") & (table.dsl == "no")]
    assert teachclip[["R1", "R5", "R10"]].values.tolist() == [[46.8, 74.3, 82.6]]
    assert teachclip.SumR.item() == pytest.approx(203.7)  # not published: the sum of the three
    # a row whose numbers were not found says so
    missing = table[table[["R1", "R5", "R10", "MdR", "MnR"]].isna().all(axis=1)]
    assert len(missing) and missing.note.str.contains("not found").all()

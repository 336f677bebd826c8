"""The paper's efficiency claim at collection sizes: what a query costs and what a video stores, for the
student (one vector per video: exact search, and the approximate index) and for each teacher (a
cross-modal computation against every video), and what indexing a collection costs.

1. Cost per query and storage per video at 10k, 100k and 1M videos, ViT-B/32 shapes (D=512, 12 frames,
   32 words). Student: measured (FAISS, this machine's threads). Teachers: their `similarity` measured
   on 1 query x `--teacher-videos` videos of cached features (random, of the shapes their
   `encode_video` gives), then extrapolated linearly to the collection sizes, and labelled so.
2. The approximate indexes at the largest size (`tclib.search.vectors`: HNSW-SQ8 and IVF-PQ, `--kinds`,
   each with exact re-ranking from the float16 vectors on disk, tuned on text-like queries and on
   held-out stored vectors): build time, bytes in RAM per video (the serialized FAISS index), single
   query latency p50/p99, batched throughput, recall@10 against exact search (text-like queries).
   The vectors are synthetic, made to spread like real CLIP features: unit vectors around 4,000
   centres of Zipf-distributed sizes, centres and offsets drawn with a power-law spectrum (a few
   directions carry most of the variance, as in CLIP embeddings); queries are centres plus a larger
   offset (the text/video modality gap). Real features may cluster otherwise.
3. Indexing throughput of `tclib index` (videos/s, frames/s, the share of decoding and of the model)
   on synthetic 224 px videos: the demo's model at 224 px (tclib-tiny-224) and ViT-B/32, random weights.

Writes results/benchmarks/search.md and search.json (`--out`).

    .venv/bin/python benchmarks/search.py [--sizes 10000 100000 1000000] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from tclib.models import CLIP4Clip, build_teacher, load_clip, save_checkpoint
from tclib.models.teachers import select
from tclib.search import vectors
from tclib.search.store import ShardVectors, write_shard

DIM, FRAMES, WORDS = 512, 12, 32
TEACHERS = ("xclip", "ts2net", "xpool")
PARTS = ("costs", "teachers", "indexing")


def spectrum(dim: int, rng: np.random.Generator, power: float) -> np.ndarray:
    """A random orthogonal basis scaled by a power-law spectrum: x @ it has variance i**-power along axis i."""
    basis, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    return (basis * (np.arange(1, dim + 1) ** (-power / 2))[None, :]).T


def collection(n: int, seed: int = 0, centres: int = 4000) -> tuple[callable, callable]:
    """(rows(a, b): video vectors a..b-1 of the n, queries(q): q text-like queries): unit vectors
    0.8 * a shared direction + 0.6 * a centre + 0.6 * an offset (centres Zipf-distributed over the
    videos; centres and offsets with power-law spectra); a query is a centre with a 1.3 times larger
    offset. This gives random pairs a cosine of about 0.47 and videos of one centre about 0.74."""
    rng = np.random.default_rng(seed)
    shape_c, shape_o = spectrum(DIM, rng, 1.0), spectrum(DIM, rng, 1.0)
    mean = rng.normal(size=DIM)
    mean /= np.linalg.norm(mean)
    centre = rng.normal(size=(centres, DIM)) @ shape_c
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    sizes = 1.0 / np.arange(1, centres + 1)
    which = rng.choice(centres, size=n, p=sizes / sizes.sum())

    def vectors_of(centres_of: np.ndarray, noise_seed, offset: float) -> np.ndarray:
        noise = np.random.default_rng(noise_seed).normal(size=(len(centres_of), DIM)) @ shape_o
        noise /= np.linalg.norm(noise, axis=1, keepdims=True)
        x = 0.8 * mean + 0.6 * centre[centres_of] + offset * noise
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def rows(a: int, b: int) -> np.ndarray:
        return vectors_of(which[a:b], [seed, a], 0.6)

    def queries(q: int, seed: int = 2) -> np.ndarray:
        return vectors_of(np.random.default_rng(seed).choice(centres, size=q, p=sizes / sizes.sum()),
                          [seed + 1, n], 0.78)

    return rows, queries


def pair_cosines(rows, n: int) -> dict:
    """The spread of the synthetic vectors: mean cosine of random pairs, and of pairs of one centre."""
    x = rows(0, min(n, 20000))
    i = np.random.default_rng(1).integers(0, len(x), (4000, 2))
    return {"random_pairs": float(np.mean(np.sum(x[i[:, 0]] * x[i[:, 1]], 1)))}


def write_collection(folder: Path, n: int, rows, shard: int = 65536) -> pd.DataFrame:
    """The vectors as index shards (float16, as tclib index writes them) and their units table."""
    units = []
    for k, a in enumerate(range(0, n, shard)):
        b = min(n, a + shard)
        write_shard(folder, f"s{k:04d}", "bench", [], rows(a, b), {})
        units.append(pd.DataFrame({"shard": f"s{k:04d}", "row": np.arange(b - a)}))
    return pd.concat(units, ignore_index=True)


def latencies(search, queries: np.ndarray) -> tuple[float, float, float]:
    """p50 and p99 of one query at a time (ms), and queries/s of all of them at once."""
    times = []
    for q in queries:
        started = time.perf_counter()
        search(q[None])
        times.append(1000 * (time.perf_counter() - started))
    started = time.perf_counter()
    search(queries)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), len(queries) / (time.perf_counter() - started)


def student_costs(folder: Path, n: int, rows, queries) -> dict:
    """Exact search (IndexFlatIP) over n vectors: latency and storage."""
    import faiss

    index = faiss.IndexFlatIP(DIM)
    for a in range(0, n, 65536):
        index.add(rows(a, min(n, a + 65536)))
    p50, p99, qps = latencies(lambda q: index.search(q, 10), queries)
    return {"videos": n, "p50_ms": p50, "p99_ms": p99, "batched_qps": qps, "bytes_per_video_ram": 4 * DIM,
            "bytes_per_video_disk": 2 * DIM}


def approximate(folder: Path, n: int, rows, queries, tuning: np.ndarray, kind: str) -> list[dict]:
    """The approximate index of `tclib index --index kind` at n vectors: built and tuned on `tuning`
    queries, then tuned again on held-out stored vectors (as the build does without --tune-queries);
    for each, build time, memory, latency and recall@10 on `queries`."""
    import faiss

    units = write_collection(folder, n, rows) if not (folder / "shards").is_dir() else _units(n)
    started = time.perf_counter()
    record = vectors.build(folder, units, DIM, vectors.choose(n, DIM, kind), queries=tuning)
    built = time.perf_counter() - started
    stored = ShardVectors(folder, units)
    index = vectors.load(folder, vectors.IndexChoice.of_record(record))
    ram = len(faiss.serialize_index(index)) / n
    out = []
    _, held_out = vectors._samples(n, 0, 0)
    for tuned_on, choice in (
            (record["tuned_on"], vectors.IndexChoice.of_record(record)),
            ("held-out stored vectors", vectors.tune(stored, index, vectors.choose(n, DIM, kind), stored.take(held_out),
                                                     held_out)[0])):
        vectors.set_breadth(index, choice)
        p50, p99, qps = latencies(lambda q, choice=choice: vectors.search(stored, index, choice, q, 10), queries)
        exact = vectors.exact_top(stored, queries, 10)
        _, found = vectors.search(stored, index, choice, queries, 10)
        recall = float(np.mean([len(set(a) & set(e)) / 10 for a, e in zip(found, exact, strict=True)]))
        out.append({"videos": n, "kind": kind, "index": choice.describe(), "tuned_on": tuned_on, "build_seconds": built,
                    "bytes_per_video_ram": ram, "p50_ms": p50, "p99_ms": p99, "batched_qps": qps,
                    "recall_at_10": recall})
    return out


def _units(n: int, shard: int = 65536) -> pd.DataFrame:
    return pd.DataFrame({"shard": [f"s{k // shard:04d}" for k in range(n)], "row": np.arange(n) % shard})


@torch.no_grad()
def teacher_costs(videos: int, sizes: list[int]) -> list[dict]:
    """Per-pair cost of each teacher's similarity (1 query x `videos` videos, measured), extrapolated."""
    out = []
    torch.manual_seed(0)
    frames = torch.randint(0, 255, (1, FRAMES, 3, 224, 224), dtype=torch.uint8)
    mask = torch.ones(1, FRAMES, dtype=torch.long)
    tokens = torch.randint(1, 1000, (1, WORDS))
    for name in TEACHERS:
        teacher = build_teacher(name, load_clip("ViT-B-32", ""), WORDS, FRAMES, 4).eval()
        text, one = teacher.encode_text(tokens), teacher.encode_video(frames, mask)
        video = {k: v.repeat(videos, *[1] * (v.dim() - 1)) for k, v in one.items()}
        video = {k: (v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v) for k, v in video.items()}
        teacher.similarity(text, select(video, slice(0, 10)))  # warm up
        started = time.perf_counter()
        for a in range(0, videos, 1000):
            teacher.similarity(text, select(video, slice(a, a + 1000)))
        per_pair = (time.perf_counter() - started) / videos
        floats = sum(v[0].numel() for k, v in one.items() if v.is_floating_point())
        out.append({"model": name, "per_pair_us": 1e6 * per_pair, "floats_per_video": floats,
                    **{f"ms_per_query_{n}": 1000 * per_pair * n for n in sizes}})
    return out


def indexing(work: Path, videos: int, device: str = "cpu") -> list[dict]:
    """tclib index over synthetic 224 px videos with random-weight students at 224 px."""
    from tclib.data import Sampling, write_synthetic_msrvtt
    from tclib.files import content_signature
    from tclib.search.build import IndexJob, build_index
    from tclib.search.model import StudentSpec
    from tclib.search.units import collection_of

    root = write_synthetic_msrvtt(work / "videos", n_train=videos, n_test=0, size=224, workers=2)
    out = []
    for model in ("tclib-tiny-224", "ViT-B-32"):
        torch.manual_seed(0)
        student = CLIP4Clip(load_clip(model, ""), temporal="seqTransf", afa=True, temporal_layers=4)
        checkpoint = save_checkpoint(student.state_dict(), work / f"{model}.pt")
        spec = StudentSpec(exp="bench", run="teachclip", seed=0, checkpoint=str(checkpoint), clip_model=model,
                           clip_pretrained="", temporal="seqTransf", afa=True, temporal_layers=4,
                           afa_temperature=0.1, mask_padding=False, max_words=WORDS,
                           sampling=Sampling(FRAMES, 224).as_dict(),
                           weights={"checkpoint": content_signature(checkpoint)})
        report = build_index(IndexJob(work / f"index-{model}", collection_of(videos=str(root / "videos")), spec,
                             batch_size=16 if device == "cpu" else 64, workers=2 if device == "cpu" else 8,
                             device=device))
        busy = report.decode_seconds + report.model_seconds
        out.append({"model": model, "videos": report.encoded, "videos_per_s": report.encoded / report.seconds,
                    "frames_per_s": report.frames / report.seconds, "decoding_share": report.decode_seconds / busy,
                    "model_share": report.model_seconds / busy})
    return out


def markdown(result: dict) -> str:
    lines = [f"Measured on {result['machine']}, {result['threads']} torch threads, FAISS {result['faiss']}."]
    if "student_exact" in result:
        lines += costs_table(result)
    if "indexing" in result:
        lines += ["", f"### Indexing throughput (`tclib index`, 224 px, random weights, model on {result['device']})",
                  "", "| model | videos | videos/s | frames/s | decoding | model |", "|---|---|---|---|---|---|"]
        for i in result["indexing"]:
            lines.append(f"| {i['model']} | {i['videos']} | {i['videos_per_s']:.1f} | {i['frames_per_s']:.0f} | "
                         f"{100 * i['decoding_share']:.0f}% | {100 * i['model_share']:.0f}% |")
    return "\n".join(lines) + "\n"


def costs_table(result: dict) -> list[str]:
    sizes, exact = result["sizes"], {s["videos"]: s for s in result["student_exact"]}
    approx = result["approximate"][0]  # the first kind, tuned on queries
    lines = ["", "### Cost per query and storage per video (ViT-B/32 shapes)", "",
             "| model | search | " + " | ".join(f"ms/query at {n:,}" for n in sizes) + " | stored per video |",
             "|---|---|" + "---|" * len(sizes) + "---|",
             "| TeachCLIP student | exact | " + " | ".join(f"{exact[n]['p50_ms']:.2f}" for n in sizes)
             + f" | {DIM} floats (float16 on disk: {2 * DIM} B) |",
             f"| TeachCLIP student | {approx['index']} | " + " | ".join(
                 f"{approx['p50_ms']:.2f}" if n == approx["videos"] else "(exact below 100k)" for n in sizes)
             + f" | {approx['bytes_per_video_ram']:.0f} B in RAM, the float16 vector on disk |"]
    for t in result.get("teachers", []):
        lines.append(f"| {t['model']} teacher | cross-modal, every video | "
                     + " | ".join(f"{t[f'ms_per_query_{n}']:,.0f} (extrapolated)" for n in sizes)
                     + f" | {t['floats_per_video']:,} floats |")
    if result.get("teachers"):
        lines += ["", f"Teachers: {result['teacher_videos']} videos scored per query, per-pair cost "
                  + ", ".join(f"{t['model']} {t['per_pair_us']:.1f} µs" for t in result["teachers"])
                  + "; ms/query = per-pair cost x videos."]
    spread = result["synthetic_vectors"]["random_pairs"]
    lines += ["", f"### The approximate indexes at {approx['videos']:,} videos", "",
              f"Synthetic vectors (see the script): random pairs at cosine {spread:.2f} on average.", "",
              "| tuned on | index | build | RAM per video | p50 | p99 | batched | recall@10 vs exact | "
              "speed-up vs exact (p50) |", "|---|---|---|---|---|---|---|---|---|"]
    for a in result["approximate"]:
        lines.append(f"| {a['tuned_on']} | {a['index']} | {a['build_seconds']:.0f} s | {a['bytes_per_video_ram']:.0f} B "
                     f"| {a['p50_ms']:.2f} ms | {a['p99_ms']:.2f} ms | {a['batched_qps']:,.0f} queries/s "
                     f"| {a['recall_at_10']:.3f} | x{exact[a['videos']]['p50_ms'] / a['p50_ms']:.0f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--teacher-videos", type=int, default=2000)
    parser.add_argument("--index-videos", type=int, default=32)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--kinds", nargs="+", default=["hnsw", "ivfpq"], help="approximate indexes to measure")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure")
    parser.add_argument("--device", default="cpu", help="where `tclib index` runs its model (indexing)")
    parser.add_argument("--out", type=Path, default=Path("results/benchmarks"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import faiss

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="tclib-search-bench-"))
    result = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "faiss": faiss.__version__, "sizes": args.sizes, "teacher_videos": args.teacher_videos}
    if "costs" in args.parts:
        rows, query_maker = collection(max(args.sizes))
        queries = query_maker(args.queries)
        result["synthetic_vectors"] = pair_cosines(rows, max(args.sizes))
        result["student_exact"] = [student_costs(work, n, rows, queries) for n in args.sizes]
        logging.info("exact search measured")
        tuning = query_maker(args.queries, seed=7)  # other queries than the measured ones
        result["approximate"] = [row for kind in args.kinds for row in
                                 approximate(work / "approximate", max(args.sizes), rows, queries, tuning, kind)]
        logging.info("approximate indexes measured")
    if "teachers" in args.parts:
        result["teachers"] = teacher_costs(args.teacher_videos, args.sizes)
    if "indexing" in args.parts:
        result["device"] = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
        result["indexing"] = indexing(work, args.index_videos, args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "search.json").write_text(json.dumps(result, indent=1))
    (args.out / "search.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()

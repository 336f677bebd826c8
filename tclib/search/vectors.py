"""The FAISS index over an index folder's vectors (inner product of L2-normalized vectors: cosine).

Chosen by the collection's size and a RAM budget per video, as autofaiss chooses with a memory budget
(or named): up to EXACT_UP_TO vectors an exact `IndexFlatIP`; above, the fastest approximate index
that fits the budget:

- HNSW over 8-bit scalar-quantized vectors (`IndexHNSWSQ`, HNSW_M links a vector: about dim + 8·M
  + 16 bytes per vector, 784 at 512-d), when the budget allows (the default, RAM_PER_VIDEO, does);
- IVF-PQ (`IndexIVFPQ`: nlist ≈ 4·sqrt(N) lists, PQ codes of dim/8 bytes, about dim/8 + 8 bytes).

Either's `rerank` best candidates are scored again exactly with the float16 vectors read from the
shards on disk, so that memory holds the codes only. Both are built from the shards a batch at a
time. The build reports the approximate index's recall@10 against exact search on held-out queries:
the text vectors of captions given to the build, else stored vectors that did not train the
quantizers (each not counted among its own neighbours). The search breadth (nprobe, efSearch) is
tuned to reach recall@10 RECALL_TARGET on them, as autofaiss tunes its search parameters.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ParamsError
from ..progress import progress
from .store import FAISS, ShardVectors

log = logging.getLogger(__name__)

EXACT_UP_TO = 100_000
RECALL_TARGET = 0.95  # recall@10 against exact search that the approximate index is tuned to
KINDS = ("auto", "exact", "ivfpq", "hnsw")
RAM_PER_VIDEO = 1024  # bytes of RAM an approximate index may hold per video, unless told
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 40  # links per vector; breadth of the search that builds the graph (FAISS's)
MAX_EF_SEARCH = 1024
BATCH = 65536  # vectors added at a time (ShardVectors.batches)


@dataclass(frozen=True)
class IndexChoice:
    kind: str  # "exact", "ivfpq" or "hnsw"
    nlist: int = 0
    pq_bytes: int = 0
    nprobe: int = 0
    rerank: int = 0
    m: int = 0  # hnsw: links per vector
    ef_search: int = 0  # hnsw: candidates kept while searching

    @classmethod
    def of_record(cls, record: dict) -> IndexChoice:
        """The choice a manifest's index record holds (an older record lacks the fields added since)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    def describe(self) -> str:
        if self.kind == "exact":
            return "exact inner product (IndexFlatIP)"
        if self.kind == "hnsw":
            return f"HNSW{self.m},SQ8 (efSearch {self.ef_search}), exact re-ranking of the best {self.rerank}"
        return (f"IVF{self.nlist},PQ{self.pq_bytes} (nprobe {self.nprobe}), exact re-ranking of the best "
                f"{self.rerank}")

    def ram_per_video(self, dim: int) -> int:
        """About how many bytes of RAM the index holds per vector."""
        return {"exact": 4 * dim, "ivfpq": self.pq_bytes + 8, "hnsw": dim + 8 * self.m + 16}[self.kind]

    @property
    def breadth(self) -> int:
        """The search parameter tuning widens: nprobe or efSearch."""
        return self.ef_search if self.kind == "hnsw" else self.nprobe


def _faiss():
    """The faiss module, imported quietly (its loader logs every CPU extension it tries at INFO)."""
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    import faiss as module

    return module


def choose(n: int, dim: int, kind: str = "auto", ram_per_video: int = RAM_PER_VIDEO) -> IndexChoice:
    """The index for `n` vectors of `dim`: exact up to EXACT_UP_TO (or when named); above, HNSW-SQ8 when
    it fits `ram_per_video` bytes, else IVF-PQ; ParamsError when not even IVF-PQ fits."""
    if kind not in KINDS:
        raise ParamsError(f"index kind must be one of {KINDS}, got {kind!r}")
    if kind == "exact" or (kind == "auto" and n <= EXACT_UP_TO):
        return IndexChoice("exact")
    nlist = max(16, min(65536, 2 ** round(math.log2(4 * math.sqrt(n)))))
    pq_bytes = max(8, dim // 8) if dim % max(8, dim // 8) == 0 else 8
    ivfpq = IndexChoice("ivfpq", nlist=nlist, pq_bytes=pq_bytes, nprobe=max(8, nlist // 128), rerank=100)
    hnsw = IndexChoice("hnsw", m=HNSW_M, ef_search=16, rerank=30)
    if kind != "auto":
        return hnsw if kind == "hnsw" else ivfpq
    for choice in (hnsw, ivfpq):
        if choice.ram_per_video(dim) <= ram_per_video:
            return choice
    raise ParamsError(f"no index of {n} vectors of {dim} fits in {ram_per_video} bytes of RAM per video: IVF-PQ "
                      f"needs about {ivfpq.ram_per_video(dim)}, HNSW-SQ8 {hnsw.ram_per_video(dim)} (--ram-per-video)")


def build(out: Path, units: pd.DataFrame, dim: int, choice: IndexChoice, seed: int = 0,
          queries: np.ndarray | None = None) -> dict:
    """Build and save the index of `units` (the order of units.csv); returns what the manifest records.
    The approximate index's nprobe is tuned on `queries` (vectors of queries like the ones to come:
    text vectors of captions), else on held-out stored vectors."""
    faiss = _faiss()

    started = time.perf_counter()
    stored = ShardVectors(out, units)
    index = empty_index(choice, dim)
    if choice.kind != "exact":
        train_rows, held_out = _samples(len(units), max(40 * choice.nlist, 50_000), seed)
        index.train(stored.take(train_rows))
    for vectors in progress(stored.batches(BATCH), total=math.ceil(len(units) / BATCH), desc=f"{choice.kind} index",
                            unit="batch", disable=len(units) < 4 * BATCH):
        index.add(vectors)
    faiss.write_index(index, str(out / f"{FAISS}.tmp"))
    (out / f"{FAISS}.tmp").replace(out / FAISS)
    if choice.kind != "exact":
        tuning = (stored.take(held_out), held_out) if queries is None else (queries, None)
        choice, recall = tune(stored, index, choice, *tuning)
    record = {**asdict(choice), "built_seconds": round(time.perf_counter() - started, 1)}
    if choice.kind != "exact":
        record["recall_at_10"] = recall
        record["tuned_on"] = "held-out stored vectors" if queries is None else f"{len(queries)} queries"
        log.info("%s: %s, recall@10 %.3f against exact search on %s", out, choice.describe(), recall,
                 record["tuned_on"])
    return record


def empty_index(choice: IndexChoice, dim: int):
    """The FAISS index of a choice, before training and adding."""
    faiss = _faiss()
    if choice.kind == "exact":
        return faiss.IndexFlatIP(dim)
    if choice.kind == "hnsw":
        index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_8bit, choice.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    return faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, choice.nlist, choice.pq_bytes, 8, faiss.METRIC_INNER_PRODUCT)


def tune(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray, own: np.ndarray | None,
         target: float = RECALL_TARGET) -> tuple[IndexChoice, float]:
    """The smallest search breadth (nprobe in steps of about 1.4x, efSearch of 1.2x, from the choice's)
    whose recall@10 reaches `target`, as autofaiss tunes its search parameters; at most a quarter of the
    lists are probed, and efSearch stays within MAX_EF_SEARCH."""
    limit, step = (choice.nlist // 4, 1.41) if choice.kind == "ivfpq" else (MAX_EF_SEARCH, 1.2)
    exact = exact_top(stored, np.ascontiguousarray(queries, dtype=np.float32), 11 if own is not None else 10)
    while True:
        set_breadth(index, choice)
        recall = recall_at_10(stored, index, choice, queries, own, exact)
        following = max(choice.breadth + 1, round(choice.breadth * step))
        if recall >= target or following > limit:
            return choice, recall
        if choice.kind == "hnsw":
            choice = replace(choice, ef_search=following)
        else:
            choice = replace(choice, nprobe=following)


def set_breadth(index, choice: IndexChoice) -> None:
    if choice.kind == "hnsw":
        index.hnsw.efSearch = choice.ef_search
    elif choice.kind == "ivfpq":
        index.nprobe = choice.nprobe


def _samples(n: int, train: int, seed: int, queries: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Rows that train the quantizers, and held-out rows that query the recall (sorted, disjoint)."""
    order = np.random.default_rng(seed).permutation(n)
    held_out = np.sort(order[:min(queries, n // 10)])
    return np.sort(order[len(held_out):len(held_out) + train]), held_out


def search(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray, k: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best units for each query (rows of float32 vectors), best first; an
    approximate index's candidates scored again exactly (all queries' candidates read at once)."""
    k = min(k, len(stored))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if choice.kind == "exact":
        return index.search(queries, k)
    _, candidates = index.search(queries, max(k, choice.rerank))
    found = candidates >= 0
    vectors = stored.take(np.where(found, candidates, 0).ravel()).reshape(*candidates.shape, -1)
    exact = np.where(found, np.einsum("qcd,qd->qc", vectors, queries), -np.inf).astype(np.float32)
    best = np.argsort(-exact, axis=1, kind="stable")[:, :k]
    scores, ids = np.take_along_axis(exact, best, 1), np.take_along_axis(candidates, best, 1)
    return scores, np.where(np.isfinite(scores), ids, -1)


def exact_top(stored: ShardVectors, queries: np.ndarray, k: int) -> np.ndarray:
    """The ids of the exact k best units of each query, read from the shards a batch at a time."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.zeros((len(queries), k), dtype=np.int64)
    offset = 0
    for vectors in stored.batches():
        scores = queries @ vectors.T
        ids = np.broadcast_to(np.arange(offset, offset + len(vectors)), scores.shape)
        merged_scores, merged_ids = np.hstack([best_scores, scores]), np.hstack([best_ids, ids])
        top = np.argsort(-merged_scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(merged_scores, top, 1), np.take_along_axis(merged_ids, top, 1)
        offset += len(vectors)
    return best_ids


def recall_at_10(stored: ShardVectors, index, choice: IndexChoice, queries: np.ndarray,
                 own: np.ndarray | None = None, exact: np.ndarray | None = None) -> float:
    """The share of the exact top 10 (`exact`, computed when not given) that the index returns in its top
    10, over `queries`; a query that is a stored vector (`own`: its row) does not count itself among
    its neighbours."""
    extra = 0 if own is None else 1
    exact = exact_top(stored, queries, 10 + extra) if exact is None else exact
    _, approx = search(stored, index, choice, queries, 10 + extra)
    recalls = []
    for i, (a, e) in enumerate(zip(approx, exact, strict=True)):
        if own is not None:
            a, e = a[a != own[i]][:10], e[e != own[i]][:10]
        recalls.append(len(set(a) & set(e)) / 10)
    return float(np.mean(recalls))


def load(out: Path, choice: IndexChoice):
    index = _faiss().read_index(str(out / FAISS))
    set_breadth(index, choice)
    return index

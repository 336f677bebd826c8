"""tclib.search.vectors: exact search up to a size; above it HNSW-SQ8 or IVF-PQ, as the RAM budget per
video allows, with exact re-ranking."""

import numpy as np
import pandas as pd
import pytest

from tclib.errors import ParamsError
from tclib.search import vectors
from tclib.search.store import ShardVectors, write_shard


def test_the_index_is_chosen_by_the_collection_size_and_the_ram_budget():
    assert vectors.choose(100_000, 512).kind == "exact"
    big = vectors.choose(1_000_000, 512)  # 1 KB a video: HNSW32 over 8-bit codes, 512 + 8 * 32 + 16 bytes
    assert (big.kind, big.m, big.rerank, big.ram_per_video(512)) == ("hnsw", 32, 30, 784)
    small = vectors.choose(1_000_000, 512, ram_per_video=700)  # below that: IVF-PQ, 64-byte codes + an id
    assert (small.kind, small.nlist, small.pq_bytes, small.rerank, small.ram_per_video(512)) == (
        "ivfpq", 4096, 64, 100, 72)
    assert vectors.choose(50, 64, "ivfpq").kind == "ivfpq" and vectors.choose(10**7, 64, "exact").kind == "exact"
    assert vectors.choose(50, 64, "hnsw").kind == "hnsw"
    with pytest.raises(ParamsError, match="index kind"):
        vectors.choose(10, 64, "lsh")
    with pytest.raises(ParamsError, match=r"fits in 50 bytes of RAM per video: IVF-PQ needs about 72"):
        vectors.choose(1_000_000, 512, ram_per_video=50)
    old = {"kind": "ivfpq", "nlist": 64, "pq_bytes": 8, "nprobe": 8, "rerank": 100, "built_seconds": 1.0}
    assert vectors.IndexChoice.of_record(old) == vectors.IndexChoice("ivfpq", 64, 8, 8, 100)  # a manifest of before


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 50 centres (the same for every seed), as features of similar videos cluster."""
    centres = np.random.default_rng(0).normal(size=(50, dim))
    rng = np.random.default_rng(seed + 1)
    x = centres[rng.integers(0, 50, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("kind", ["ivfpq", "hnsw"])
def test_the_approximate_index_finds_what_exact_search_finds(kind, tmp_path):
    x = clustered(6000, 64)
    units = pd.DataFrame({"shard": ["s0"] * 3000 + ["s1"] * 3000, "row": np.r_[np.arange(3000), np.arange(3000)]})
    write_shard(tmp_path, "s0", "m", [], x[:3000], {})
    write_shard(tmp_path, "s1", "m", [], x[3000:], {})
    choice = vectors.choose(len(x), 64, kind)
    record = vectors.build(tmp_path, units, 64, choice)
    assert record["kind"] == kind and record["recall_at_10"] >= 0.95
    assert vectors.IndexChoice.of_record(record).breadth >= choice.breadth  # tuned from the choice's up
    choice = vectors.IndexChoice.of_record(record)
    index = vectors.load(tmp_path, choice)
    queries = clustered(20, 64, seed=1)
    stored = ShardVectors(tmp_path, units)
    scores, ids = vectors.search(stored, index, choice, queries, 10)
    as_stored = x.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ as_stored.T, ids, 1), rtol=1e-5)  # re-ranked exactly
    exact = vectors.exact_top(stored, queries, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact, strict=True)]) >= 0.9
    tuned = vectors.build(tmp_path, units, 64, vectors.choose(len(x), 64, kind), queries=clustered(50, 64, seed=3))
    assert tuned["tuned_on"] == "50 queries" and tuned["recall_at_10"] >= 0.95  # on the queries it was tuned on

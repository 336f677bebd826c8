"""Searching a collection of videos or moments with a trained student: one vector per unit.

    model       StudentSpec: a trained student of an experiment, how it samples frames and reads words
    exported    a student as model.safetensors + config.json + model card: `tclib export student`,
                `tclib index --student DIR`
    units       what is indexed: every video of a folder, a list or a params split, whole or cut into
                moments (fixed segments, or the shots of a shot-boundary file)
    store       the index folder: vectors (float16 shards), the units table, the manifest, failures
    build       `tclib index`: encoding only what is new or changed, resumable, over several processes
    vectors     the FAISS index: exact up to a size, above it HNSW-SQ8 or IVF-PQ (as the RAM per video
                allows) with exact re-ranking
    query       Index(folder).search(queries, k): `tclib search`
    bigfile     TeachCLIP's BigFile layout: `tclib export bigfile`, `tclib index --bigfile`
"""

__all__ = ["Index", "export_student", "exported_spec"]


def __getattr__(name: str):
    """`from tclib.search import Index` (and the exported students' functions), imported when asked for
    (FAISS and torch load with them)."""
    if name == "Index":
        from .query import Index

        return Index
    if name in ("export_student", "exported_spec"):
        from . import exported

        return getattr(exported, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

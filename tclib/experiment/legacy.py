"""Stage folders made before identities were location-independent, found again.

Until then a data file was identified by its resolved absolute path (and checkpoints also by size
and modification time), so the fingerprints of every stage depended on where the project and the
data lay. Those folders are found and adopted (renamed to their fingerprint under the current rule,
their record rewritten, `adopted_from` naming the old folder) when a stage asks for them:

- the frame cache has no record: it is found by the fingerprint of that time, else as the one such
  cache whose manifest holds the same clips, segments, sampling and storage (after a move);
- the other stages (tclib.stages.Stage with `legacy` inputs) by their record's inputs, computed
  with the upstream fingerprints and file identities of that time (`Identities` of `earlier`).

Decoding on the fly (`frame_cache: false`) left no frame folder to recognise: its earlier frames
fingerprint is computed from the videos' absolute paths, so those stages are found in place only.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.framecache import read_index, read_manifest, segments_of, stored_params, video_sources
from ..errors import DataError
from ..params import Params
from ..stages import RECORD, adopt_folder, fingerprint

log = logging.getLogger(__name__)


def frames_fingerprint(P: Params, videos: dict, image_size: int) -> str:
    """The frame cache's fingerprint of that time: the sampling, every clip's resolved file and
    segment, the synthetic set's parameters, a JPEG cache's quality."""
    resolved = {clip: [str(Path(v if isinstance(v, str) else v[0]).resolve()), *([] if isinstance(v, str) else v[1:])]
                for clip, v in videos.items()}
    synthetic = P.values(["synthetic_train_videos", "synthetic_test_videos", "synthetic_frame_size",
                          "synthetic_seed"]) if P.synthetic else None
    storage = [P.values(["frame_cache_format", "jpeg_quality"])] if P.frame_cache_format != "raw" else []
    return fingerprint(P.values(["max_frames", "framerate", "slice_framepos"]), image_size, resolved, synthetic,
                       *storage)


def earlier_frame_cache(P: Params, videos: dict, params: dict, base: Path, image_size: int) -> Path | None:
    """The complete frame cache of these videos made before location-independent identities, if any."""
    named = base / frames_fingerprint(P, videos, image_size)
    if _holds(named, videos, params):
        return named
    matches = [folder for folder in sorted(base.iterdir()) if _holds(folder, videos, params)] if base.is_dir() else []
    if len(matches) > 1:
        log.warning("%s: %d frame caches of an earlier tclib hold these videos (%s); none is taken", base,
                    len(matches), ", ".join(m.name for m in matches))
    return matches[0] if len(matches) == 1 else None


def _holds(folder: Path, videos: dict, params: dict) -> bool:
    """A complete frame cache without a stage record, of these clips, segments, sampling and storage."""
    if not (folder / "manifest.json").is_file() or (folder / RECORD).is_file():
        return False
    try:
        manifest = read_manifest(folder)
        ids, sources = video_sources(videos, str(folder))
        return (bool(manifest.get("complete")) and stored_params(manifest) == params
                and read_index(folder) == ids and manifest.get("segments", {}) == segments_of(ids, sources))
    except DataError:
        return False


def adopt_frame_cache(earlier: Path, directory: Path) -> None:
    adopt_folder(earlier, directory)
    log.info("%s: found the frame cache %s (made before location-independent identities), now %s",
             directory.parent, earlier.name, directory.name)


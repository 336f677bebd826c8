"""Where a data set's video files are: the folders the public repositories and download guides use."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tclib.errors import DataError

# Folders under a data set root that the public repositories and download guides put videos in.
VIDEO_FOLDERS: tuple[str, ...] = (
    "videos",
    "MSRVTT_Videos",
    "VideoData",
    "MSVD_Videos",
    "YouTubeClips",
    "DiDeMo_Videos",
    "Activity_Videos",
    "Videos",
)


# Extensions tried after ``<video_id>``, in this order; matched case-insensitively.
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


class VideoIndex:
    """A listing of the video folders of one data set, built once, to resolve video paths.

    With ``videos_dir`` only that folder is listed (recursively). Otherwise every existing folder
    of :data:`VIDEO_FOLDERS` under ``root`` is listed recursively, then the files with a video
    extension directly in ``root``; where a name occurs more than once the first listed wins.
    """

    def __init__(self, root: str | os.PathLike, videos_dir: str | os.PathLike | None = None,
                 folders: Iterable[str] = VIDEO_FOLDERS) -> None:
        root = Path(root)
        self._files: dict[str, str] = {}
        if videos_dir is not None:
            videos_dir = Path(videos_dir)
            if not videos_dir.is_dir():
                raise DataError(f"videos folder not found: {videos_dir}")
            self.folders: list[Path] = [videos_dir]
            self._walk(videos_dir)
        else:
            seen: set[Path] = set()
            self.folders = []
            for name in folders:
                folder = root / name
                if folder.is_dir() and folder.resolve() not in seen:
                    seen.add(folder.resolve())
                    self.folders.append(folder)
                    self._walk(folder)
            if root.is_dir():
                with os.scandir(root) as entries:
                    for entry in sorted(entries, key=lambda e: e.name):
                        if not entry.is_dir() and os.path.splitext(entry.name)[1].lower() in VIDEO_EXTENSIONS:
                            self._add(entry.name, entry.path)
            self.folders.append(root)
        self.default_folder: Path = self.folders[0]

    def _add(self, name: str, path: str) -> None:
        stem, ext = os.path.splitext(name)
        self._files.setdefault(name, path)
        self._files.setdefault(stem + ext.lower(), path)

    def _walk(self, folder: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
            dirnames.sort()
            for name in sorted(filenames):
                self._add(name, os.path.join(dirpath, name))

    def __len__(self) -> int:
        return len(set(self._files.values()))

    def find(self, stems: Iterable[str]) -> str:
        """Path of the first existing ``<stem><ext>`` (then ``<stem>`` itself) over ``stems``;
        ``<default folder>/<first stem>.mp4`` when there is none."""
        stems = list(stems)
        for stem in stems:
            for ext in VIDEO_EXTENSIONS:
                path = self._files.get(stem + ext)
                if path is not None:
                    return path
            path = self._files.get(stem)
            if path is not None:
                return path
        return str(self.default_folder / f"{stems[0]}{VIDEO_EXTENSIONS[0]}")

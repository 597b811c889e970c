"""Per-partition checkpoints: the engine state of one Kafka partition and the offsets it covers.

A checkpoint is what `Engine.save` writes (an Arrow IPC file plus metadata), one file per
partition under `<state_dir>/<app_id>/`. The state dir is a local directory or any fsspec
URL (`s3://bucket/prefix`, `memory://…`), so workers on other machines can take a
partition over. Writes are atomic: a reader sees the old checkpoint or the new one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from segstream import Engine


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


class CheckpointStore:
    """Saves and loads the checkpoint of each partition of one consumer group."""

    def __init__(self, location: str, app_id: str) -> None:
        self.location = location.rstrip("/")
        self.app_id = app_id
        self._remote = _is_url(location)
        if self._remote:
            import fsspec

            self._fs, root = fsspec.core.url_to_fs(f"{self.location}/{app_id}")
            self._root = root
            self._fs.makedirs(root, exist_ok=True)
        else:
            local = location.removeprefix("file://")
            self._dir = Path(local) / app_id
            self._dir.mkdir(parents=True, exist_ok=True)

    def describe(self, partition: int) -> str:
        """Where the checkpoint of `partition` lives, for logs and errors."""
        if self._remote:
            return f"{self.location}/{self.app_id}/{self._name(partition)}"
        return str(self._dir / self._name(partition))

    @staticmethod
    def _name(partition: int) -> str:
        return f"partition-{partition:05d}.arrow"

    def save(self, engine: Engine, partition: int, offsets: Mapping[str, int]) -> None:
        """Write the state of `partition` with the last applied offset of each source.

        `offsets` maps `"<topic>/<partition>"` to the offset of the last message the
        state includes; it is stored in the checkpoint's metadata.
        """
        if self._remote:
            with tempfile.TemporaryDirectory(prefix="segstream-ckpt-") as tmp:
                local = os.path.join(tmp, self._name(partition))
                engine.save(local, offsets=dict(offsets))
                # One object PUT is atomic on object stores; no rename needed.
                self._fs.put_file(local, f"{self._root}/{self._name(partition)}")
            return
        final = self._dir / self._name(partition)
        tmp_path = final.with_suffix(f".tmp-{os.getpid()}")
        engine.save(str(tmp_path), offsets=dict(offsets))
        # rename(2) is atomic on one file system: a crash mid-save leaves the old checkpoint.
        os.replace(tmp_path, final)

    def load(self, partition: int) -> Engine | None:
        """The saved engine of `partition`, or None if it has never been checkpointed.

        Raises `segstream.CheckpointError` for an unreadable or incompatible file: starting
        over silently would count events twice or lose them.
        """
        from segstream import Engine

        if self._remote:
            remote = f"{self._root}/{self._name(partition)}"
            if not self._fs.exists(remote):
                return None
            with tempfile.TemporaryDirectory(prefix="segstream-ckpt-") as tmp:
                local = os.path.join(tmp, self._name(partition))
                self._fs.get_file(remote, local)
                return Engine.load(local)
        path = self._dir / self._name(partition)
        if not path.exists():
            return None
        return Engine.load(str(path))

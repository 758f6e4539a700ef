"""Per-sample student records (one row per sample and training step: `sample_index`, `progress`, `epoch`, `label`,
`clean_label`, `loss`, `weight`, and the `loss_diff` features the trainer computed at that step, e.g.
`loss_diff_p75`), the input of [`learn_from_records`]. Written during training in parquet chunks,
so that a long run never holds its records in memory nor copies them into every checkpoint."""

from __future__ import annotations

import glob
import os
import shutil

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

__all__ = ["StudentRecords"]

RECORD_NAMES = ("sample_index", "label", "clean_label", "loss", "usable")
CHUNK_ROWS = 1_000_000


class StudentRecords:
    """A growing set of student records in `directory` (`records-00000.parquet`, ...).

    Rows are buffered on the training device and written as a chunk when `chunk_rows` are buffered, at each
    checkpoint ([`~StudentRecords.flush`]) and at the end of training, so a resumed run keeps exactly the chunks
    written up to its checkpoint ([`~StudentRecords.truncate`]).

    Args:
        directory (`str`): where the chunks go (created when the first one is written).
        write (`bool`): False on the processes that do not save (nothing is kept there).
        chunk_rows (`int`): rows per chunk.
    """

    def __init__(self, directory: str, write: bool = True, chunk_rows: int = CHUNK_ROWS) -> None:
        self.directory = directory
        self.write = write
        self.chunk_rows = chunk_rows
        self._buffer: list[dict[str, torch.Tensor | float | int]] = []
        self._buffered_rows = 0
        self._num_chunks = 0
        self._owns_directory = False  # checked at the first write: a resumed run owns the chunks it continues

    def existing_chunks(self) -> list[str]:
        """The chunk files in `directory` now (this run's or an earlier run's)."""
        return glob.glob(os.path.join(self.directory, "records-*.parquet"))

    def remove(self) -> None:
        """Remove an earlier run's chunks from `directory` (only the chunk files: nothing else there is ours)."""
        for path in self.existing_chunks():
            os.remove(path)

    def add(
        self,
        batch: dict[str, torch.Tensor],
        weights: torch.Tensor,
        progress: float,
        epoch: int,
        features: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Buffer a global batch's rows: its `RECORD_NAMES` columns, the `weights` and per-sample `features` (columns
        by name), at training `progress` (a fraction) and `epoch` (the paper's progress, 0..99)."""
        if not self.write:
            return
        row = {name: batch[name].detach() for name in RECORD_NAMES if name in batch}
        row |= {name: value.detach() for name, value in (features or {}).items()}
        self._buffer.append({**row, "weight": weights.detach(), "progress": progress, "epoch": epoch})
        self._buffered_rows += weights.shape[0]
        if self._buffered_rows >= self.chunk_rows:
            self.flush()

    def check_unused(self) -> None:
        """Refuse a directory that holds another run's records (unless this run continues them)."""
        if self.write and not self._owns_directory and self.existing_chunks():
            raise ValueError(
                f"{self.directory!r} already holds the student records of another run, which this run would mix "
                "with its own. Choose another `output_dir`, move them away, or resume that run with "
                "`resume_from_checkpoint`."
            )

    def _chunk_path(self, index: int) -> str:
        return os.path.join(self.directory, f"records-{index:05d}.parquet")

    def flush(self) -> int:
        """Write the buffered rows as one chunk; returns the number of chunks written so far."""
        if not self._buffer:
            return self._num_chunks
        sizes = [len(row["weight"]) for row in self._buffer]
        columns = {
            name: torch.cat([row[name] for row in self._buffer]).cpu().numpy()
            for name in self._buffer[0]
            if name not in ("progress", "epoch")
        }
        columns["progress"] = np.repeat([row["progress"] for row in self._buffer], sizes).astype(np.float32)
        columns["epoch"] = np.repeat([row["epoch"] for row in self._buffer], sizes).astype(np.int64)
        # Samples that did not train (label -100, a non-finite loss) are not records of the student's losses.
        usable = columns.pop("usable")
        columns = {name: values[usable] for name, values in columns.items()}
        self.check_unused()
        self._owns_directory = True
        os.makedirs(self.directory, exist_ok=True)
        path = self._chunk_path(self._num_chunks)
        pq.write_table(pa.table(columns), path + ".tmp")
        os.replace(path + ".tmp", path)
        self._num_chunks += 1
        self._buffer, self._buffered_rows = [], 0
        return self._num_chunks

    def truncate(self, num_chunks: int, source_directory: str) -> None:
        """Continue after the first `num_chunks` chunks, those of the checkpoint being resumed: later chunks of the
        interrupted run are removed, the buffer is dropped, and chunks this directory lacks are copied from
        `source_directory` (the records of the run the checkpoint belongs to, when it was another `output_dir`)."""
        self._buffer, self._buffered_rows = [], 0
        self._num_chunks = num_chunks
        self._owns_directory = True
        if not self.write:
            return
        for path in self.existing_chunks():
            if int(os.path.basename(path)[len("records-") : -len(".parquet")]) >= num_chunks:
                os.remove(path)
        for index in range(num_chunks):
            path = self._chunk_path(index)
            if not os.path.isfile(path):
                source = os.path.join(source_directory, os.path.basename(path))
                if not os.path.isfile(source):
                    raise ValueError(
                        f"The checkpoint continues {num_chunks} chunks of student records, but {source!r} is "
                        "missing: resume from the checkpoint of a run whose `student_records` are intact."
                    )
                os.makedirs(self.directory, exist_ok=True)
                shutil.copyfile(source, path + ".tmp")
                os.replace(path + ".tmp", path)

    def dataset(self) -> datasets.Dataset:
        """All records written so far (the buffer is flushed first) as one `datasets.Dataset`."""
        self.flush()
        paths = [self._chunk_path(index) for index in range(self._num_chunks)]
        if not paths:
            raise ValueError("No student records were written yet: train first.")
        return datasets.Dataset.from_parquet(paths)

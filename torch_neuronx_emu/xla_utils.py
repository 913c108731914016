"""Mirror of the part of `torch_xla.utils.utils` (imported as `xu`) the examples use: the fake-data loader."""
from __future__ import annotations


class SampleGenerator:
    """Yields `data` `sample_count` times (the examples' `--fake_data` loader)."""

    def __init__(self, data, sample_count: int):
        self._data = data
        self._count = sample_count

    def __iter__(self):
        for _ in range(self._count):
            yield self._data

    def __len__(self):
        return self._count

"""The batch sampler for training on groups of examples with different numbers of negatives, on one process or
several (DDP)."""

from __future__ import annotations

import torch
from sentence_transformers.base.sampler import MultiDatasetDefaultBatchSampler
from torch.utils.data import BatchSampler, ConcatDataset


class AlignedProportionalBatchSampler(MultiDatasetDefaultBatchSampler):
    """Batches from each group in proportion to the group's size, drawn in runs of ``world_size`` from one group.

    The trainer hands consecutive batches to the processes of a DDP run in turn, so with runs of ``world_size``
    every process trains on the same group at every step: in-batch negatives gathered across processes need
    batches of the same shape, and a process with an extra batch would wait forever for the others. Batches
    that do not fill a last run are dropped. With one process this is sentence-transformers' PROPORTIONAL
    sampler: every batch of every group once per epoch, in a seeded random order.

    Args:
        dataset: the groups concatenated (built by the trainer).
        batch_samplers: one batch sampler per group (NO_DUPLICATES or random, per the loss).
        generator: the trainer's generator, reseeded with ``seed + epoch`` at each epoch.
        seed: `base.seed`.
        world_size: training processes.
    """

    def __init__(self, dataset: ConcatDataset, batch_samplers: list[BatchSampler], generator: torch.Generator | None = None,
                 seed: int = 0, world_size: int = 1) -> None:
        super().__init__(dataset, batch_samplers, generator, seed)
        self.world_size = world_size

    def __iter__(self):
        if self.generator is not None and self.seed is not None:
            self.generator.manual_seed(self.seed + self.epoch)
        offsets = [0]
        for group in self.dataset.datasets[:-1]:
            offsets.append(offsets[-1] + len(group))
        batches = [list(sampler) for sampler in self.batch_samplers]
        runs = [(group, start) for group, listed in enumerate(batches)
                for start in range(0, len(listed) - self.world_size + 1, self.world_size)]
        for position in torch.randperm(len(runs), generator=self.generator).tolist():
            group, start = runs[position]
            for batch in batches[group][start:start + self.world_size]:
                yield [offsets[group] + index for index in batch]

    def __len__(self) -> int:
        return sum(len(sampler) // self.world_size for sampler in self.batch_samplers) * self.world_size

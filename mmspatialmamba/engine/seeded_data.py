"""Per-sample seeding of the training data pipeline, so augmentations replay after a resume.

mmengine seeds each dataloader worker once (``worker_init_fn(seed + rank * num_workers +
worker_id)``) and, with ``num_workers=0``, the pipeline draws from the main process's
generators, between the model's draws. What a sample's RandomFlip or RandomResize draws then
depends on the worker it lands on, on how many samples that worker has seen since it started,
and on the model. A resumed run restarts its workers (or its main-process stream) and so draws
other augmentations than the unbroken run would have.

Here each draw of a sample gets its own seed, computed from ``(seed, rank, epoch, position)``:
the run's seed, the process's rank, the sampler's epoch and the sample's position in this
rank's stream of indices for that epoch. :class:`SeededSampler` wraps the configured sampler
and yields each index as a :class:`SampleKey` that carries this seed; :class:`SeededDataset`
wraps the configured dataset and runs the pipeline for that key with Python's ``random``, numpy
and torch (CPU) seeded from it, then puts the caller's generator states back. A sample's
augmentations are then the same whichever worker draws them, with any ``num_workers`` or
``persistent_workers``, and after any resume.
"""
import contextlib
import random
from typing import Iterator, Optional, Union

import numpy as np
import torch
from mmengine.dist import get_rank, sync_random_seed
from mmengine.registry import DATA_SAMPLERS, DATASETS
from torch.utils.data import Dataset, Sampler


class SampleKey(int):
    """A dataset index that also carries the seed for this draw of the sample.

    It is an ``int``, so batch samplers (e.g. mmdet's ``AspectRatioBatchSampler``) and
    ``get_data_info`` take it as the index it is.
    """

    def __new__(cls, index: int, seed: int) -> 'SampleKey':
        key = super().__new__(cls, index)
        key.seed = seed
        return key

    def __getnewargs__(self) -> tuple:  # pickled to dataloader workers
        return int(self), self.seed


def sample_seed(seed: int, rank: int, epoch: int, position: int) -> int:
    """A 32-bit seed for one draw, mixed by numpy's ``SeedSequence`` from its coordinates."""
    return int(np.random.SeedSequence([seed % 2**64, rank, epoch, position]).generate_state(1)[0])


@contextlib.contextmanager
def seeded_generators(seed: int) -> Iterator[None]:
    """Seed Python's ``random``, numpy's global and torch's CPU generator; restore them after."""
    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    random.seed(seed)
    np.random.seed(seed)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


@DATA_SAMPLERS.register_module()
class SeededSampler(Sampler):
    """Wrap a sampler; yield its indices as :class:`SampleKey` s seeded per draw.

    Args:
        sampler: The wrapped sampler's config, e.g. ``dict(type='DefaultSampler',
            shuffle=True)``; built with the same ``dataset`` and ``seed``.
        dataset: The dataset (given by mmengine's ``Runner.build_dataloader``).
        seed: The run's seed (given by the Runner); None draws one shared by all ranks, as
            mmengine's samplers do.
    """

    def __init__(self, sampler: dict, dataset: Dataset, seed: Optional[int] = None) -> None:
        if seed is None:
            seed = sync_random_seed()
        self.sampler = DATA_SAMPLERS.build(sampler, default_args=dict(dataset=dataset, seed=seed))
        self.dataset = dataset
        self.seed = seed
        self.rank = get_rank()

    def __iter__(self) -> Iterator[SampleKey]:
        epoch = getattr(self.sampler, 'epoch', 0)
        for position, index in enumerate(self.sampler):
            yield SampleKey(index, sample_seed(self.seed, self.rank, epoch, position))

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Pass the epoch on (mmengine's loops and ``DistSamplerSeedHook`` call this)."""
        if hasattr(self.sampler, 'set_epoch'):
            self.sampler.set_epoch(epoch)


@DATASETS.register_module()
class SeededDataset(Dataset):
    """Wrap a dataset; run its pipeline for a :class:`SampleKey` under the key's seed.

    A plain ``int`` index (not from :class:`SeededSampler`) is passed through unseeded.

    Args:
        dataset: The wrapped dataset, or its config.
    """

    def __init__(self, dataset: Union[dict, Dataset]) -> None:
        self.dataset = DATASETS.build(dataset) if isinstance(dataset, dict) else dataset

    def __getitem__(self, index: int):
        if not isinstance(index, SampleKey):
            return self.dataset[index]
        with seeded_generators(index.seed):
            return self.dataset[int(index)]

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def metainfo(self) -> dict:
        return self.dataset.metainfo

    def get_data_info(self, index: int) -> dict:
        return self.dataset.get_data_info(int(index))

    def full_init(self) -> None:
        if hasattr(self.dataset, 'full_init'):
            self.dataset.full_init()

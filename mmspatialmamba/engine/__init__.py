"""Training-engine pieces that make a killed run resume exactly (see ``resume.py``)."""
from .checkpoint_files import AtomicLocalBackend, latest_complete_checkpoint
from .random_state import RandomStateHook
from .resume import make_resumable, prepare_resume
from .seeded_data import SampleKey, SeededDataset, SeededSampler

__all__ = ['AtomicLocalBackend', 'RandomStateHook', 'SampleKey', 'SeededDataset',
           'SeededSampler', 'latest_complete_checkpoint', 'make_resumable', 'prepare_resume']

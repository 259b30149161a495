"""One recorded Triton launch: kernel, grid, arguments (:func:`.compiler.record_launches`).

Kept apart from :mod:`.compiler` (which refuses to load under the Triton interpreter) so the
time model (:mod:`.timing`) and its tests can build launches in any process.
"""
import dataclasses
from typing import Any, Dict, Tuple

import torch


@dataclasses.dataclass
class Launch:
    """One recorded ``kernel[grid](*args, **kwargs)``; ``case`` names what launched it.

    ``kernel`` is the ``@triton.jit`` function (anything with ``__name__`` and
    ``arg_names``).
    """
    case: str
    kernel: Any
    grid: Tuple[int, int, int]
    args: tuple
    kwargs: dict

    @property
    def name(self) -> str:
        return self.kernel.__name__

    @property
    def programs(self) -> int:
        return self.grid[0] * self.grid[1] * self.grid[2]

    def named_args(self) -> Dict[str, Any]:
        """Every argument by its name in the kernel's signature, ``constexpr`` s included."""
        return {**dict(zip(self.kernel.arg_names, self.args)), **self.kwargs}

    def tensor_bytes(self, *names: str) -> int:
        """Bytes of the distinct storages behind the tensor arguments (those called ``names``,
        or all): what the kernel may read or write at most. Views of one storage (``B`` and
        ``C`` of one projection) count once."""
        storages = {}
        for name, a in self.named_args().items():
            if isinstance(a, torch.Tensor) and (not names or name in names):
                s = getattr(a, 'elem', a).untyped_storage()   # a fake CUDA tensor: its meta data
                storages[id(s)] = s                           # kept alive: ids stay distinct
        return sum(s.nbytes() for s in storages.values())

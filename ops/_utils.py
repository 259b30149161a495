"""Small helpers shared by the ops: the output allocator and dtype handling."""
import torch

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def new_output(*shape: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocate an uninitialised output buffer.

    Every buffer an op writes completely is allocated here, so tests can replace this
    function with one that fills the buffer with NaN: an element a kernel never writes
    then shows up as a failure instead of as leftover memory that happens to look right.
    """
    return torch.empty(*shape, dtype=dtype, device=device)

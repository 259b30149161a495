"""PyTorch reference of the structure-aware state fusion (docs/model.md step 6).

``h~ = alpha_0 * dw3x3_d1(h) + alpha_1 * dw3x3_d3(h) + alpha_2 * dw3x3_d5(h)`` with replicate
padding. The map is padded once by 5 (the largest dilation); each dilation then reads a crop of
that padded map, which equals padding by its own dilation because replicate padding of a
replicate-padded map is the same clamp to the border. Kernels are read on every call: nothing
derived from the parameters is cached, so weights never go stale between training and eval.
"""
import torch.nn.functional as F
from torch import Tensor

DILATIONS = (1, 3, 5)


def state_fusion_ref(h: Tensor, k1: Tensor, k3: Tensor, k5: Tensor, alpha: Tensor) -> Tensor:
    """Fuse states with depthwise 3x3 kernels at dilations 1, 3, 5 (replicate padding).

    Args:
        h: States, (batch, D, H, W). k1, k3, k5: Depthwise kernels, each (D, 1, 3, 3).
        alpha: Mixing weights, (3,).

    Returns:
        Fused states, (batch, D, H, W), dtype of ``h`` (computed in float32).
    """
    dim, (height, width) = h.shape[1], h.shape[-2:]
    pad = max(DILATIONS)
    padded = F.pad(h.float(), (pad, pad, pad, pad), mode='replicate')
    out = None
    for weight, kernel, dilation in zip(alpha.float(), (k1, k3, k5), DILATIONS):
        off = pad - dilation
        view = padded[..., off:off + height + 2 * dilation, off:off + width + 2 * dilation]
        term = weight * F.conv2d(view, kernel.float(), dilation=dilation, groups=dim)
        out = term if out is None else out + term
    return out.to(h.dtype)

"""PyTorch reference of the structure-aware state fusion (docs/model.md step 6).

``h~ = alpha_0 * dw3x3_d1(h) + alpha_1 * dw3x3_d3(h) + alpha_2 * dw3x3_d5(h)`` with replicate
padding: for each dilation the map is replicate-padded by the dilation and convolved
channels-last, oneDNN's fast depthwise path on the CPU (an NCHW depthwise convolution or
replication pad there is several times slower; docs/stack.md). Each alpha scales its
(D, 1, 3, 3) kernel rather than the (batch, D, H, W) result. Kernels are read on every call:
nothing derived from the parameters is cached, so weights never go stale between training and
eval.

The convolutions' backward is written out (:class:`_DilatedDepthwise`): oneDNN's backward of a
dilated depthwise convolution on the CPU is 10-40x its forward (docs/stack.md), while the
input gradient is itself a forward convolution (of the zero-padded output gradient with the
flipped kernel) and the kernel gradient of a dilated kernel nine per-channel dot products
(oneDNN's own kernel gradient is kept for dilation 1, where it is fast).
"""
import torch
import torch.nn.functional as F
from torch import Tensor

DILATIONS = (1, 3, 5)


class _DilatedDepthwise(torch.autograd.Function):
    """``F.conv2d(x, weight, dilation=d, groups=C)``, 3x3 kernel, no padding, stride 1.

    ``x``: (batch, C, H + 2d, W + 2d) channels-last; ``weight``: (C, 1, 3, 3); output
    (batch, C, H, W) channels-last.
    """

    @staticmethod
    def forward(x: Tensor, weight: Tensor, dilation: int) -> Tensor:
        return F.conv2d(x, weight, dilation=dilation, groups=x.shape[1])

    @staticmethod
    def setup_context(ctx, inputs, output):    # separate, so torch.func transforms work
        x, weight, ctx.dilation = inputs
        ctx.save_for_backward(x, weight)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        d = ctx.dilation
        # In x's dtype: under autocast the forward ran in a lower precision, the inputs did not.
        grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # Padded explicitly: oneDNN takes a slow path when the padding exceeds the kernel.
            grad_x = F.conv2d(F.pad(grad, (2 * d,) * 4), weight.flip(-1, -2), dilation=d,
                              groups=x.shape[1])
        if ctx.needs_input_grad[1] and d == 1:     # oneDNN's weight gradient is fast undilated
            grad_w = torch.ops.aten.convolution_backward(
                grad, x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], x.shape[1],
                [False, True, False])[1]
        elif ctx.needs_input_grad[1]:
            height, width = grad.shape[-2:]
            g, rows = grad.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)   # channels innermost
            # One product buffer for the nine taps: a fresh map per tap costs page faults
            # that take longer than the product itself (docs/stack.md).
            product = torch.empty_like(g)
            taps = [torch.mul(g, rows[:, i * d:i * d + height, j * d:j * d + width],
                              out=product).sum((0, 1, 2))
                    for i in range(3) for j in range(3)]
            grad_w = torch.stack(taps, 1).view(weight.shape)
        return grad_x, grad_w, None


def _replicate_pad(maps: Tensor, size: int) -> Tensor:
    """``F.pad(maps, (size,) * 4, mode='replicate')`` of a (batch, C, H, W) channels-last map.

    Under ``torch.compile`` (not ONNX export) the edges are sliced, expanded and concatenated
    instead: Inductor in torch 2.13 cannot differentiate ``replication_pad2d`` of a
    channels-last map (the fake kernel of its backward declares contiguous strides and the
    compiled graph fails its stride check), while it differentiates and fuses these views.
    Eager and exported graphs keep the one-pass ``F.pad`` (ONNX ``Pad(mode=edge)``).
    """
    if not torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export():
        return F.pad(maps, (size,) * 4, mode='replicate')
    for dim in (3, 2):                     # width, then height (of the widened map)
        edge = list(maps.shape)
        edge[dim] = size
        first, last = maps.narrow(dim, 0, 1), maps.narrow(dim, maps.shape[dim] - 1, 1)
        maps = torch.cat([first.expand(edge), maps, last.expand(edge)], dim)
    return maps.contiguous(memory_format=torch.channels_last)


def state_fusion_ref(h: Tensor, k1: Tensor, k3: Tensor, k5: Tensor, alpha: Tensor) -> Tensor:
    """Fuse states with depthwise 3x3 kernels at dilations 1, 3, 5 (replicate padding).

    Args:
        h: States, (batch, D, H, W), any memory format.
        k1, k3, k5: Depthwise kernels, each (D, 1, 3, 3). alpha: Mixing weights, (3,).

    Returns:
        Fused states, (batch, D, H, W) in channels-last memory, dtype of ``h`` (computed in
        float32).
    """
    dtype = h.dtype
    maps = h.float().contiguous(memory_format=torch.channels_last)
    out = None
    for weight, kernel, dilation in zip(alpha.float(), (k1, k3, k5), DILATIONS):
        padded = _replicate_pad(maps, dilation)                    # stays channels-last
        term = _DilatedDepthwise.apply(padded, kernel.float() * weight, dilation)
        out = term if out is None else out + term
    return out.to(dtype)

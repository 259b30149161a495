"""Structure-aware dependency maps: which positions the SSM mixer reads for one output position.

Inside a block's mixer (:class:`~mmspatialmamba.models.layers.StructureAwareSSM`), the SASF
core maps the sequence ``u`` (batch, D, L) to ``y`` (docs/model.md steps 5-7). Once the
step sizes ``dt``, ``B`` and ``C`` (computed from the image) are held fixed, the core is
linear in ``u``, channel by channel: ``y[d, q] = sum_p M_d[q, p] u[d, p] + D_d u[d, q]``.
Row ``q`` of ``M_d`` says how strongly position ``p`` of the mixer's input contributes to its
output at the query position ``q`` (``u`` is that input after ``in_proj``, the depthwise 3x3
convolution and SiLU, on the same grid). It is read exactly with autograd: the gradient of
``y[:, q].sum()`` with respect to ``u``, since no operation of the core mixes channels.

Two rows are compared (:func:`dependency_rows`):

* **scan only**: ``y = C * h`` with ``h`` the raster scan's states. Row ``q`` is zero after
  ``q`` in raster order and, before it, ``C_q exp(A sum_{q' in (p, q]} dt_q') B_p dt_p``:
  a 1-D sweep that decays along the raster order;
* **fused**: the full core, ``y = C * fusion(h)``. The fusion (three dilated depthwise 3x3
  kernels, dilations 1, 3, 5, replicate padding) mixes the states at 27 taps around ``q``,
  so row ``q`` is the kernels' weighted sum of the scan-only state rows at those taps.

The skip term ``D * u`` is left out of both: it links ``q`` only to itself, identically.
The tensors come from a real forward pass: :func:`capture_sasf_call` records the core's
arguments in one mixer, through the mixer's ``sasf_core_override`` hook.
"""
import contextlib
import inspect
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..errors import BadInputError
from ..models.layers.sasf import StructureAwareSSM, sasf_core_override
from ..ops import selective_scan, state_fusion, structure_aware_ssm


class SASFCall(NamedTuple):
    """The arguments of one call of :func:`~mmspatialmamba.ops.structure_aware_ssm`.

    Shapes: ``u``, ``delta`` (batch, D, L); ``A`` (D, 1); ``B``, ``C`` (batch, 1, L);
    ``D`` (D,); ``delta_bias`` (D,) or None; ``k1``, ``k3``, ``k5`` (D, 1, 3, 3);
    ``alpha`` (3,); ``hw`` (H, W) with L = H * W, row-major.
    """
    u: Tensor
    delta: Tensor
    A: Tensor
    B: Tensor
    C: Tensor
    D: Tensor
    delta_bias: Optional[Tensor]
    k1: Tensor
    k3: Tensor
    k5: Tensor
    alpha: Tensor
    hw: Sequence[int]
    delta_softplus: bool
    backend: Optional[str]


_SIGNATURE = inspect.signature(structure_aware_ssm)


def _as_call(*args, **kwargs) -> SASFCall:
    bound = _SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    return SASFCall(**{name: value.detach() if isinstance(value, Tensor) else value
                       for name, value in bound.arguments.items()})


@contextlib.contextmanager
def capture_sasf_call(mixer: nn.Module) -> Iterator[List[SASFCall]]:
    """Record the SASF core's arguments each time ``mixer`` runs inside the block.

    Every mixer still computes its real output; only ``mixer``'s calls are recorded, as
    detached tensors.

    Args:
        mixer: A :class:`~mmspatialmamba.models.layers.StructureAwareSSM`.

    Yields:
        The list that receives one :class:`SASFCall` per forward pass of ``mixer``.

    Raises:
        TypeError: If ``mixer`` is not a StructureAwareSSM.

    Example:
        >>> with capture_sasf_call(backbone.layers[1].blocks[0].self_attention) as calls:
        ...     backbone(images)
        >>> scan_only, fused = dependency_rows(calls[0], query=40)
    """
    if not isinstance(mixer, StructureAwareSSM):
        raise TypeError(f'mixer must be a StructureAwareSSM (a block\'s self_attention), got '
                        f'{type(mixer).__name__}')
    calls: List[SASFCall] = []
    inside = [False]

    def core(*args, **kwargs) -> Tensor:
        if inside[0]:
            calls.append(_as_call(*args, **kwargs))
        return structure_aware_ssm(*args, **kwargs)

    def enter(module: nn.Module, inputs: tuple) -> None:
        inside[0] = True

    def leave(module: nn.Module, inputs: tuple, output: Tensor) -> None:
        inside[0] = False

    handles = [mixer.register_forward_pre_hook(enter), mixer.register_forward_hook(leave)]
    try:
        with sasf_core_override(core):
            yield calls
    finally:
        for handle in handles:
            handle.remove()


def dependency_rows(call: SASFCall, query: int, sample: int = 0) -> Tuple[Tensor, Tensor]:
    """Row ``query`` of the core's linear map in ``u``, per channel: scan only and fused.

    ``dt``, ``B`` and ``C`` stay as recorded; the skip term is left out (module docstring).

    Args:
        call: A recorded call (:func:`capture_sasf_call`).
        query: Output position, ``y * W + x`` in the (H, W) grid of ``call.hw``.
        sample: Which image of the recorded batch.

    Returns:
        ``(scan_only, fused)``, each (D, H, W) float32: entry ``[d, i, j]`` is
        ``d y[d, query] / d u[d, i * W + j]``.

    Raises:
        ValueError: If ``query`` or ``sample`` is out of range.
    """
    height, width = (int(s) for s in call.hw)
    batch, dim, length = call.u.shape
    if not 0 <= query < length:
        raise ValueError(f'query must be a position in [0, {length}) of the {height}x{width} '
                         f'map, got {query}')
    if not 0 <= sample < batch:
        raise ValueError(f'sample must be in [0, {batch}), got {sample}')
    pick = slice(sample, sample + 1)
    u = call.u[pick].to(torch.float32, copy=True).requires_grad_(True)
    delta, B, C = (t[pick].float() for t in (call.delta, call.B, call.C))
    with torch.enable_grad():
        states = selective_scan(u, delta, call.A, B, call.delta_bias, call.delta_softplus,
                                backend=call.backend)[:, :, 0]           # (1, D, L)
        maps = state_fusion(states.reshape(1, dim, height, width), call.k1, call.k3, call.k5,
                            call.alpha, backend=call.backend)            # (1, D, H, W)
        scan_only, fused = states * C, maps.reshape(1, dim, length) * C
        # Both rows go back through the one scan: keep its graph for the second.
        scan_row = torch.autograd.grad(scan_only[0, :, query].sum(), u, retain_graph=True)[0]
        fused_row = torch.autograd.grad(fused[0, :, query].sum(), u)[0]
    return scan_row[0].view(dim, height, width), fused_row[0].view(dim, height, width)


def channel_magnitude(row: Tensor) -> Tensor:
    """A per-channel row (D, H, W) as one map, ``sum_d |row[d]|``: (H, W)."""
    return row.abs().sum(0)


def block_mixer(backbone: nn.Module, stage: int, block: int) -> StructureAwareSSM:
    """The mixer (``layers[stage].blocks[block].self_attention``) of a Spatial-Mamba backbone.

    Args:
        backbone: A ``SpatialMamba`` (or any model with its ``layers``).
        stage: Stage index, from 0 (as in ``out_indices``).
        block: Block index in the stage; negative counts from the stage's last block.

    Raises:
        BadInputError: If ``backbone`` has no Spatial-Mamba stages, or ``stage`` or ``block``
            is out of range.
    """
    layers = getattr(backbone, 'layers', None)
    if layers is None or not all(hasattr(layer, 'blocks') for layer in layers):
        raise BadInputError('dependency maps need a Spatial-Mamba backbone (with '
                            f'layers[i].blocks), got {type(backbone).__name__}')
    if not 0 <= stage < len(layers):
        raise BadInputError(f'stage must be in [0, {len(layers)}), got {stage}')
    blocks = layers[stage].blocks
    if not -len(blocks) <= block < len(blocks):
        raise BadInputError(f'stage {stage} has {len(blocks)} blocks: block must be in '
                            f'[{-len(blocks)}, {len(blocks)}), got {block}')
    return blocks[block].self_attention


def query_position(pixel: Tuple[int, int], image_shape: Tuple[int, int],
                   resized_shape: Tuple[int, int], stride: int,
                   hw: Sequence[int]) -> Tuple[int, int]:
    """The grid cell (row, column) of a stage map that holds an image pixel.

    Args:
        pixel: (y, x) in the image as given (before the test pipeline's resize).
        image_shape: (H, W) of that image. resized_shape: (H, W) after the resize.
        stride: Image pixels per grid cell at the stage (4 * 2^stage).
        hw: (H, W) of the stage map (of the padded batch).

    Raises:
        BadInputError: If the pixel lies outside the image.
    """
    y, x = pixel
    if not (0 <= y < image_shape[0] and 0 <= x < image_shape[1]):
        raise BadInputError(f'pixel (y, x) = {tuple(pixel)} is outside the {image_shape[0]}x'
                            f'{image_shape[1]} image; pass Y in [0, {image_shape[0]}) and X in '
                            f'[0, {image_shape[1]})')
    row = int(y * resized_shape[0] / image_shape[0]) // stride
    col = int(x * resized_shape[1] / image_shape[1]) // stride
    return min(row, int(hw[0]) - 1), min(col, int(hw[1]) - 1)


def map_to_image(grid_map: Tensor, stride: int, resized_shape: Tuple[int, int],
                 image_shape: Tuple[int, int]) -> Tensor:
    """A stage map (h, w) as an image-sized map (H, W): each cell covers ``stride`` x
    ``stride`` resized pixels, padding cells are cropped, then nearest resize to the image."""
    full = grid_map.repeat_interleave(stride, 0).repeat_interleave(stride, 1)
    full = full[:resized_shape[0], :resized_shape[1]]
    return torch.nn.functional.interpolate(full[None, None].float(), size=tuple(image_shape),
                                           mode='nearest')[0, 0]

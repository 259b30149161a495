"""ONNX export with standard operators only, checked against PyTorch with ONNX Runtime.

The scan and the state fusion have a pure-PyTorch path (``backend='torch'``), so a model
exports through ``torch.onnx.export`` (the ``torch.export``-based exporter) into operators of
the default ONNX domain only: the chunked scan becomes ``Mul``/``Add``/``Concat`` chains, the
replicate-padded dilated depthwise convolutions ``Pad(mode=edge)`` + ``Conv``. No custom
domain, so ONNX Runtime, TensorRT and OpenVINO load the file as it is.

What can be exported (see ``tools/export_onnx.py``):
    * the backbone alone: images (batch, 3, H, W) -> one feature map per ``out_indices`` stage;
    * an mmseg segmentor (UperNet): images -> class logits (batch, classes, H, W);
    * an mmdet detector: the backbone and the neck (images -> FPN levels). The box and mask
      heads need mmdeploy's rewriters (NMS, RoIAlign as ONNX graphs); mmdeploy 1.3.1 does not
      run on torch 2.13 (see ``docs/deploy.md``).
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..analysis.timing import measure

#: Operator domains of the ONNX standard: the default domain and its explicit name.
STANDARD_DOMAINS = ('', 'ai.onnx')


class SegmentorLogits(nn.Module):
    """An mmseg ``EncoderDecoder`` as images -> logits resized to the input size.

    ``EncoderDecoder.encode_decode`` runs the backbone, the neck and the decode head and
    resizes the logits (1/4 resolution for UperNet) bilinearly to ``img_shape``.

    Args:
        segmentor: An mmseg segmentor in eval mode.
        hw: (H, W) of the images the export is traced with.
    """

    def __init__(self, segmentor: nn.Module, hw: Tuple[int, int]) -> None:
        super().__init__()
        self.segmentor = segmentor
        self.metas = [dict(img_shape=tuple(hw), ori_shape=tuple(hw), pad_shape=tuple(hw))]

    def forward(self, images: Tensor) -> Tensor:
        """images: (batch, 3, H, W) -> logits (batch, classes, H, W)."""
        return self.segmentor.encode_decode(images, self.metas * images.shape[0])


class BackboneNeck(nn.Module):
    """A detector's backbone followed by its neck: images -> the neck's feature levels."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> Tuple[Tensor, ...]:
        """images: (batch, 3, H, W) -> tuple of (batch, C, H / s, W / s), one per level."""
        return tuple(self.detector.extract_feat(images))


@dataclass
class CheckReport:
    """ONNX Runtime against PyTorch on one input.

    Attributes:
        max_rel_error: Largest, over the outputs, of ``max|ort - torch| / max|torch|``.
        max_abs_error: Largest absolute difference over all outputs.
        torch_ms, ort_ms: Median wall time of one forward (CPU), PyTorch and ONNX Runtime.
        output_shapes: Shapes of the outputs.
        nonstandard_ops: ``domain::op`` of every node outside the standard domains (empty
            when the file uses standard operators only).
    """

    max_rel_error: float
    max_abs_error: float
    torch_ms: float
    ort_ms: float
    output_shapes: List[Tuple[int, ...]] = field(default_factory=list)
    nonstandard_ops: List[str] = field(default_factory=list)


def export(module: nn.Module, images: Tensor, path: str, opset: int = 18) -> List[str]:
    """Export ``module(images)`` to ``path`` as one self-contained ONNX file.

    Args:
        module: In eval mode, running on the PyTorch ops backend.
        images: Example input (batch, 3, H, W); the file is traced at this shape.
        path: Output ``.onnx`` file.
        opset: ONNX opset version.

    Returns:
        The output names (``out0``, ``out1``, ...).
    """
    with torch.no_grad():
        outputs = module(images)
    names = [f'out{i}' for i in range(len(_as_list(outputs)))]
    program = torch.onnx.export(module, (images,), dynamo=True, opset_version=opset,
                                input_names=['images'], output_names=names,
                                external_data=False, optimize=True, verbose=False)
    program.save(path, external_data=False)
    return names


def nonstandard_ops(path: str) -> List[str]:
    """``domain::op_type`` of the nodes of ``path`` outside the standard ONNX domains,
    including inside local functions (sorted, unique)."""
    import onnx
    model = onnx.load(path)
    nodes = list(model.graph.node)
    for function in model.functions:
        nodes.extend(function.node)
    return sorted({f'{n.domain}::{n.op_type}' for n in nodes if n.domain not in STANDARD_DOMAINS}
                  - {f'{f.domain}::{f.name}' for f in model.functions
                     if f.domain in STANDARD_DOMAINS})


def check(path: str, module: nn.Module, images: Tensor, repeats: int = 3) -> CheckReport:
    """Run the file with ONNX Runtime (CPU) and ``module`` on the same ``images``.

    Args:
        path: The exported file. module: The PyTorch module it was exported from.
        images: Input (batch, 3, H, W), float32. repeats: Timed runs of each (median).
    """
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    feed = {session.get_inputs()[0].name: images.numpy()}
    with torch.no_grad():
        expected = _as_list(module(images))
        torch_ms = measure(lambda: module(images), 'cpu', warmup=0, iters=repeats).median_s * 1e3
    got = session.run(None, feed)
    ort_ms = measure(lambda: session.run(None, feed), 'cpu', warmup=0,
                     iters=repeats).median_s * 1e3
    if len(got) != len(expected):
        raise RuntimeError(f'{path}: ONNX Runtime returned {len(got)} outputs, PyTorch '
                           f'{len(expected)}')
    rel, absolute = 0.0, 0.0
    for ort_out, ref in zip(got, expected):
        diff = (torch.from_numpy(ort_out) - ref).abs().max().item()
        rel = max(rel, diff / max(ref.abs().max().item(), 1e-30))
        absolute = max(absolute, diff)
    return CheckReport(max_rel_error=rel, max_abs_error=absolute, torch_ms=torch_ms,
                       ort_ms=ort_ms, output_shapes=[tuple(t.shape) for t in expected],
                       nonstandard_ops=nonstandard_ops(path))


def _as_list(outputs) -> List[Tensor]:
    return list(outputs) if isinstance(outputs, Sequence) else [outputs]

"""The GPU check's correctness part: the Triton kernels against the PyTorch path on the GPU,
at the models' shapes, forward and backward, fp32, bf16 and fp16, per op and for the whole
backbone, with the step sizes training starts from; everything finite.

The cases are ``benchmarks/gpu_check.py``'s plan (``op_cases``, ``backbone_cases``,
``small_cases``): the model's op at every stage of T and B the tasks run (detection 800x1344
at batch 2 and, chunked, 1; segmentation; classification), the scan and the fusion alone, the
T backbone at 224 batch 8 and 800x1344 batch 2; there the reference is the PyTorch path, cheap
at any size. The float64 oracle (``tests/spec_oracle.py``, a loop over positions) checks the
small calls at GPU launch sizes (chunked scans, N = 3, odd channel counts). Tolerances:
``op_utils.TOL`` per op; for the backbone, whose 18 blocks compound each op's rounding,
:data:`BACKBONE_TOL`.

``cuda`` tests (skipped without a GPU); in the GPU check's dry run (``MMSM_GPU_CHECK=dry``) the
dry plan runs on the CPU with the kernels interpreted, so CI keeps these tests working.
"""
import pytest
import torch
from gpu_plan import case_id, load_gpu_check
from op_utils import TOL, assert_close, relative_error
from spec_oracle import fusion_oracle, sasf_oracle, scan_oracle

from mmspatialmamba.ops.compile_check.cases import CALLS, DTYPES, random_leaf

gpu_check = load_gpu_check()
DRY = gpu_check.is_dry()
DEVICE = torch.device('cpu' if DRY else 'cuda')
pytestmark = [pytest.mark.gpu_check] + ([] if DRY else [pytest.mark.cuda])
OP_CASES = gpu_check.op_cases(DRY)
BACKBONES = gpu_check.backbone_cases(DRY)
ORACLES = {'sasf': sasf_oracle, 'scan': scan_oracle, 'fusion': fusion_oracle}
AMP = {None: torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}
# (outputs, parameter gradients), relative L2 error: gross-error bounds for 18 blocks.
BACKBONE_TOL = {torch.float32: (1e-4, 1e-3), torch.float16: (1e-2, 3e-2),
                torch.bfloat16: (5e-2, 1e-1)}


def assert_finite(name: str, *tensors: torch.Tensor) -> None:
    for i, t in enumerate(tensors):
        assert torch.isfinite(t).all(), f'{name}[{i}] holds {(~torch.isfinite(t)).sum()} ' \
                                        f'non-finite values'


# The backbone first: the longest tests, handed out first when workers share them (xdist).
def _backbone_run(model, images, amp, upstream):
    """Outputs and every parameter's gradient of ``sum(out * upstream)`` under autocast."""
    with torch.autocast(DEVICE.type, dtype=AMP[amp], enabled=amp is not None):
        outs = model(images)
    if upstream is None:
        upstream = [torch.randn(o.shape, device=DEVICE) for o in outs]
    loss = sum((o.float() * g).sum() for o, g in zip(outs, upstream))
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return [o.detach().float() for o in outs], grads, upstream


@pytest.mark.parametrize('case', BACKBONES, ids=str)
def test_backbone_triton_matches_torch(case, seed, record_property):
    """The backbone as the model initialises it, in training mode (no stochastic depth), on
    both backends from the same weights and images: outputs of every stage and every
    parameter's gradient. A parameter's error is relative to its gradient's norm, or to a
    thousandth of all gradients' norm where its own is smaller (a convolution bias before a
    normalisation has a gradient of zero up to rounding)."""
    from mmspatialmamba.models import SpatialMamba
    torch.manual_seed(seed)
    models = {backend: SpatialMamba(arch=case.arch, out_indices=case.out_indices,
                                    drop_path_rate=0.0, backend=backend)
              for backend in ('triton', 'torch')}
    models['triton'].init_weights()
    models['torch'].load_state_dict(models['triton'].state_dict())
    images = torch.randn(case.batch, 3, *case.hw, device=DEVICE)
    ref, ref_grads, upstream = _backbone_run(models.pop('torch').to(DEVICE).train(), images,
                                             case.amp, None)
    model = models.pop('triton').to(DEVICE).train()
    out, grads, _ = _backbone_run(model, images, case.amp, upstream)
    assert_finite('torch outputs', *ref)
    assert_finite('torch gradients', *ref_grads)
    assert_finite('triton outputs', *out)
    assert_finite('triton gradients', *grads)
    tol_out, tol_grad = BACKBONE_TOL[AMP[case.amp]]
    out_errs = [relative_error(o, r) for o, r in zip(out, ref)]
    floor = 1e-3 * torch.cat([r.flatten() for r in ref_grads]).double().norm()
    grad_errs = {name: ((g.double() - r.double()).norm() / torch.maximum(r.double().norm(),
                                                                          floor)).item()
                 for (name, _), g, r in zip(model.named_parameters(), grads, ref_grads)}
    worst = max(grad_errs, key=grad_errs.get)
    record_property('error_ratio', max(max(out_errs) / tol_out, grad_errs[worst] / tol_grad))
    record_property('worst', f'outputs {max(out_errs):.3g} (tolerance {tol_out:g}), '
                             f'd{worst} {grad_errs[worst]:.3g} (tolerance {tol_grad:g})')
    assert max(out_errs) < tol_out, f'stage outputs: relative errors {out_errs} (seed {seed})'
    assert grad_errs[worst] < tol_grad, (f'gradient of {worst}: relative error '
                                         f'{grad_errs[worst]:.3g} >= {tol_grad} (seed {seed})')


@pytest.mark.parametrize('case', OP_CASES, ids=case_id)
def test_op_triton_matches_torch(case, seed, record_property):
    dtype = DTYPES[case.dtype]
    call = CALLS[case.op](case.shape, dtype, random_leaf(DEVICE))
    leaves = list(call.leaves.values())
    ref = call('torch')
    upstream = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, leaves, upstream)
    out = call('triton')
    grads = torch.autograd.grad(out, leaves, upstream)
    assert_finite('torch', ref, *ref_grads)
    assert_finite('triton', out, *grads)
    tol_value, tol_grad = TOL[dtype]
    errors = {'output': (relative_error(out, ref), tol_value)}
    errors.update({f'd{name}': (relative_error(g, r), tol_grad)
                   for name, g, r in zip(call.leaves, grads, ref_grads)})
    worst = max(errors, key=lambda k: errors[k][0] / errors[k][1])
    record_property('error_ratio', errors[worst][0] / errors[worst][1])
    record_property('worst', f'{worst} {errors[worst][0]:.3g} (tolerance {errors[worst][1]:g})')
    assert_close('output', out, ref, tol_value, seed, err=errors['output'][0])
    for name, g, r in zip(call.leaves, grads, ref_grads):
        assert_close(f'd{name}', g, r, tol_grad, seed, err=errors[f'd{name}'][0])


@pytest.mark.parametrize('case', gpu_check.small_cases(DRY), ids=case_id)
def test_op_matches_float64_oracle(case, seed, record_property):
    """The Triton kernels against the oracle on the same rounded inputs in float64."""
    dtype = DTYPES[case.dtype]
    call = CALLS[case.op](case.shape, dtype, random_leaf(DEVICE))
    exact = CALLS[case.op](case.shape, dtype, lambda name, size, _: call.leaves[name].detach()
                           .double().requires_grad_(True))
    ref = ORACLES[case.op](*exact.args)
    upstream = torch.randn(ref.shape, device=DEVICE).to(dtype)     # rounded, as both see it
    ref_grads = torch.autograd.grad(ref, list(exact.leaves.values()), upstream.double())
    out = call('triton')
    grads = torch.autograd.grad(out, list(call.leaves.values()), upstream)
    assert_finite('triton', out, *grads)
    tol_value, tol_grad = TOL[dtype]
    errs = [relative_error(out, ref)] + [relative_error(g, r) for g, r in zip(grads, ref_grads)]
    ratios = [errs[0] / tol_value] + [e / tol_grad for e in errs[1:]]
    record_property('error_ratio', max(ratios))
    record_property('worst', (['output'] + [f'd{n}' for n in call.leaves])[
        ratios.index(max(ratios))])
    assert_close('output', out, ref, tol_value, seed, err=errs[0])
    for name, g, r, err in zip(call.leaves, grads, ref_grads, errs[1:]):
        assert_close(f'd{name}', g, r, tol_grad, seed, err=err)

"""SpatialMamba backbone: fidelity to docs/model.md, shapes, registries, freezing,
checkpointing, errors."""
from collections import Counter

import pytest
import torch
from model_utils import randomize_
from spec_oracle import backbone_oracle

from mmspatialmamba.errors import BadArgumentError, BadInputError
from mmspatialmamba.models import ARCH_SETTINGS, SpatialMamba
from mmspatialmamba.models.layers import SpatialMambaBlock

TINY = dict(dims=16, depths=(1, 2, 1, 1))


@pytest.mark.parametrize('size', [(64, 64), (37, 53), (33, 1), (61, 90)], ids=str)
def test_matches_spec_oracle(size, seed):
    """The backbone equals a float64 forward written from docs/model.md alone, at odd sizes too."""
    model = randomize_(SpatialMamba(arch=TINY)).eval()
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        outs = model(images)
    refs = backbone_oracle(model.state_dict(), images, TINY['depths'])
    for i, (out, ref) in enumerate(zip(outs, refs)):
        assert out.shape == ref.shape, f'stage {i}'
        err = ((out.double() - ref).norm() / ref.norm()).item()
        assert err < 1e-5, f'stage {i}: rel L2 {err:.3g}, seed {seed}'


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_variant_shapes(arch):
    model = SpatialMamba(arch=arch).eval()
    dims = ARCH_SETTINGS[arch]['dims']
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 65, 47))
    assert [tuple(o.shape) for o in outs] == [
        (1, dims, 17, 12), (1, 2 * dims, 9, 6), (1, 4 * dims, 5, 3), (1, 8 * dims, 3, 2)]
    assert model.out_channels == [dims, 2 * dims, 4 * dims, 8 * dims]


def test_tiny_parameter_count_and_keys():
    """T as a detection backbone: 26,236,758 parameters and 557 state-dict entries
    (docs/model.md)."""
    model = SpatialMamba(arch='tiny')
    assert sum(p.numel() for p in model.parameters()) == 26_236_758
    state = model.state_dict()
    assert len(state) == 557
    expected = {
        'layers.0.blocks.0.self_attention.x_proj_weight': (6, 128),
        'layers.0.blocks.0.self_attention.dt_projs_weight': (128, 4),
        'layers.0.blocks.0.self_attention.A_logs': (128, 1),
        'layers.0.blocks.0.self_attention.state_fusion.kernel_3_2': (128, 1, 3, 3),
        'layers.0.blocks.0.self_attention.state_fusion.alpha': (3,),
        'layers.0.downsample.conv.0.conv.weight': (512, 64, 1, 1),
        'layers.0.downsample.conv.2.norm.running_var': (128,),
        'patch_embed.conv3.0.conv.weight': (256, 32, 3, 3),
        'patch_embed.conv2.1.norm.weight': (32,),
        'outnorm3.weight': (512,),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key


def test_out_indices_select_stages_and_norms():
    model = SpatialMamba(arch=TINY, out_indices=(1, 3)).eval()
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == [32, 128] == model.out_channels
    assert not hasattr(model, 'outnorm0') and hasattr(model, 'outnorm3')


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_builds_from_toolkit_registries(scope):
    registry = pytest.importorskip(f'{scope}.registry').MODELS
    model = registry.build(dict(type='SpatialMamba', arch=TINY))
    assert isinstance(model, SpatialMamba)


def test_frozen_stages_freeze_parameters_and_bn():
    model = SpatialMamba(arch=TINY, frozen_stages=2)
    model.train()
    frozen = [model.patch_embed, model.layers[0], model.layers[1], model.outnorm0, model.outnorm1]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.layers[2].parameters())
    assert model.layers[2].training
    # Frozen BN statistics do not move in a training forward pass.
    before = model.patch_embed.conv1.norm.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(before, model.patch_embed.conv1.norm.running_mean)


def test_norm_eval_keeps_bn_statistics():
    model = SpatialMamba(arch=TINY, norm_eval=True).train()
    bn = model.layers[1].downsample.conv[2].norm
    before = bn.running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert not bn.training and torch.equal(before, bn.running_mean)
    assert model.layers[0].blocks[0].training  # only BN is put in eval mode


def _count_block_calls(model: SpatialMamba) -> Counter:
    """Count every call of every block (a checkpointed block is called again in backward)."""
    calls = Counter()
    for name, module in model.named_modules():
        if isinstance(module, SpatialMambaBlock):
            module.register_forward_pre_hook(lambda *_, name=name: calls.update([name]))
    return calls


def _forward_backward(model: SpatialMamba, images: torch.Tensor) -> list:
    outs = model(images)
    sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in outs).backward()
    return outs


def test_with_cp_gives_identical_outputs_and_gradients(seed):
    """Same outputs and gradients, and each checkpointed block really is recomputed once in
    backward (which fails if with_cp is ignored)."""
    plain = randomize_(SpatialMamba(arch=TINY, drop_path_rate=0.0)).train()
    ckpt = SpatialMamba(arch=TINY, drop_path_rate=0.0, with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    images = torch.randn(2, 3, 40, 36, requires_grad=True)
    grads = []
    for model, calls_per_block in ((plain, 1), (ckpt, 2)):
        calls = _count_block_calls(model)
        images.grad = None
        outs = _forward_backward(model, images)
        assert len(calls) == sum(TINY['depths'])
        assert set(calls.values()) == {calls_per_block}, calls
        grads.append(([o.detach() for o in outs], images.grad.clone(),
                      [p.grad.clone() for p in model.parameters()]))
    (outs_a, gin_a, gp_a), (outs_b, gin_b, gp_b) = grads
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(gin_a, gin_b, rtol=1e-6, atol=1e-7)
    for a, b in zip(gp_a, gp_b):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


def test_with_cp_is_off_in_eval():
    """In eval mode with_cp does not checkpoint: each block runs once, even with backward."""
    model = SpatialMamba(arch=TINY, drop_path_rate=0.0, with_cp=True).eval()
    calls = _count_block_calls(model)
    _forward_backward(model, torch.randn(1, 3, 32, 32, requires_grad=True))
    assert len(calls) == sum(TINY['depths']) and set(calls.values()) == {1}, calls


def test_eval_sees_updated_fusion_weights():
    """No merged kernel is cached: changing a fusion parameter changes the eval output."""
    model = randomize_(SpatialMamba(arch=TINY)).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        first = model(images)[0].clone()
        model.layers[0].blocks[0].self_attention.state_fusion.kernel_3_2.mul_(2)
        second = model(images)[0]
    assert not torch.allclose(first, second)


def test_drop_path_rate_defaults_to_published_values():
    for arch, rate in (('tiny', 0.2), ('base', 0.5)):
        model = SpatialMamba(arch=arch)
        assert model.layers[-1].blocks[-1].drop_path.drop_prob == pytest.approx(rate)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='huge'), BadInputError, r"unknown arch 'huge'; choose one of \['base', 'small'"),
    (dict(arch=dict(dims=16)), BadInputError, r'dict with keys dims and depths'),
    (dict(arch=dict(dims=16, depths=(1, 1), width=3)), BadInputError, r"unknown arch keys"),
    (dict(arch=dict(dims=[16, 24], depths=(1, 1))), BadInputError, r'double the channels'),
    (dict(out_indices=(4,)), BadInputError,
     r'out_indices must be distinct stage indices in \[0, 4\)'),
    (dict(out_indices=()), BadInputError, r'out_indices'),
    (dict(frozen_stages=5), BadInputError, r'frozen_stages must be in \[-1, 4\]'),
    (dict(drop_path_rate=1.0), BadInputError, r'drop_path_rate must be in \[0, 1\)'),
    (dict(window_size=7), BadArgumentError, r'window_size'),
])
def test_bad_arguments_raise(kwargs, error, match):
    kwargs.setdefault('arch', TINY)
    with pytest.raises(error, match=match):
        SpatialMamba(**kwargs)


@pytest.mark.parametrize('shape', [(3, 32, 32), (1, 4, 32, 32), (1, 1, 3, 32, 32)], ids=str)
def test_bad_input_raises(shape):
    with pytest.raises(ValueError, match=r'expects images of shape \(batch, 3, H, W\)'):
        SpatialMamba(arch=TINY)(torch.randn(*shape))


def test_mixer_rejects_d_state_other_than_one():
    from mmspatialmamba.models.layers import StructureAwareSSM
    with pytest.raises(BadInputError, match='d_state must be 1'):
        StructureAwareSSM(16, d_state=4)


def test_triton_backend_matches_torch_backend(seed):
    """The whole backbone on the Triton kernels (interpreted on CPU) equals the reference path,
    outputs and gradients."""
    arch = dict(dims=8, depths=(1, 1, 1, 1))
    models = [randomize_(SpatialMamba(arch=arch, drop_path_rate=0.0, backend=b))
              for b in ('torch', 'triton')]
    models[1].load_state_dict(models[0].state_dict())
    images = torch.randn(1, 3, 27, 38)
    results = []
    for model in models:
        model.eval()
        outs = model(images)
        sum(o.square().sum() for o in outs).backward()
        results.append((outs, [p.grad for p in model.parameters()]))
    (outs_t, grads_t), (outs_k, grads_k) = results
    for a, b in zip(outs_t, outs_k):
        err = ((a - b).norm() / a.norm()).item()
        assert err < 1e-5, f'output rel L2 {err:.3g}, seed {seed}'
    # Typically ~1e-6 apart. A random instance can make a gradient ill-conditioned: seed
    # 1996664613 put the two paths' last-stage A_logs gradients 8e-5 and 4e-5 from the same
    # model in float64, 1.2e-4 apart; a wrong gradient is off by far more than 3e-4.
    for (name, _), a, b in zip(models[0].named_parameters(), grads_t, grads_k):
        err = ((a - b).norm() / a.norm().clamp_min(1e-12)).item()
        assert err < 3e-4, f'grad of {name}: rel L2 {err:.3g}, seed {seed}'


# Conventions of mmdet's and mmseg's backbones (mmseg's `pretrained`, init_cfg forms,
# out_indices, SyncBN, frozen stages with norm_eval, mixed precision).

def _save_state(model, path, wrap=lambda state: state):
    torch.save(wrap(model.state_dict()), path)
    return str(path)


def test_pretrained_is_a_deprecated_alias_of_init_cfg(tmp_path):
    """mmseg's segmentors hand ``model.pretrained`` to the backbone, as to mmseg's own."""
    source = randomize_(SpatialMamba(arch=TINY))
    path = _save_state(source, tmp_path / 'ckpt.pth')
    with pytest.warns(UserWarning, match=r"pretrained is deprecated.*init_cfg=dict\(type="):
        model = SpatialMamba(arch=TINY, pretrained=path)
    assert model.init_cfg == dict(type='Pretrained', checkpoint=path)
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pretrained_through_an_mmseg_segmentor(tmp_path):
    from mmengine.config import ConfigDict
    registry = pytest.importorskip('mmseg.registry').MODELS
    path = _save_state(randomize_(SpatialMamba(arch=TINY)), tmp_path / 'ckpt.pth')
    with pytest.warns(UserWarning, match='pretrained is deprecated'):
        segmentor = registry.build(ConfigDict(
            type='EncoderDecoder', pretrained=path,
            backbone=dict(type='SpatialMamba', arch=TINY, out_indices=(3,)),
            decode_head=dict(type='FCNHead', in_channels=128, channels=8, num_classes=2)))
    assert segmentor.backbone.init_cfg == dict(type='Pretrained', checkpoint=path)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(pretrained='a.pth', init_cfg=dict(type='Pretrained', checkpoint='b.pth')), BadInputError,
     r'init_cfg and pretrained cannot be set at the same time.*set model.pretrained=None'),
    (dict(pretrained=dict(checkpoint='a.pth')), BadArgumentError, r'pretrained must be a str'),
    (dict(init_cfg='a.pth'), BadArgumentError,
     r'init_cfg must be None, a dict with a type, or a list'),
    (dict(init_cfg=[dict(type='Pretrained', checkpoint='a'), dict(type='Pretrained',
                                                                  checkpoint='b')]),
     BadInputError, r'init_cfg has 2 Pretrained entries'),
    (dict(init_cfg=dict(type='Pretrained')), BadInputError, r'checkpoint \(required\)'),
    (dict(init_cfg=dict(type='Pretrained', checkpoint='a', strict=True)), BadInputError,
     r'takes checkpoint \(required\), prefix and map_location'),
    (dict(depth=50, style='pytorch'), BadArgumentError,
     r"unexpected arguments \['depth', 'style'\].*backbone=dict\(_delete_=True"),
    (dict(out_indices=(-1, 3)), BadInputError, r'out_indices must be distinct'),
    (dict(out_indices=(-5,)), BadInputError, r'out_indices must be distinct'),
])
def test_bad_conventions_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpatialMamba(arch=TINY, **kwargs)


def test_other_architecture_through_pretrained_names_the_fix(tmp_path):
    """A ResNet checkpoint inherited from an mmseg base config builds, then fails to load
    with the config change to make."""
    resnet = {'conv1.weight': torch.randn(64, 3, 7, 7), 'bn1.weight': torch.ones(64),
              'layer1.0.conv1.weight': torch.randn(64, 64, 1, 1), 'fc.weight': torch.randn(2, 8)}
    path = str(tmp_path / 'resnet50.pth')
    torch.save(resnet, path)
    with pytest.warns(UserWarning):
        model = SpatialMamba(arch=TINY, pretrained=path)
    with pytest.raises(BadInputError, match=r'resnet50.pth.*does not load: .*no Spatial-Mamba '
                                            r'backbone weights.*Set model.pretrained=None and '
                                            r'give the Spatial-Mamba checkpoint in '
                                            r'model.backbone.init_cfg'):
        model.init_weights()


@pytest.mark.parametrize('source', ['pretrained', 'init_cfg'])
@pytest.mark.parametrize('name', ['open-mmlab://resnet50_v1c', 'torchvision://resnet50',
                                  'mmcls://resnet50'])
def test_model_zoo_names_are_refused_before_any_download(name, source, monkeypatch):
    from mmengine.runner.checkpoint import CheckpointLoader

    def no_load(*args, **kwargs):
        raise AssertionError(f'tried to load {args}')

    monkeypatch.setattr(CheckpointLoader, 'load_checkpoint', no_load)
    if source == 'pretrained':
        with pytest.warns(UserWarning):
            model = SpatialMamba(arch=TINY, pretrained=name)
        match = r'model-zoo checkpoint of another architecture.*Set model.pretrained=None'
    else:
        model = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=name))
        match = r'model-zoo checkpoint of another architecture.*give a Spatial-Mamba checkpoint'
    with pytest.raises(BadInputError, match=match):
        model.init_weights()


def test_init_cfg_list_with_prefix_loads_last(tmp_path):
    """mmengine's forms: a list of initialisers, with Pretrained (``prefix=`` selecting a
    sub-module of a larger checkpoint) applied last so the checkpoint wins."""
    source = randomize_(SpatialMamba(arch=TINY))
    path = _save_state(source, tmp_path / 'teacher.pth', lambda state: {'state_dict': {
        **{f'teacher.backbone.{k}': v for k, v in state.items()},
        'teacher.neck.conv.weight': torch.zeros(1)}})
    model = SpatialMamba(arch=TINY, init_cfg=[
        dict(type='Constant', layer='Conv2d', val=0.5),
        dict(type='Pretrained', checkpoint=path, prefix='teacher.backbone')])
    model.init_weights()
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key

    constant = SpatialMamba(arch=TINY, init_cfg=[dict(type='Constant', layer='Conv2d', val=0.5)])
    constant.init_weights()
    assert (constant.patch_embed.conv1.conv.weight == 0.5).all()

    missing = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=path,
                                                    prefix='student.'))
    with pytest.raises(BadInputError, match=r"no key of .*teacher.pth.* starts with the init_cfg "
                                            r"prefix 'student.'"):
        missing.init_weights()


def test_out_indices_any_order_and_negative_come_in_stage_order():
    """As from mmdet's and mmseg's backbones: outputs shallow to deep, whatever the order."""
    reference = randomize_(SpatialMamba(arch=TINY, out_indices=(1, 3))).eval()
    model = SpatialMamba(arch=TINY, out_indices=(-1, 1)).eval()
    model.load_state_dict(reference.state_dict())
    assert model.out_indices == (1, 3) and model.out_channels == [32, 128]
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for out, ref in zip(model(images), reference(images)):
            assert torch.equal(out, ref)


def test_sync_bn_builds_and_reverts_for_one_process():
    """``norm_cfg=dict(type='SyncBN')`` (mmseg's default) keeps the checkpoint's names, and
    mmengine's single-process revert gives a model that trains on the CPU."""
    from mmengine.model import revert_sync_batchnorm
    model = SpatialMamba(arch=TINY, norm_cfg=dict(type='SyncBN', requires_grad=True))
    plain = SpatialMamba(arch=TINY)
    syncs = [m for m in model.modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    assert len(syncs) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules()) > 0
    assert model.state_dict().keys() == plain.state_dict().keys()
    model = revert_sync_batchnorm(model).train()
    sum(o.sum() for o in model(torch.randn(2, 3, 32, 32))).backward()
    assert model.patch_embed.conv1.norm.weight.grad is not None


def test_frozen_stages_with_norm_eval_stay_fixed_through_a_training_step():
    """mmdet's ResNet recipe (frozen_stages=1, norm_eval=True): after ``train()`` and an
    optimizer step, the stem and stage 0 are unchanged, BN statistics everywhere too. No drop
    path: a block whose branch is dropped for the whole batch gets no gradient and would
    look frozen."""
    model = randomize_(SpatialMamba(arch=TINY, frozen_stages=1, norm_eval=True,
                                    drop_path_rate=0.0)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sum(o.square().mean() for o in model(torch.randn(2, 3, 64, 64))).backward()
    optimizer.step()
    after = model.state_dict()
    for key in before:
        frozen = key.startswith(('patch_embed.', 'layers.0.', 'outnorm0.')) or \
            key.endswith(('running_mean', 'running_var', 'num_batches_tracked'))
        assert torch.equal(before[key], after[key]) == frozen, key


def test_autocast_bfloat16_on_cpu():
    """Mixed precision as the toolkits run it (``--amp``: autocast around forward and loss):
    bf16 on the CPU gives finite outputs and finite fp32 gradients."""
    model = randomize_(SpatialMamba(arch=TINY, drop_path_rate=0.0)).train()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        outs = model(torch.randn(2, 3, 32, 32))
        loss = sum(o.float().square().mean() for o in outs)
    loss.backward()
    assert all(torch.isfinite(o).all() for o in outs)
    for name, param in model.named_parameters():
        assert param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all(), name


@pytest.mark.cuda
def test_amp_optim_wrapper_float16_step_on_cuda():
    """mmengine's AmpOptimWrapper (GPU only in mmengine 0.10.7): a float16 step with its
    loss scaler leaves finite parameters."""
    from mmengine.optim import AmpOptimWrapper
    model = SpatialMamba(arch=TINY, drop_path_rate=0.0).cuda().train()
    wrapper = AmpOptimWrapper(dtype='float16',
                              optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    with wrapper.optim_context(model):
        loss = sum(o.float().square().mean()
                   for o in model(torch.randn(2, 3, 32, 32, device='cuda')))
    wrapper.update_params(loss)
    assert all(torch.isfinite(p).all() for p in model.parameters())

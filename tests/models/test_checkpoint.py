"""Loading the three published checkpoint formats, the release alias, and bad checkpoints."""
import pytest
import torch

from mmspatialmamba.errors import BadArgumentError, BadInputError, MissingFileError
from mmspatialmamba.models import MMSpatialMamba, SpatialMamba, filter_state_dict

TINY = dict(dims=16, depths=(1, 2, 1, 1))


def random_state(model):
    return {k: (torch.randn_like(v) if v.is_floating_point() else v)
            for k, v in model.state_dict().items()}


def imagenet_format(state):
    """As the release's ImageNet checkpoints: under 'model', classifier kept, no outnorm."""
    model = {k: v for k, v in state.items() if not k.startswith('outnorm')}
    model.update({'norm.weight': torch.ones(128), 'norm.bias': torch.zeros(128),
                  'head.weight': torch.randn(1000, 128), 'head.bias': torch.zeros(1000)})
    return {'model': model, 'epoch': 300}


def dense_format(state):
    """As mmengine checkpoints of the release's COCO/ADE20K models."""
    sd = {f'backbone.{k}': v for k, v in state.items()}
    sd.update({'neck.lateral_convs.0.conv.weight': torch.randn(4, 16, 1, 1),
               'rpn_head.rpn_conv.weight': torch.randn(4, 4, 3, 3)})
    return {'meta': {'epoch': 12}, 'state_dict': sd}


@pytest.mark.parametrize('fmt', ['imagenet', 'dense', 'bare', 'ddp'])
def test_loads_every_format_through_init_cfg(fmt, tmp_path):
    state = random_state(SpatialMamba(arch=TINY))
    ckpt = {'imagenet': imagenet_format, 'dense': dense_format, 'bare': dict,
            'ddp': lambda s: {f'module.{k}': v for k, v in s.items()}}[fmt](state)
    path = tmp_path / 'ckpt.pth'
    torch.save(ckpt, path)
    model = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    loaded = model.state_dict()
    for key, value in state.items():
        if fmt == 'imagenet' and key.startswith('outnorm'):
            assert torch.equal(loaded[key], torch.ones_like(value) if key.endswith('weight')
                               else torch.zeros_like(value)), key   # fresh LayerNorm init
        else:
            assert torch.equal(loaded[key], value), key


def test_filter_reports_skipped_and_missing():
    model = SpatialMamba(arch=TINY)
    state = random_state(model)
    sd, report = filter_state_dict(imagenet_format(state), model.state_dict())
    assert set(sd) == {k for k in state if not k.startswith('outnorm')}
    assert set(report['skipped']) == {'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    assert report['missing'] == sorted(k for k in state if k.startswith('outnorm'))
    _, dense_report = filter_state_dict(dense_format(state), model.state_dict())
    assert dense_report['missing'] == []
    assert set(dense_report['skipped']) == {'neck.lateral_convs.0.conv.weight',
                                            'rpn_head.rpn_conv.weight'}


def test_filter_is_idempotent_on_native_dict():
    model = SpatialMamba(arch=TINY)
    state = model.state_dict()
    sd, report = filter_state_dict(state, state)
    assert sd.keys() == state.keys() and report == dict(skipped={}, missing=[])


def test_tiny_dense_checkpoint_has_no_missing_or_unexpected_keys():
    model = SpatialMamba(arch='tiny')
    sd, report = filter_state_dict(dense_format(model.state_dict()), model.state_dict())
    result = model.load_state_dict(sd, strict=True)
    assert len(sd) == 557 and not result.missing_keys and not result.unexpected_keys
    assert report['missing'] == []


def test_shape_mismatch_raises(tmp_path):
    state = random_state(SpatialMamba(arch=dict(dims=32, depths=(1, 2, 1, 1))))
    path = tmp_path / 'wide.pth'
    torch.save({'model': state}, path)
    model = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    with pytest.raises(BadInputError, match=r'shape mismatches between checkpoint and backbone'):
        model.init_weights()


def test_checkpoint_without_backbone_weights_raises():
    model = SpatialMamba(arch=TINY)
    with pytest.raises(BadInputError, match=r'holds no Spatial-Mamba backbone weights'):
        filter_state_dict({'state_dict': {'neck.conv.weight': torch.zeros(1)}},
                          model.state_dict())


def test_foreign_keys_raise():
    model = SpatialMamba(arch=TINY)
    with pytest.raises(BadInputError, match=r'not in the backbone.*Spatial-Mamba checkpoint'):
        state = {f'backbone.{k}': v for k, v in model.state_dict().items()}
        state['backbone.stages.0.weight'] = torch.zeros(1)   # e.g. a Swin checkpoint's key
        filter_state_dict({'state_dict': state}, model.state_dict())


def test_missing_file_raises(tmp_path):
    model = SpatialMamba(arch=TINY, init_cfg=dict(type='Pretrained',
                                                  checkpoint=str(tmp_path / 'nope.pth')))
    with pytest.raises(MissingFileError, match=r'nope.pth.*does not exist'):
        model.init_weights()


def test_release_alias_accepts_release_config(tmp_path):
    """The release's merged Swin + MM_SpatialMamba backbone dict builds and loads weights."""
    mmdet_models = pytest.importorskip('mmdet.registry').MODELS
    state = random_state(SpatialMamba(arch=TINY))
    path = tmp_path / 'in1k.pth'
    torch.save(imagenet_format(state), path)
    cfg = dict(type='MM_SpatialMamba', out_indices=(0, 1, 2, 3), pretrained=str(path),
               dims=16, d_state=1, depths=(1, 2, 1, 1), drop_path_rate=0.2,
               # leftovers of mmdet's Swin-T backbone dict, merged by the release's configs:
               embed_dims=96, num_heads=[3, 6, 12, 24], window_size=7, mlp_ratio=4,
               qkv_bias=True, qk_scale=None, drop_rate=0.0, attn_drop_rate=0.0,
               patch_norm=True, with_cp=False, convert_weights=True,
               norm_cfg=dict(type='LN', requires_grad=True),
               init_cfg=dict(type='Pretrained', checkpoint='swin_tiny.pth'))
    model = mmdet_models.build(cfg)
    assert isinstance(model, MMSpatialMamba) and model.out_channels == [16, 32, 64, 128]
    model.init_weights()
    assert torch.equal(model.state_dict()['layers.1.blocks.1.cpe2.weight'],
                       state['layers.1.blocks.1.cpe2.weight'])


def test_release_alias_empty_pretrained_trains_from_scratch():
    model = MMSpatialMamba(dims=16, depths=(1, 1, 1, 1), pretrained='')
    assert model.init_cfg is None


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(d_state=4), BadInputError, r'd_state must be 1'),
    (dict(frozen=1), BadArgumentError, r"unexpected arguments \['frozen'\]"),
])
def test_release_alias_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        MMSpatialMamba(dims=16, depths=(1, 1, 1, 1), **kwargs)

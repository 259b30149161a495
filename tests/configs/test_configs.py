"""Every shipped config builds the published architecture (foreign configs: test_swap_matrix.py)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from model_index import MODELS
from toolkit_models import build

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(osp.basename(p)[:-3] for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_published_model(name):
    """The model of the model index's parameter count (which matches the published one)."""
    cfg = Config.fromfile(osp.join(ROOT, 'configs', f'{name}.py'))
    assert cfg.custom_imports == dict(imports=['mmspatialmamba'], allow_failed_imports=False)
    backbone = cfg.model.backbone
    assert backbone.type == 'SpatialMamba' and 'embed_dims' not in backbone
    assert backbone.init_cfg == dict(type='Pretrained',
                                     checkpoint=f'checkpoints/spatialmamba_{name.split("_")[2]}'
                                                '_in1k.pth')
    model = build(cfg)
    channels = model.backbone.out_channels
    if cfg.default_scope == 'mmdet':
        assert list(cfg.model.neck.in_channels) == channels
    else:
        assert list(cfg.model.decode_head.in_channels) == channels
        assert cfg.model.auxiliary_head.in_channels == channels[2]
    params = sum(p.numel() for p in model.parameters())
    assert params == MODELS[name]['Metadata']['Parameters']


def test_maskrcnn_t_state_dict_matches_published_names():
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'maskrcnn_spatialmamba_t_coco.py'))
    keys = build(cfg).state_dict().keys()
    backbone = [k for k in keys if k.startswith('backbone.')]
    assert len(backbone) == 557
    for key in ('backbone.layers.0.blocks.0.self_attention.A_logs',
                'backbone.layers.0.blocks.0.self_attention.state_fusion.kernel_3_2',
                'backbone.layers.0.downsample.conv.2.norm.running_var',
                'backbone.patch_embed.conv3.1.norm.weight', 'backbone.outnorm3.bias'):
        assert key in keys


def test_weight_decay_follows_the_release_recipe():
    """The base Swin recipe's custom_keys, as the release trained: only 'norm' names exempt."""
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'maskrcnn_spatialmamba_t_coco.py'))
    model = build(cfg)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {names[id(p)]: g['weight_decay'] for g in wrapper.optimizer.param_groups
             for p in g['params']}
    block = 'backbone.layers.0.blocks.0.'
    for name in (block + 'self_attention.out_norm.weight', 'backbone.outnorm0.weight',
                 'backbone.patch_embed.conv1.norm.weight'):
        assert decay[name] == 0.0, name
    for name in ('ln_1.weight', 'self_attention.A_logs', 'self_attention.Ds', 'mlp.fc1.weight',
                 'self_attention.in_proj.weight'):
        assert decay[block + name] == 0.05, name



@pytest.mark.parametrize('size', ['t', 's', 'b'])
def test_each_size_has_one_backbone_and_one_checkpoint_variable(size):
    """Every config of a size builds the same backbone, from ``_base_/spatialmamba_<size>.py``;
    a 3x config builds its 1x config's model; the ImageNet checkpoint is always the variable
    ``spatialmamba_checkpoint``."""
    names = [n for n in CONFIGS if n.split('_')[2] == size]
    assert len(names) == 3
    cfgs = {n: Config.fromfile(osp.join(ROOT, 'configs', f'{n}.py')) for n in names}
    base = Config.fromfile(osp.join(ROOT, 'configs', '_base_', f'spatialmamba_{size}.py'))
    expected = {k: v for k, v in base.spatialmamba_backbone.items() if k != '_delete_'}
    for name, cfg in cfgs.items():
        assert cfg.model.backbone.to_dict() == expected, name
        assert cfg.spatialmamba_checkpoint == cfg.model.backbone.init_cfg.checkpoint, name
    one_x = cfgs[f'maskrcnn_spatialmamba_{size}_coco']
    three_x = cfgs[f'maskrcnn_spatialmamba_{size}_3x_coco']
    assert three_x.model.to_dict() == one_x.model.to_dict()
    assert three_x.train_cfg.max_epochs == 36 and one_x.train_cfg.max_epochs == 12

"""Every shipped config builds the published architecture (foreign configs: test_swap_matrix.py)."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config
from toolkit_models import build

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(osp.basename(p)[:-3] for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))

# Published parameter counts (docs/model.md), in millions.
PUBLISHED_PARAMS = {
    'maskrcnn_spatialmamba_t_coco': 46, 'maskrcnn_spatialmamba_s_coco': 63,
    'maskrcnn_spatialmamba_b_coco': 115, 'maskrcnn_spatialmamba_t_3x_coco': 46,
    'maskrcnn_spatialmamba_s_3x_coco': 63, 'maskrcnn_spatialmamba_b_3x_coco': 115,
    'upernet_spatialmamba_t_ade20k': 57, 'upernet_spatialmamba_s_ade20k': 73,
    'upernet_spatialmamba_b_ade20k': 127,
}


def test_all_configs_listed():
    assert sorted(PUBLISHED_PARAMS) == CONFIGS


@pytest.mark.parametrize('name', CONFIGS)
def test_config_builds_published_model(name):
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
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert params == pytest.approx(PUBLISHED_PARAMS[name], rel=0.01), params


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


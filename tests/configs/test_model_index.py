"""The model index (model-index.yml -> configs/metafile.yml, OpenMMLab's schema) lists every
shipped config with the parameters and FLOPs tools/get_flops.py counts, the published results
and checkpoints, the paper and the code.

Parameters are checked exactly against the built models in test_configs.py. FLOPs: counting
all six distinct models at their published input sizes takes 6-8 minutes on 2 cores (jit
traces of 261-1176 GFLOP forwards), too long for every test run; here they are checked
against docs/results.md, whose table holds the same tool's output with its commands, and
against the published figures.
"""
import glob
import os.path as osp
import re
import runpy

import pytest
from doc_tables import results_table
from model_index import MODELS, ROOT

SIZES = {'t': 'tiny', 's': 'small', 'b': 'base'}
# (task, arch) -> published (params in M, GFLOPs), as tools/get_flops.py reports them.
PUBLISHED_COUNTS = runpy.run_path(osp.join(ROOT, 'tools', 'get_flops.py'))['PUBLISHED']


def test_index_lists_every_shipped_config():
    shipped = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '*.py')))
    assert sorted(model['Config'] for model in MODELS.values()) == shipped
    for name, model in MODELS.items():
        assert model['Config'] == f'configs/{name}.py'
        assert model['In Collection'] == 'Spatial-Mamba'
        assert model['Paper']['URL'] == 'https://arxiv.org/abs/2410.15091'
        assert model['Code']['URL'] == 'https://github.com/EdwardChasel/Spatial-Mamba'


@pytest.mark.parametrize('name', sorted(MODELS))
def test_params_and_flops_are_the_tools_counts(name):
    meta = MODELS[name]['Metadata']
    method = 'Mask R-CNN' if name.startswith('maskrcnn') else 'UperNet'
    size = name.split('_')[2]
    row = results_table()[f'{method} {size.upper()}']
    params_m, gflops = float(row[2]), float(row[4])
    assert round(meta['Parameters'] / 1e6, 2) == params_m
    assert round(meta['FLOPs'] / 1e9, 2) == gflops
    task = 'detection' if method == 'Mask R-CNN' else 'segmentation'
    published = PUBLISHED_COUNTS[(task, SIZES[size])]
    assert meta['Parameters'] / 1e6 == pytest.approx(published[0], rel=0.01)
    assert meta['FLOPs'] / 1e9 == pytest.approx(published[1], rel=0.01)
    if '_3x_' in name:  # the same model as the 1x config
        one_x = MODELS[name.replace('_3x', '')]['Metadata']
        assert (meta['Parameters'], meta['FLOPs']) == (one_x['Parameters'], one_x['FLOPs'])


# The published results (docs/model.md, the release's README) and the recipes.
PUBLISHED_RESULTS = {
    'maskrcnn_spatialmamba_t_coco': (47.6, 42.9), 'maskrcnn_spatialmamba_s_coco': (49.2, 44.0),
    'maskrcnn_spatialmamba_b_coco': (50.4, 45.1), 'maskrcnn_spatialmamba_t_3x_coco': (49.3, 43.6),
    'maskrcnn_spatialmamba_s_3x_coco': (50.5, 44.6),
    'upernet_spatialmamba_t_ade20k': (48.6, 49.4), 'upernet_spatialmamba_s_ade20k': (50.6, 51.4),
    'upernet_spatialmamba_b_ade20k': (51.8, 52.6),
}


@pytest.mark.parametrize('name', sorted(MODELS))
def test_results_weights_and_recipe(name):
    model = MODELS[name]
    meta = model['Metadata']
    assert meta['Batch Size'] == 16 and meta['Training Resources'] == '8x GPUs'
    assert f'Spatial-Mamba-{name.split("_")[2].upper()}' in meta['Architecture']
    if name not in PUBLISHED_RESULTS:  # B 3x: nothing published
        assert 'Results' not in model and 'Weights' not in model
        return
    assert re.fullmatch(r'https://drive\.google\.com/file/d/[\w-]+/view\?usp=drive_link',
                        model['Weights'])
    metrics = {k: v for result in model['Results'] for k, v in result['Metrics'].items()}
    if name.startswith('maskrcnn'):
        assert (metrics['box AP'], metrics['mask AP']) == PUBLISHED_RESULTS[name]
        assert meta['Epochs'] == (36 if '_3x_' in name else 12)
        assert meta['Training Data'] == 'COCO'
    else:
        assert (metrics['mIoU'], metrics['mIoU(ms+flip)']) == PUBLISHED_RESULTS[name]
        assert meta['Iterations'] == 160000 and meta['Training Data'] == 'ADE20K'


def test_weights_are_distinct():
    weights = [m['Weights'] for m in MODELS.values() if 'Weights' in m]
    assert len(weights) == len(set(weights)) == 8

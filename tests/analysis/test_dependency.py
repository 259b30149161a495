"""Dependency maps: known answers in float64 (the scan's closed form, the fusion as a weighted
sum of neighbours' state rows with replicate padding), recording one mixer in a real forward
pass, the pixel-to-grid geometry, and tools/analysis/dependency_map.py on a small CPU run."""
import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from mmspatialmamba.analysis.dependency import (SASFCall, block_mixer, capture_sasf_call,
                                                dependency_rows, map_to_image,
                                                query_position)
from mmspatialmamba.models import SpatialMamba

ROOT = Path(__file__).resolve().parents[2]


def random_call(dim: int, height: int, width: int) -> SASFCall:
    """Random core arguments, batch 2, with random (not all-ones) fusion kernels and alpha."""
    length = height * width
    return SASFCall(
        u=torch.randn(2, dim, length), delta=torch.randn(2, dim, length) - 1.0,
        A=-torch.rand(dim, 1) - 0.2, B=torch.randn(2, 1, length), C=torch.randn(2, 1, length),
        D=torch.randn(dim), delta_bias=0.5 * torch.randn(dim), k1=torch.randn(dim, 1, 3, 3),
        k3=torch.randn(dim, 1, 3, 3), k5=torch.randn(dim, 1, 3, 3), alpha=torch.randn(3),
        hw=(height, width), delta_softplus=True, backend=None)


def state_rows_float64(call: SASFCall, sample: int) -> np.ndarray:
    """S[d, n, p] = d h[d, n] / d u[d, p] of the raster scan, in float64, from its closed form
    exp(A_d * sum(dt[d, t] for p < t <= n)) * B_p * dt[d, p] for p <= n, else 0."""
    x = (call.delta[sample] + call.delta_bias[:, None]).double().numpy()
    dt = np.where(x <= 20, np.log1p(np.exp(np.minimum(x, 20))), x)           # softplus
    A = call.A[:, 0].double().numpy()
    B = call.B[sample, 0].double().numpy()
    dim, length = dt.shape
    rows = np.zeros((dim, length, length))
    for d in range(dim):
        for n in range(length):
            for p in range(n + 1):
                rows[d, n, p] = math.exp(A[d] * dt[d, p + 1:n + 1].sum()) * B[p] * dt[d, p]
    return rows


def assert_close(actual: torch.Tensor, expected: np.ndarray, what: str) -> None:
    actual = actual.double().numpy()
    scale = np.abs(expected).max()
    err = np.abs(actual - expected).max() / scale
    assert err < 1e-5, f'{what}: max abs error {err * scale:.3g} ({err:.3g} of the max)'


@pytest.mark.parametrize('query', [0, 7, 13, 23])
def test_scan_only_row_is_the_closed_form(seed, query):
    """Zero after the query in raster order; before it (and at it), C_q times the float64
    closed form of the scan; computed for the second image of the batch."""
    call = random_call(3, 4, 6)
    scan_only, _ = dependency_rows(call, query, sample=1)
    row = scan_only.flatten(1)
    assert torch.all(row[:, query + 1:] == 0), f'seed {seed}'
    C_q = call.C[1, 0, query].double().item()
    expected = C_q * state_rows_float64(call, 1)[:, query]
    assert_close(row, expected, f'seed {seed}, query {query}')


@pytest.mark.parametrize('query', [0, 9, 14, 23])
def test_fused_row_is_the_kernels_sum_of_neighbour_rows(seed, query):
    """Fused row = C_q * sum over dilations k in (1, 3, 5) and taps (i, j) of
    alpha_k * kernel_k[d, i, j] * S[d, neighbour], where the neighbour
    (qy + k (i - 1), qx + k (j - 1)) is clamped to the map (replicate padding). On a 4x6 map
    every query has clamped neighbours at dilations 3 and 5."""
    height, width = 4, 6
    call = random_call(3, height, width)
    _, fused = dependency_rows(call, query)
    states = state_rows_float64(call, 0)
    qy, qx = divmod(query, width)
    expected = np.zeros((3, height * width))
    for alpha, kernel, k in zip(call.alpha.double(), (call.k1, call.k3, call.k5), (1, 3, 5)):
        for i in range(3):
            for j in range(3):
                ny = min(max(qy + k * (i - 1), 0), height - 1)
                nx = min(max(qx + k * (j - 1), 0), width - 1)
                weight = alpha.item() * kernel[:, 0, i, j].double().numpy()
                expected += weight[:, None] * states[:, ny * width + nx]
    expected *= call.C[0, 0, query].double().item()
    assert_close(fused.flatten(1), expected, f'seed {seed}, query {query}')


def test_capture_records_only_the_chosen_mixer_and_changes_nothing(seed):
    backbone = SpatialMamba(arch=dict(dims=8, depths=[1, 2, 1, 1])).eval()
    images = torch.randn(1, 3, 40, 56)
    with torch.no_grad():
        plain = backbone(images)
        with capture_sasf_call(block_mixer(backbone, 1, -1)) as calls:
            recorded = backbone(images)
        after = backbone(images)
    for a, b, c in zip(plain, recorded, after):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
        torch.testing.assert_close(c, a, rtol=0, atol=0)
    assert len(calls) == 1, f'{len(calls)} calls recorded for one mixer'
    call = calls[0]
    assert tuple(call.hw) == (5, 7) and call.u.shape == (1, 32, 35)  # stage 1: stride 8, D = 2 * 16
    sf = backbone.layers[1].blocks[1].self_attention.state_fusion
    assert torch.equal(call.k3, sf.kernel_3_1) and torch.equal(call.alpha, sf.alpha)
    scan_only, fused = dependency_rows(call, 17)
    assert torch.all(scan_only.flatten(1)[:, 18:] == 0)
    assert fused.flatten(1)[:, 18:].abs().sum() > 0, 'the fusion reads positions after q'


def test_errors():
    backbone = SpatialMamba(arch=dict(dims=8, depths=[1, 2, 1, 1]))
    with pytest.raises(ValueError, match=r'stage must be in \[0, 4\)'):
        block_mixer(backbone, 4, 0)
    with pytest.raises(ValueError, match='stage 1 has 2 blocks'):
        block_mixer(backbone, 1, 2)
    with pytest.raises(ValueError, match='need a Spatial-Mamba backbone'):
        block_mixer(torch.nn.Linear(2, 2), 0, 0)
    with pytest.raises(TypeError, match='must be a StructureAwareSSM'):
        with capture_sasf_call(backbone.layers[0]):
            pass
    with pytest.raises(ValueError, match=r'query must be a position in \[0, 24\)'):
        dependency_rows(random_call(2, 4, 6), 24)
    with pytest.raises(ValueError, match='outside the 100x60 image'):
        query_position((100, 0), (100, 60), (200, 120), 8, (25, 15))


def test_pixel_to_grid_and_back():
    """Image 100x60, resized x2 to 200x120, stride 8 -> a 25x15 map."""
    assert query_position((0, 0), (100, 60), (200, 120), 8, (25, 15)) == (0, 0)
    assert query_position((99, 59), (100, 60), (200, 120), 8, (25, 15)) == (24, 14)
    assert query_position((50, 10), (100, 60), (200, 120), 8, (25, 15)) == (12, 2)
    # A 2x3 map of a 7x10 resized image (padded to 8x12, stride 4), drawn at 14x20.
    grid = torch.arange(6.0).view(2, 3)
    image = map_to_image(grid, 4, (7, 10), (14, 20))
    assert image.shape == (14, 20)
    assert image[0, 0] == 0 and image[13, 19] == 5 and image[0, 19] == 2 and image[13, 0] == 3


def test_dependency_map_tool(tmp_path, capsys):
    """End to end on a small Mask R-CNN (tiny backbone, 64-pixel test scale): two queries,
    figure and JSON written; the scan alone reads nothing after the query, the fusion does;
    the initialisation is reproducible."""
    from mmspatialmamba.datasets import make_coco_instances
    images = make_coco_instances(str(tmp_path / 'data'), num_train=1, num_val=1,
                                 image_size=(48, 48))['val_img']
    image = str(Path(images) / '000001.jpg')
    config = tmp_path / 'small.py'
    config.write_text(f"""
_base_ = {str(ROOT / 'configs/maskrcnn_spatialmamba_t_coco.py')!r}
model = dict(backbone=dict(arch=dict(_delete_=True, dims=8, depths=[1, 1, 2, 1])),
             neck=dict(in_channels=[8, 16, 32, 64]))
test_dataloader = dict(dataset=dict(pipeline=[
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]))
""")
    spec = importlib.util.spec_from_file_location(
        'tool_dependency_map', ROOT / 'tools/analysis/dependency_map.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    result = tool.main([str(config), image, '--pixel', '10', '20', '--pixel', '47', '0',
                        '--stage', '2', '--out', str(tmp_path / 'dep.png'),
                        '--json', str(tmp_path / 'dep.json')])
    assert 'initialisation (no checkpoint)' in capsys.readouterr().out
    saved = json.loads((tmp_path / 'dep.json').read_text())
    assert saved['hw'] == [4, 4] and saved['block'] == 1            # 64 px / 16, last block
    assert [q['cell'] for q in saved['queries']] == [[0, 1], [3, 0]]
    for query, maps in zip(saved['queries'], result['maps']):
        assert query['scan_only_after'] == 0 and query['fused_after'] > 0
        assert maps['fused'].shape == (48, 48)
    assert 0 < (tmp_path / 'dep.png').stat().st_size < 300_000
    # Without a checkpoint the initialisation is seeded (--seed, default 0): a second run in
    # the same process, whose random state has moved on, draws the same maps.
    again = tool.main([str(config), image, '--pixel', '10', '20', '--stage', '2',
                       '--out', str(tmp_path / 'again.png')])
    np.testing.assert_array_equal(again['maps'][0]['fused'], result['maps'][0]['fused'])
    with pytest.raises(SystemExit, match='outside the 48x48 image'):
        tool.main([str(config), image, '--pixel', '48', '0', '--stage', '2',
                   '--out', str(tmp_path / 'bad.png')])

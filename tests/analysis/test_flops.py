"""FLOP counting: the SASF formula, a hand-counted block, the published ImageNet-T numbers,
the counting context, and get_flops.py's error paths."""
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from _tools import load_tool

from mmspatialmamba.analysis import count_complexity, sasf_counting, sasf_flops
from mmspatialmamba.models import SpatialMambaClassifier
from mmspatialmamba.models.layers import SpatialMambaBlock, StructureAwareSSM

get_flops = load_tool('get_flops')


def test_sasf_formula():
    """Scan 7*B*L*D*N (release's handle, no C-product) + three depthwise 3x3 convs."""
    assert sasf_flops(2, 16, 35) == dict(scan=7 * 2 * 35 * 16, fusion=3 * 9 * 2 * 16 * 35,
                                         total=34 * 2 * 16 * 35)
    assert sasf_flops(1, 128, 3136, d_state=2)['scan'] == 7 * 3136 * 128 * 2


def test_one_block_by_hand():
    """Every counted op of one block (C=8, D=16, R=1, N=1) at batch 2, 5x7, by hand."""
    batch, height, width, c = 2, 5, 7, 8
    d, r, n, length = 2 * c, 1, 1, height * width
    block = SpatialMambaBlock(c).eval()
    report = count_complexity(block, (torch.randn(batch, height, width, c),))
    ops = report.by_operator
    tokens = batch * length
    assert ops['PythonOp.SASFCount'] == 7 * tokens * d * n + 27 * tokens * d
    assert ops['PythonOp.SASFCount'] == report.sasf_flops
    # in_proj, out_proj, fc1, fc2, dt_proj (R -> D over positions); x_proj is a matmul.
    assert ops['linear'] == tokens * (c * 2 * d + d * c + c * 4 * c + 4 * c * c + r * d)
    assert ops['matmul'] == tokens * (r + 2 * n) * d
    assert ops['conv'] == tokens * 9 * (c + d + c)          # cpe1, conv2d, cpe2 (depthwise)
    assert ops['layer_norm'] == tokens * 5 * (c + d + c)    # ln_1, out_norm, ln_2 (affine)
    assert report.flops == sum(ops.values())
    assert report.params == sum(p.numel() for p in block.parameters())


def test_counting_reaches_only_its_thread_and_ends_with_the_block():
    """Inside sasf_counting() this thread's mixers run SASFCount (output: a copy of u, not
    the real one); a mixer in another thread, and any mixer after the block (also one left by
    an error), runs the real op."""
    mixer = StructureAwareSSM(8).eval()
    x = torch.randn(1, 5, 7, 8)
    with torch.no_grad():
        real = mixer(x)
        with sasf_counting():
            counted = mixer(x)
            with ThreadPoolExecutor(1) as pool:
                other_thread = pool.submit(mixer, x).result()
        with pytest.raises(RuntimeError, match='boom'):
            with sasf_counting():
                raise RuntimeError('boom')
        after = mixer(x)
    assert not torch.allclose(counted, real)
    torch.testing.assert_close(other_thread, real, rtol=0, atol=0)
    torch.testing.assert_close(after, real, rtol=0, atol=0)


def test_published_imagenet_tiny():
    """Spatial-Mamba-T at 224: 4.5 GFLOPs and 27M parameters (docs/model.md), within 3%."""
    report = count_complexity(SpatialMambaClassifier(arch='tiny').eval(),
                              (torch.randn(1, 3, 224, 224),))
    assert abs(report.flops / 4.5e9 - 1) < 0.03, report.flops
    assert abs(report.params / 27e6 - 1) < 0.03, report.params
    # the SASF part alone: 34 * sum over blocks of D * L
    assert report.sasf_flops == 34 * (2 * 128 * 56 ** 2 + 4 * 256 * 28 ** 2
                                      + 8 * 512 * 14 ** 2 + 4 * 1024 * 7 ** 2)


def test_unknown_submodule_raises():
    with pytest.raises(KeyError, match='no submodules'):
        count_complexity(SpatialMambaBlock(8), (torch.randn(1, 3, 3, 8),), modules=('backbone',))


def test_tool_classifier_json(tmp_path, capsys):
    out = tmp_path / 'flops.json'
    arch = '{"dims": 16, "depths": [1, 1, 1, 1]}'
    result = get_flops.main(['--classifier', arch, '--shape', '64', '64', '--json', str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result['task'] == 'classification' and result['shape'] == [64, 64]
    assert result['arch'] is None and 'published' not in result
    assert result['flops'] == result['backbone_flops'] > result['sasf_flops'] > 0
    assert 'whole model' in capsys.readouterr().out


@pytest.mark.parametrize('argv, match', [
    (['--classifier', 'huge'], "^error: unknown arch 'huge'"),
    (['--classifier', '{"dims": 16'], '^error: arch .* is not valid JSON'),
    (['missing_config.py'], "^error: config 'missing_config.py' not found"),
], ids=['arch', 'json', 'config'])
def test_tool_errors(argv, match):
    """User errors end the tool with 'error: ...' (exit status 1), as in every tool."""
    with pytest.raises(SystemExit, match=match):
        get_flops.main(argv)


@pytest.mark.parametrize('argv', [
    [], ['--classifier', 'tiny', '--shape', '16', '224'], ['cfg.py', '--classifier', 'tiny']],
    ids=['nothing', 'small-shape', 'both'])
def test_tool_usage_errors(argv, capsys):
    with pytest.raises(SystemExit):
        get_flops.main(argv)
    assert 'error:' in capsys.readouterr().err

"""ERF (RepLKNet's method): known answers for convolutions and area ratios, image reading,
the comparison backbones' loading checks, and tools/analysis/erf.py on small CPU runs."""
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from mmspatialmamba.analysis.erf_models import (build_stage_model, comparison_spec,
                                                spatial_mamba_spec)
from mmspatialmamba.analysis.receptive_field import (IMAGENET_MEAN, area_ratios,
                                                     centre_input_gradient, erf_display,
                                                     find_images, mean_centre_gradient,
                                                     read_image)

ROOT = Path(__file__).resolve().parents[2]
TINY_ARCH = '{"dims": 8, "depths": [1, 1, 1, 1]}'


def load_erf_tool():
    spec = importlib.util.spec_from_file_location('tool_erf', ROOT / 'tools/analysis/erf.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('dilation', [1, 2])
def test_conv3x3_erf_is_exactly_its_support(seed, dilation):
    """A single 3x3 convolution: the centre output depends on exactly its 9 taps, and the
    99% area ratio is that of the smallest square around them."""
    conv = nn.Conv2d(3, 8, 3, padding=dilation, dilation=dilation)
    images = [torch.randn(3, 15, 17) for _ in range(6)]
    measured = mean_centre_gradient(conv, images, progress=False)
    assert measured.seconds > 0 and measured.cpu_seconds > 0
    expected = torch.zeros(15, 17, dtype=torch.bool)
    expected[7 - dilation:8 + dilation:dilation, 8 - dilation:9 + dilation:dilation] = True
    support = measured.gradient > 0
    assert torch.equal(support, expected), f'seed {seed}: support\n{support.int()}'
    ratios = area_ratios(erf_display(measured.gradient))
    assert ratios[0.99] <= (2 * dilation + 1) ** 2 / (15 * 17), f'seed {seed}: {ratios}'


def test_gradient_is_absolute_and_summed_over_colours():
    """out = relu(w . x) at the centre: the gradient is |w| per colour, summed (2 + 3 + 5)."""
    conv = nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([2.0, -3.0, 5.0]).view(1, 3, 1, 1))
    image = torch.ones(3, 5, 5)
    grad = centre_input_gradient(conv, image)
    expected = torch.zeros(5, 5)
    expected[2, 2] = 10.0
    assert torch.equal(grad, expected)


def test_area_ratios_known_answers():
    uniform = np.ones((9, 9))
    assert area_ratios(uniform) == {0.2: 25 / 81, 0.3: 25 / 81, 0.5: 49 / 81, 0.99: 1.0}
    delta = np.zeros((9, 9))
    delta[4, 4] = 1.0
    assert all(r == 1 / 81 for r in area_ratios(delta).values())
    # Non-square: the squares are clipped to the 5 rows (centre (2, 4)).
    assert area_ratios(np.ones((5, 9)), (0.2, 0.5, 0.7, 0.9)) == {
        0.2: 9 / 45, 0.5: 25 / 45, 0.7: 35 / 45, 0.9: 1.0}


def test_erf_display_is_log_scaled_and_normalised():
    erf = erf_display(torch.tensor([[0.0, 9.0], [99.0, 999.0]]))
    np.testing.assert_allclose(erf, [[0.0, 1 / 3], [2 / 3, 1.0]])


def test_bad_maps_raise():
    with pytest.raises(ValueError, match='non-negative'):
        area_ratios(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match='positive sum'):
        area_ratios(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r'thresholds must be in \(0, 1\]'):
        area_ratios(np.ones((3, 3)), (0.5, 1.5))
    with pytest.raises(ValueError, match='zero everywhere'):
        erf_display(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r'must return a \(1, C, h, w\) tensor'):
        centre_input_gradient(lambda x: (x,), torch.zeros(3, 4, 4))


def test_read_image_rgb_centre_crop_normalised(tmp_path):
    """A wide image, black but for its middle third in the ImageNet mean colour: resized to
    10 rows, its centre crop is that third and reads as zeros (RGB order: in BGR order it
    would not); grayscale becomes three channels."""
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, 20:40] = np.round(IMAGENET_MEAN)[::-1]           # BGR for cv2
    cv2.imwrite(str(tmp_path / 'wide.png'), wide)
    image = read_image(str(tmp_path / 'wide.png'), 10)
    assert image.shape == (3, 10, 10)
    assert image.abs().max() < 0.01
    cv2.imwrite(str(tmp_path / 'gray.png'), np.full((8, 8), 200, np.uint8))
    gray = read_image(str(tmp_path / 'gray.png'), 8)
    assert gray.shape == (3, 8, 8) and not torch.equal(gray[0], gray[2])  # per-channel norm
    (tmp_path / 'broken.png').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='could not be read as an image'):
        read_image(str(tmp_path / 'broken.png'), 8)


def test_find_images(tmp_path):
    for name in ('b.png', 'a.jpg', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    assert find_images([str(tmp_path)]) == [str(tmp_path / 'a.jpg'), str(tmp_path / 'b.png')]
    assert find_images([str(tmp_path / 'b.png'), str(tmp_path)], num=2) == [
        str(tmp_path / 'b.png'), str(tmp_path / 'a.jpg')]
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_images([str(tmp_path / 'missing')])
    with pytest.raises(ValueError, match='asked for 3 images, more than the 2 found'):
        find_images([str(tmp_path)], num=3)
    with pytest.raises(ValueError, match='must be at least 1, got 0'):
        find_images([str(tmp_path)], num=0)
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match='no images'):
        find_images([str(tmp_path / 'empty')])


def test_our_backbone_from_a_config_drops_its_imagenet_checkpoint():
    spec = spatial_mamba_spec(str(ROOT / 'configs/maskrcnn_spatialmamba_t_coco.py'))
    assert spec.name == 'Spatial-Mamba-T' and spec.scope == 'mmdet'
    assert spec.cfg['type'] == 'SpatialMamba' and not spec.cfg.get('init_cfg')


def test_comparison_checkpoint_that_loads_nothing_raises(tmp_path):
    """mmdet's backbones load checkpoints non-strictly; a file of another network must not
    pass as ResNet-50 weights."""
    path = tmp_path / 'other.pth'
    torch.save({'state_dict': {'head.weight': torch.ones(2, 2)}}, path)
    with pytest.raises(ValueError, match='set none of the ResNet-50 weights'):
        build_stage_model(comparison_spec('ResNet-50'), 3, str(path))
    with pytest.raises(ValueError, match='stage must be 0-3'):
        build_stage_model(comparison_spec('ResNet-50'), 4)


def write_images(folder: Path, count: int, size: int = 48) -> None:
    from mmspatialmamba.datasets import make_coco_instances
    paths = make_coco_instances(str(folder), num_train=1, num_val=count,
                                image_size=(size, size))
    return paths['val_img']


def test_erf_tool_tiny_with_checkpoint(tmp_path, capsys):
    """The tool on a tiny arch: figure and JSON written, ratios ordered; a checkpoint changes
    the weights and the caption says which."""
    erf_tool = load_erf_tool()
    images = write_images(tmp_path / 'data', 2)
    common = ['--images', images, '--size', '64', '--stage', '2']
    init = erf_tool.main([TINY_ARCH, *common, '--out', str(tmp_path / 'init.png'),
                          '--json', str(tmp_path / 'init.json')])
    out = capsys.readouterr().out
    assert 'initialisation (no checkpoint)' in out
    saved = json.loads((tmp_path / 'init.json').read_text())
    ratios = list(saved['backbones'][0]['area_ratios'].values())
    assert ratios == sorted(ratios) and 0 < ratios[0] and ratios[-1] <= 1
    assert init['erf']['Spatial-Mamba'].shape == (64, 64)
    assert 0 < (tmp_path / 'init.png').stat().st_size < 300_000

    from mmspatialmamba.models import SpatialMamba
    torch.manual_seed(1)
    other = SpatialMamba(arch=json.loads(TINY_ARCH))
    other.init_weights()
    torch.save(other.state_dict(), tmp_path / 'ckpt.pth')
    loaded = erf_tool.main([TINY_ARCH, str(tmp_path / 'ckpt.pth'), *common,
                            '--out', str(tmp_path / 'ckpt.png')])
    assert f'checkpoint {tmp_path / "ckpt.pth"}' in capsys.readouterr().out
    assert not np.allclose(loaded['erf']['Spatial-Mamba'], init['erf']['Spatial-Mamba'])


def test_erf_tool_compare(tmp_path, capsys):
    """--compare measures mmdet's Swin-T and ResNet-50 on the same image."""
    erf_tool = load_erf_tool()
    images = write_images(tmp_path / 'data', 1)
    result = erf_tool.main([TINY_ARCH, '--images', images, '--size', '64', '--compare',
                            '--out', str(tmp_path / 'cmp.png')])
    names = [b['name'] for b in result['backbones']]
    assert names == ['Spatial-Mamba', 'Swin-T', 'ResNet-50']
    assert all(b['weights'] == 'initialisation (no checkpoint)' for b in result['backbones'])
    assert all(b['seconds_per_image'] > 0 for b in result['backbones'])
    assert (tmp_path / 'cmp.png').stat().st_size < 300_000


def test_erf_tool_refuses_a_code_running_checkpoint(tmp_path, monkeypatch):
    """Loading a checkpoint never runs code from it: the tool stops and names the opt-in."""
    from crafted_checkpoint import save_crafted

    from mmspatialmamba.checkpoint_io import TRUST_ENV
    monkeypatch.delenv(TRUST_ENV, raising=False)
    checkpoint, marker = save_crafted(str(tmp_path))
    images = write_images(tmp_path / 'data', 1)
    with pytest.raises(SystemExit, match='--trust-checkpoint'):
        load_erf_tool().main([TINY_ARCH, checkpoint, '--images', images, '--size', '32',
                              '--out', str(tmp_path / 'erf.png')])
    assert not Path(marker).exists()


def test_erf_tool_errors(tmp_path, capsys):
    erf_tool = load_erf_tool()
    with pytest.raises(SystemExit, match='does not exist'):
        erf_tool.main(['tiny', '--images', str(tmp_path / 'missing')])
    with pytest.raises(SystemExit) as exit_info:
        erf_tool.main(['tiny', '--images', str(tmp_path), '--swin-checkpoint', 'x.pth'])
    assert exit_info.value.code == 2
    assert '--swin-checkpoint and --resnet-checkpoint need --compare' in capsys.readouterr().err

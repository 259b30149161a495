"""SpatialMambaClassifier: published checkpoint layout, loading, features, registry, errors."""
import pytest
import torch
from model_utils import randomize_

from mmspatialmamba.models import SpatialMamba, SpatialMambaClassifier, filter_state_dict

TINY = dict(dims=16, depths=(1, 2, 1, 1))


def test_state_dict_is_the_published_imagenet_layout():
    """T: the backbone's 557 keys minus outnorm0-3 (8) plus norm and head (4) = 553."""
    classifier_keys = set(SpatialMambaClassifier(arch='tiny').state_dict())
    backbone_keys = set(SpatialMamba(arch='tiny').state_dict())
    expected = {k for k in backbone_keys if not k.startswith('outnorm')} | {
        'norm.weight', 'norm.bias', 'head.weight', 'head.bias'}
    assert classifier_keys == expected
    assert len(classifier_keys) == 553


def test_loads_imagenet_checkpoint_with_no_missing_or_unexpected_keys(tmp_path, seed):
    source = randomize_(SpatialMambaClassifier(arch=TINY, num_classes=10)).eval()
    path = tmp_path / 'in1k.pth'
    torch.save({'model': source.state_dict(), 'epoch': 299}, path)

    model = SpatialMambaClassifier(arch=TINY, num_classes=10,
                                   init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    report_state, report = filter_state_dict(torch.load(path), model.state_dict())
    assert report['missing'] == [] and report['skipped'] == {}
    incompatible = model.load_state_dict(report_state, strict=True)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), f'{key} (seed {seed})'
    images = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        assert torch.equal(model.eval()(images), source(images))


def test_features_match_the_backbone(seed):
    """Same weights: classifier features == backbone stage-3 output with outnorm3 = norm."""
    classifier = randomize_(SpatialMambaClassifier(arch=TINY, num_classes=7)).eval()
    backbone = SpatialMamba(arch=TINY, out_indices=(3,)).eval()
    state, report = filter_state_dict({'model': classifier.state_dict()}, backbone.state_dict())
    assert sorted(report['missing']) == ['outnorm3.bias', 'outnorm3.weight']
    state['outnorm3.weight'] = classifier.norm.weight.detach().clone()
    state['outnorm3.bias'] = classifier.norm.bias.detach().clone()
    backbone.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, 61, 45)
    with torch.no_grad():
        feats = classifier.forward_features(images)
        (ref,) = backbone(images)
        logits = classifier(images)
    assert feats.shape == ref.shape == (2, 128, 2, 2)
    torch.testing.assert_close(feats, ref, rtol=0, atol=0, msg=f'seed {seed}')
    torch.testing.assert_close(logits, classifier.head(ref.mean(dim=(2, 3))))


def test_registry_and_headless_mode():
    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='SpatialMambaClassifier', arch=TINY, num_classes=0)).eval()
    with torch.no_grad():
        assert model(torch.randn(3, 3, 32, 32)).shape == (3, 128)
    assert isinstance(model.head, torch.nn.Identity)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(arch='huge'), ValueError, 'unknown arch'),
    (dict(arch=TINY, num_classes=-1), ValueError, 'num_classes'),
    (dict(arch=TINY, drop_path_rate=1.5), ValueError, 'drop_path_rate'),
], ids=['arch', 'num_classes', 'drop_path'])
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpatialMambaClassifier(**kwargs)


def test_bad_input_raises():
    with pytest.raises(ValueError, match=r'expects images of shape \(batch, 3, H, W\)'):
        SpatialMambaClassifier(arch=TINY)(torch.randn(1, 4, 32, 32))


def test_missing_checkpoint_raises(tmp_path):
    model = SpatialMambaClassifier(arch=TINY, init_cfg=dict(
        type='Pretrained', checkpoint=str(tmp_path / 'absent.pth')))
    with pytest.raises(FileNotFoundError):
        model.init_weights()

"""Spatial-Mamba-B for every B config: T's definition (``spatialmamba_t.py``) with the B
widths (E = 96), depths, drop-path rate and ImageNet checkpoint."""
_base_ = './spatialmamba_t.py'

spatialmamba_checkpoint = 'checkpoints/spatialmamba_b_in1k.pth'
spatialmamba_backbone = dict(
    arch='base', drop_path_rate=0.5, init_cfg=dict(checkpoint=spatialmamba_checkpoint))
spatialmamba_channels = [96, 192, 384, 768]

"""Spatial-Mamba-S for every S config: T's definition (``spatialmamba_t.py``) with the S
depths, drop-path rate and ImageNet checkpoint (same channels as T)."""
_base_ = './spatialmamba_t.py'

spatialmamba_checkpoint = 'checkpoints/spatialmamba_s_in1k.pth'
spatialmamba_backbone = dict(
    arch='small', drop_path_rate=0.3, init_cfg=dict(checkpoint=spatialmamba_checkpoint))

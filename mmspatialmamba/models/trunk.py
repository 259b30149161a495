"""What every Spatial-Mamba model shares: arch settings, stages, weight init and loading.

:class:`SpatialMambaTrunk` is the stem plus the four stages; the dense backbone
(``backbones/spatial_mamba.py``) adds per-stage output norms, the classifier
(``classifier.py``) a final norm and a head. Parameter names follow the published checkpoints.
"""
import logging
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize, trunc_normal_
from mmengine.runner.checkpoint import CheckpointLoader
from torch import Tensor, nn

from ..errors import BadArgumentError, BadInputError
from .checkpoint import filter_state_dict
from .layers import Downsample, SpatialMambaBlock, Stem

ARCH_SETTINGS: Dict[str, dict] = {
    'tiny': dict(dims=64, depths=(2, 4, 8, 4), drop_path_rate=0.2),
    'small': dict(dims=64, depths=(2, 4, 21, 5), drop_path_rate=0.3),
    'base': dict(dims=96, depths=(2, 4, 21, 5), drop_path_rate=0.5),
}
ARCH_ALIASES = {'t': 'tiny', 's': 'small', 'b': 'base'}

# mmengine's model-zoo schemes (mmengine/runner/checkpoint.py, 0.10.7): ImageNet weights of other
# architectures (ResNet, ...), never Spatial-Mamba. Refused before anything is downloaded.
MODEL_ZOO_SCHEMES = ('open-mmlab://', 'openmmlab://', 'torchvision://', 'modelzoo://', 'mmcls://')
_PRETRAINED_KEYS = {'type', 'checkpoint', 'prefix', 'map_location'}

InitCfg = Union[dict, List[dict], None]


def resolve_arch(arch: Union[str, dict]) -> Tuple[List[int], List[int], float]:
    """Turn ``arch`` into ``(dims per stage, depths, default drop_path_rate)``.

    Raises:
        BadInputError: For an unknown name or a malformed dict.
    """
    if isinstance(arch, str):
        name = ARCH_ALIASES.get(arch.lower(), arch.lower())
        if name not in ARCH_SETTINGS:
            raise BadInputError(f'unknown arch {arch!r}; choose one of {sorted(ARCH_SETTINGS)} '
                                'or pass dict(dims=..., depths=...)')
        arch = ARCH_SETTINGS[name]
    if not isinstance(arch, dict) or not {'dims', 'depths'} <= set(arch):
        raise BadInputError(f'arch must be a name or a dict with keys dims and depths, '
                            f'got {arch!r}')
    extra = set(arch) - {'dims', 'depths', 'drop_path_rate'}
    if extra:
        raise BadInputError(f'unknown arch keys {sorted(extra)}; allowed: dims, depths, '
                            'drop_path_rate')
    depths = [int(d) for d in arch['depths']]
    dims = arch['dims']
    dims = [int(dims) * 2 ** i for i in range(len(depths))] if isinstance(dims, int) else \
        [int(d) for d in dims]
    if len(dims) != len(depths) or any(d <= 0 for d in dims + depths):
        raise BadInputError(f'arch needs one positive dim and depth per stage, got dims={dims}, '
                            f'depths={depths}')
    if any(b != 2 * a for a, b in zip(dims, dims[1:])):
        raise BadInputError(f'each stage must double the channels (the downsampling maps C to 2C), '
                            f'got dims={dims}')
    return dims, depths, float(arch.get('drop_path_rate', 0.1))


def split_init_cfg(init_cfg: InitCfg) -> Tuple[Optional[dict], List[dict]]:
    """Split an mmengine ``init_cfg`` (None, a dict or a list of dicts) into its
    ``type='Pretrained'`` entry (or None) and the other initialisers (``Kaiming``, ...).

    Raises:
        BadArgumentError: If ``init_cfg`` or an entry is not a dict with a ``type``.
        BadInputError: On several Pretrained entries, or a Pretrained entry without
            ``checkpoint`` or with keys mmengine's ``PretrainedInit`` does not take.
    """
    cfgs = [] if init_cfg is None else [init_cfg] if isinstance(init_cfg, dict) else init_cfg
    if not isinstance(cfgs, (list, tuple)) or not all(
            isinstance(c, dict) and 'type' in c for c in cfgs):
        raise BadArgumentError(f'init_cfg must be None, a dict with a type, or a list of such '
                               f'dicts, got {init_cfg!r}')
    pretrained = [c for c in cfgs if c['type'] == 'Pretrained']
    if len(pretrained) > 1:
        raise BadInputError(f'init_cfg has {len(pretrained)} Pretrained entries; give one')
    for cfg in pretrained:
        if 'checkpoint' not in cfg or set(cfg) - _PRETRAINED_KEYS:
            raise BadInputError(f"a Pretrained init_cfg takes checkpoint (required), prefix and "
                                f"map_location, got {cfg!r}")
    return (pretrained[0] if pretrained else None), [c for c in cfgs if c['type'] != 'Pretrained']


def _select_prefix(checkpoint: dict, prefix: str, path: str) -> Dict[str, Tensor]:
    """The keys of ``checkpoint['state_dict']`` (or of ``checkpoint``) under ``prefix``,
    with the prefix removed, as mmengine's ``_load_checkpoint_with_prefix`` selects them.

    Raises:
        BadInputError: If no key starts with ``prefix``.
    """
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    source = checkpoint.get('state_dict', checkpoint)
    selected = {k[len(prefix):]: v for k, v in source.items() if k.startswith(prefix)}
    if not selected:
        raise BadInputError(f'no key of {path!r} starts with the init_cfg prefix {prefix!r}; its '
                            f'first keys are {list(source)[:5]}')
    return selected


class SpatialMambaStage(nn.Module):
    """One stage: ``blocks`` at constant resolution, then an optional ``downsample``.

    Args:
        dim: Channels C. depth: Number of blocks. drop_path: Per-block rates (len depth).
        downsample: Append a stride-2 downsampling to 2C. norm_cfg: Its norm config.
        with_cp: Checkpoint each block in training to save memory.
        backend: Ops backend of the blocks.
    """

    def __init__(self, dim: int, depth: int, drop_path: Sequence[float], downsample: bool,
                 norm_cfg: dict, with_cp: bool = False, backend: Optional[str] = None) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.blocks = nn.ModuleList(
            SpatialMambaBlock(dim, drop_path=drop_path[i], backend=backend) for i in range(depth))
        self.downsample = Downsample(dim, norm_cfg) if downsample else None

    def forward(self, x: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """(batch, H, W, C) -> (stage output (batch, H, W, C), next input or None)."""
        for block in self.blocks:
            if self.with_cp and self.training and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x, (self.downsample(x) if self.downsample is not None else None)


class SpatialMambaTrunk(BaseModule):
    """Stem (``patch_embed``) and stages (``layers``) with the release's initialisation.

    Args:
        arch: Name ('tiny', 'small', 'base', 't', 's', 'b') or dict(dims=..., depths=...).
        in_channels: Image channels.
        drop_path_rate: Stochastic depth rate, linear over blocks; None: the arch's value.
        with_cp: Gradient checkpointing per block.
        norm_cfg: Norm of the stem and downsampling convs; None: ``dict(type='BN')``.
        backend: Ops backend: None (Triton on CUDA, PyTorch on CPU), 'torch' or 'triton'.
        init_cfg: An mmengine init_cfg: a dict or a list of dicts, e.g.
            ``dict(type='Pretrained', checkpoint=PATH, prefix='backbone.')``; see
            :func:`split_init_cfg`.
    """

    def __init__(self, arch: Union[str, dict], in_channels: int,
                 drop_path_rate: Optional[float], with_cp: bool, norm_cfg: Optional[dict],
                 backend: Optional[str], init_cfg: InitCfg) -> None:
        split_init_cfg(init_cfg)  # a malformed init_cfg fails at build, not at init_weights
        super().__init__(init_cfg=init_cfg)
        dims, depths, default_dpr = resolve_arch(arch)
        drop_path_rate = default_dpr if drop_path_rate is None else float(drop_path_rate)
        if not 0.0 <= drop_path_rate < 1.0:
            raise BadInputError(f'drop_path_rate must be in [0, 1), got {drop_path_rate}')
        norm_cfg = dict(type='BN', requires_grad=True) if norm_cfg is None else norm_cfg
        self.in_channels = in_channels
        self.dims = dims

        self.patch_embed = Stem(in_channels, dims[0], norm_cfg)
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            self.layers.append(SpatialMambaStage(
                dims[i], depth, rates[start:start + depth], downsample=i < len(depths) - 1,
                norm_cfg=norm_cfg, with_cp=with_cp, backend=backend))

    def init_weights(self) -> None:
        """Initialise as the release does, then apply ``init_cfg`` in mmengine's order.

        Linear weights: truncated normal (std 0.02), zero bias; LayerNorm: ones and zeros. The
        SSM parameters keep their construction-time initialisation (docs/model.md). Then the other
        ``init_cfg`` entries run through mmengine's ``initialize``, and a Pretrained entry
        loads last (it wins, as in mmengine's ``BaseModule.init_weights``) through
        :meth:`load_pretrained`.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear):
                trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        pretrained, others = split_init_cfg(self.init_cfg)
        if others:
            initialize(self, others)
        if pretrained is not None:
            self.load_pretrained(pretrained['checkpoint'], pretrained.get('prefix'),
                                 pretrained.get('map_location', 'cpu'))
        self._is_init = True

    def load_pretrained(self, path: str, prefix: Optional[str] = None,
                        map_location: str = 'cpu') -> Dict[str, object]:
        """Load a checkpoint file in any published format; returns the filter's report.

        Goes through mmengine's ``CheckpointLoader`` and :func:`filter_state_dict`, and logs
        what was skipped and what the checkpoint lacks (those tensors keep their init).

        Args:
            path: Local path or URL of the checkpoint.
            prefix: Load only the keys under this sub-module name (e.g. ``'backbone.'``) of
                the checkpoint's ``state_dict``, as mmengine's ``PretrainedInit`` does.
            map_location: Where tensors are loaded.

        Raises:
            BadInputError: If ``path`` names a model zoo (``open-mmlab://``,
                ``torchvision://``, ...), which holds other architectures (raised before any
                download); if the file is not a checkpoint (see
                :func:`~mmspatialmamba.checkpoint_io.check_checkpoint_file`); from
                :func:`filter_state_dict` on an incompatible file; or if no key starts with
                ``prefix``.
            MissingFileError: If ``path`` does not exist.
        """
        name = type(self).__name__
        if path.startswith(MODEL_ZOO_SCHEMES):
            raise BadInputError(f'{path!r} is a model-zoo checkpoint of another architecture '
                                f'(the {path.split("://")[0]}:// zoo holds no Spatial-Mamba '
                                'weights); give a Spatial-Mamba checkpoint (local path or URL)')
        checkpoint = CheckpointLoader.load_checkpoint(path, map_location=map_location,
                                                      logger='current')
        if prefix:
            checkpoint = _select_prefix(checkpoint, prefix, path)
        state, report = filter_state_dict(checkpoint, self.state_dict())
        self.load_state_dict(state, strict=False)
        print_log(f'{name}: loaded {len(state)} tensors from {path}', logger='current')
        if report['skipped']:
            reasons: Dict[str, int] = {}
            for reason in report['skipped'].values():
                reasons[reason] = reasons.get(reason, 0) + 1
            print_log(f'{name}: skipped checkpoint keys: {reasons}', logger='current')
        if report['missing']:
            print_log(f'{name}: {len(report["missing"])} tensors not in the checkpoint keep '
                      f'their initialisation: {report["missing"]}', logger='current',
                      level=logging.WARNING)
        return report

    def iter_stages(self, x: Tensor) -> Iterator[Tuple[int, Tensor]]:
        """Yield ``(i, output of stage i)`` (channels last, before its downsampling).

        Args:
            x: Images, (batch, in_channels, H, W); any H, W >= 1.

        Raises:
            ValueError: If ``x`` is not a (batch, in_channels, H, W) tensor.
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects images of shape '
                             f'(batch, {self.in_channels}, H, W), got {tuple(x.shape)}')
        x = self.patch_embed(x)
        for i, layer in enumerate(self.layers):
            out, x = layer(x)
            yield i, out

"""Turn any published Spatial-Mamba checkpoint into a state dict for the backbone.

Three formats load (the timm ``checkpoint_filter_fn`` pattern, in one pure function):

* ImageNet checkpoints of the release: weights under ``model``, with the classifier's
  ``norm.*`` and ``head.*`` (dropped) and no ``outnorm*`` (left at their initialisation);
* mmengine checkpoints of dense models (COCO, ADE20K): ``state_dict`` with ``backbone.``
  prefixed keys beside the neck's and heads' (those are skipped);
* bare state dicts of the backbone, possibly with ``module.`` (DDP) prefixes.

Anything that would load silently wrong raises: shape mismatches, keys the backbone does not
have, or a checkpoint with no backbone weights at all.
"""
import re
from typing import Dict, Mapping, Tuple

from torch import Tensor

from ..errors import BadArgumentError, BadInputError

_CLASSIFIER = re.compile(r'^(head|norm)\.')
_OUTNORM = re.compile(r'^outnorm\d+\.')


def _unwrap(checkpoint: Mapping) -> Mapping[str, Tensor]:
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return checkpoint[key]
    return checkpoint


def filter_state_dict(checkpoint: Mapping, model_state: Mapping[str, Tensor]
                      ) -> Tuple[Dict[str, Tensor], Dict[str, object]]:
    """Extract the backbone weights of ``checkpoint`` that match ``model_state``.

    Idempotent: a native state dict comes back unchanged.

    Args:
        checkpoint: A loaded checkpoint in any of the three formats above.
        model_state: ``backbone.state_dict()``, for names and shapes.

    Returns:
        ``(state_dict, report)``: the weights to load, and a report with ``skipped`` (key ->
        reason) and ``missing`` (backbone keys the checkpoint does not have).

    Raises:
        BadArgumentError: If ``checkpoint`` is not a mapping (also a ``TypeError``).
        BadInputError: If it holds no backbone weights at all, keys the backbone does not
            have, or weights whose shapes differ from the backbone's.
    """
    if not isinstance(checkpoint, Mapping):
        raise BadArgumentError(f'a checkpoint must be a dict, got {type(checkpoint).__name__}')
    source = _unwrap(checkpoint)
    skipped: Dict[str, str] = {}
    state: Dict[str, Tensor] = {}
    has_backbone_prefix = any(k.replace('module.', '', 1).startswith('backbone.') for k in source)
    for key, value in source.items():
        name = key[len('module.'):] if key.startswith('module.') else key
        if has_backbone_prefix:
            if not name.startswith('backbone.'):
                skipped[key] = 'not a backbone weight'
                continue
            name = name[len('backbone.'):]
        if _CLASSIFIER.match(name) and name not in model_state:
            skipped[key] = 'ImageNet classifier (final norm and head)'
            continue
        if _OUTNORM.match(name) and name not in model_state:
            skipped[key] = 'output norm of a stage not in out_indices'
            continue
        state[name] = value

    if not set(state) & set(model_state):
        raise BadInputError('the checkpoint holds no Spatial-Mamba backbone weights (looked under '
                            "'state_dict' and 'model', with and without the 'backbone.' prefix); "
                            f'its first keys are {list(source)[:5]}')
    unexpected = sorted(set(state) - set(model_state))
    if unexpected:
        raise BadInputError(f'{len(unexpected)} checkpoint keys are not in the backbone, e.g. '
                            f'{unexpected[:5]}; is this a Spatial-Mamba checkpoint of this '
                            'variant?')
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(model_state[k].shape)}'
                  for k, v in state.items() if v.shape != model_state[k].shape]
    if mismatched:
        raise BadInputError(f'{len(mismatched)} shape mismatches between checkpoint and backbone '
                            f'(wrong arch?), e.g. {mismatched[:3]}')
    missing = sorted(set(model_state) - set(state))
    return state, dict(skipped=skipped, missing=missing)

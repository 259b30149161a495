"""The model index as mim and mmengine read it: model-index.yml, then each metafile it imports."""
import os.path as osp
from typing import Dict

import yaml

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load_models() -> Dict[str, dict]:
    """Model name -> its entry (Name, Config, Metadata, Results, Weights, Paper, Code)."""
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    models: Dict[str, dict] = {}
    for metafile in index['Import']:
        with open(osp.join(ROOT, metafile)) as f:
            for model in yaml.safe_load(f)['Models']:
                assert model['Name'] not in models, f'{model["Name"]} listed twice'
                models[model['Name']] = model
    return models


MODELS = load_models()

"""What the tools call: config loading (:mod:`.config`), the dataset check (:mod:`.preflight`),
the distributed launch (:mod:`.launcher`), the tools' error style (:mod:`.cli`) and
single-image inference (:mod:`.inference`)."""
from .cli import add_debug_argument, exit_on_user_error
from .config import (config_scope, drop_pretrained_init, load_config, resolve_pretrained)
from .inference import check_image, draw_result, inference, init_model
from .launcher import setup_launcher, teardown_launcher
from .preflight import check_datasets

__all__ = ['add_debug_argument', 'check_datasets', 'check_image', 'config_scope',
           'draw_result', 'drop_pretrained_init', 'exit_on_user_error', 'inference',
           'init_model', 'load_config', 'resolve_pretrained', 'setup_launcher',
           'teardown_launcher']

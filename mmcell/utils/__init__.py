"""The ground floor: errors, file writing, checkpoints, configs and launch, compatibility shims."""
from .compat import apply_compat, torch_load_checkpoint
from .errors import (
    HW3FileNotFoundError,
    HW3FormatError,
    InputError,
    ToolArgumentParser,
    exit_on_bad_input,
    first_line,
    input_errors,
    one_line,
    probabilities,
    probability,
)
from .setup_env import (
    add_runner_args,
    init_dist_from_env,
    load_config,
    load_runner_config,
    prepare_launch,
    register_all_modules,
    set_data_root,
)

__all__ = ['apply_compat', 'torch_load_checkpoint', 'InputError', 'HW3FormatError', 'HW3FileNotFoundError',
           'ToolArgumentParser', 'exit_on_bad_input', 'first_line', 'input_errors', 'one_line', 'probability',
           'probabilities', 'add_runner_args',
           'init_dist_from_env', 'load_config', 'load_runner_config', 'prepare_launch', 'register_all_modules',
           'set_data_root']

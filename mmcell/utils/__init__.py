"""Environment set-up and compatibility shims shared by tools and tests."""
from .compat import apply_compat, torch_load_checkpoint
from .setup_env import (
                        ToolArgumentParser,
                        add_runner_args,
                        exit_on_bad_input,
                        init_dist_from_env,
                        input_errors,
                        load_config,
                        load_runner_config,
                        one_line,
                        prepare_launch,
                        register_all_modules,
                        set_data_root,
)

__all__ = ['apply_compat', 'torch_load_checkpoint', 'ToolArgumentParser', 'exit_on_bad_input', 'input_errors',
           'one_line', 'add_runner_args', 'init_dist_from_env', 'load_config', 'load_runner_config',
           'prepare_launch', 'register_all_modules', 'set_data_root']

"""The checks the train and test commands run before BasicSR builds anything: the options a command line names,
with its ``--force_yml`` overrides applied (:func:`hint_plugin.utils.option_schema.check_options`), and its
``--launcher`` (also against ``num_gpu``: :func:`hint_plugin.utils.option_schema.check_launcher_fits`). The
command-line side is :mod:`hint_plugin.cli.pipeline`.
"""
import os

from hint_plugin.utils.option_schema import check_launcher_fits, check_options
from hint_plugin.errors import OptionsError
from hint_plugin.utils.options import read_options

TORCHRUN_VARIABLES = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def apply_force_yml(options, entries, source):
    """BasicSR's ``--force_yml a:b=value`` overrides (the sections must exist, the last key may be new, as in
    BasicSR), with the entry named when it fails."""
    from basicsr.utils.options import _postprocess_yml_value
    for entry in entries or ():
        if entry.count('=') != 1:
            raise OptionsError(f'--force_yml {entry!r}: expected KEY:SUBKEY=VALUE')
        keys, value = (part.strip() for part in entry.split('='))
        section, *parents, last = [options, *keys.split(':')]
        walked = []
        for key in [*parents, last][:-1]:
            walked.append(key)
            if not isinstance(section, dict) or key not in section:
                raise OptionsError(f'--force_yml {entry!r}: {source} has no key {":".join(walked)}')
            section = section[key]
        if not isinstance(section, dict):  # BasicSR sets the last key, existing or new, inside an existing section
            raise OptionsError(f'--force_yml {entry!r}: {":".join(walked)} in {source} is not a section')
        section[last] = _postprocess_yml_value(value)


def check_launcher(launcher, environ=os.environ):
    """``--launcher pytorch`` needs torchrun's environment, ``slurm`` a Slurm job step."""
    if launcher == 'pytorch':
        missing = [name for name in TORCHRUN_VARIABLES if name not in environ]
        if missing:
            raise OptionsError(f'--launcher pytorch: {", ".join(missing)} not set; start the command with torchrun '
                               '(torchrun --nproc_per_node=N tools/train.py -opt ... --launcher pytorch), or leave '
                               '--launcher out for one process')
    elif launcher == 'slurm' and 'SLURM_PROCID' not in environ:
        raise OptionsError('--launcher slurm: SLURM_PROCID not set; start the command with srun')


def check_devices(options, source, cuda_available=None):
    """``num_gpu`` >= 1 and ``prefetch_mode: cuda`` need a CUDA GPU, which this machine may lack."""
    import torch
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
    if cuda_available:
        return
    asked = []
    if isinstance(options.get('num_gpu'), int) and options['num_gpu'] >= 1:
        asked.append(f'num_gpu = {options["num_gpu"]}')
    asked += [f'datasets.{phase}.prefetch_mode = \'cuda\'' for phase, dataset in options['datasets'].items()
              if isinstance(dataset, dict) and dataset.get('prefetch_mode') == 'cuda']
    if asked:
        raise OptionsError(f'{source}: {" and ".join(asked)}, but this machine has no CUDA GPU '
                           '(torch.cuda.is_available() is False): set num_gpu: 0 (or auto) and prefetch_mode: ~ '
                           'to run on the CPU')


def check_startup_options(opt_path, force_yml, launcher, is_train):
    """Read ``opt_path``, apply ``force_yml`` and check the result, the devices it asks for and ``launcher``;
    :class:`OptionsError` names the file, the key and what was expected. Returns the options as checked."""
    options = read_options(opt_path)
    apply_force_yml(options, force_yml, opt_path)
    check_options(options, is_train, source=opt_path)
    check_devices(options, opt_path)
    check_launcher(launcher)
    check_launcher_fits(options, launcher, source=opt_path)
    return options

"""Every option key that BasicSR 1.4.2 and the plugin read, with its type and range, checked before anything is
built: :func:`check_options` raises one :class:`~hint_plugin.utils.options.OptionsError` naming the key (as
``train.total_iter``), the value and what was expected, or an unknown key with the closest known one.

The schema is a set of small tables of ``key -> Key(kind, ...)``. Dataset options depend on the dataset
``type`` and train/val options on the ``model_type``: other modules add theirs with :func:`register_dataset_keys`
and :func:`register_model_keys` (the authors' types are registered here already). Sections built from a
registry (losses, optimisers, schedulers) take the keys of the class they name. Checks that tie several keys
together (progressive lists against the loader batch, scheduler periods against ``total_iter`` ...) are the
functions of ``RULES``.
"""
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real

from hint_plugin.errors import check_plain_name
from hint_plugin.utils.messages import did_you_mean
from hint_plugin.utils.options import OptionsError
from hint_plugin.utils.tiling import TILE_MERGES


@dataclass(frozen=True)
class Key:
    """What one option key may hold.

    ``kind``: ``int`` (an integer, not a bool), ``whole`` (an integer, or a float such as ``!!float 4e3`` with no
    fraction), ``number``, ``bool``, ``str``, ``list``, ``map`` or ``any``; a tuple allows several. ``low`` /
    ``high``: inclusive bounds of numbers (and of list items). ``choices``: the allowed values. ``items``: the
    kind of list items. ``keys``: the schema of a ``map`` (``None``: any keys), or a function ``value -> schema``.
    ``each``: the schema of every value of a ``map`` of named entries (datasets, metrics). ``required``:
    ``True`` always, ``'train'`` for training only. ``path``: ``'file'`` or ``'dir'`` that must exist.
    ``refused``: a key that must not be given, and what to give instead.
    """
    kind: object = 'any'
    low: float = None
    high: float = None
    choices: tuple = None
    items: str = None
    keys: object = None
    each: object = None
    required: object = False
    path: str = None
    length: int = None
    refused: str = None


INT, WHOLE, NUMBER, BOOL, STR, LIST, MAP = 'int', 'whole', 'number', 'bool', 'str', 'list', 'map'
KIND_WORDS = {INT: 'an integer', WHOLE: 'an integer', NUMBER: 'a number', BOOL: 'true or false', STR: 'a string',
              LIST: 'a list', MAP: 'a mapping (key: value lines)', 'any': 'anything'}


def _is(kind, value):
    """Whether ``value`` is of ``kind`` (see :class:`Key`)."""
    if kind == 'any':
        return True
    if kind == BOOL:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return {INT: isinstance(value, Integral),
            WHOLE: isinstance(value, Integral) or (isinstance(value, float) and value.is_integer()),
            NUMBER: isinstance(value, Real), STR: isinstance(value, str),
            LIST: isinstance(value, (list, tuple)), MAP: isinstance(value, Mapping)}[kind]


def _expected(key):
    """``an integer >= 1``, ``a list of numbers in [0, 1]``, ``one of 'disk', 'lmdb'`` ..."""
    if key.choices is not None:
        return 'one of ' + ', '.join(repr(choice) for choice in key.choices)
    kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
    words = ' or '.join(KIND_WORDS[kind] for kind in kinds)
    if key.items:
        noun = KIND_WORDS[key.items].split(' ', 1)[1] + 's'  # 'an integer' -> 'integers'
        words = f'a list of {key.length} {noun}' if key.length else f'a list of {noun}'
    if key.low is not None and key.high is not None:
        words += f' in [{key.low}, {key.high}]'
    elif key.low is not None:
        words += f' >= {key.low}'
    elif key.high is not None:
        words += f' <= {key.high}'
    return words


def _in_range(key, value):
    return ((key.low is None or value >= key.low) and (key.high is None or value <= key.high))


def check_value(where, value, key):
    """Raise :class:`OptionsError` unless ``value`` fits ``key`` (type, range, choices, list items, path)."""
    kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
    problem = None
    if key.choices is not None:
        problem = value not in key.choices
    elif not any(_is(kind, value) for kind in kinds):
        problem = True
    elif key.items and _is(LIST, value):
        problem = ((key.length is not None and len(value) != key.length) or not value
                   or not all(_is(key.items, item) and _in_range(key, item) for item in value))
    elif _is(NUMBER, value):
        problem = not _in_range(key, value)
    if problem:
        raise OptionsError(f'{where} = {value!r}: expected {_expected(key)}')
    if key.path and isinstance(value, str):
        exists = os.path.isfile if key.path == 'file' else os.path.isdir
        if not exists(value):
            raise OptionsError(f'{where} = {value!r}: no such {"file" if key.path == "file" else "folder"}')


def unknown_key_message(key, section, known):
    """"`total_iters`: unknown key in train; did you mean `total_iter`?" (or the known keys when none is close)."""
    return f'`{key}`: unknown key in {section}; {did_you_mean(key, known, sorted(map(str, known)))}'


def check_section(where, section, schema, context):
    """Check the mapping ``section`` (named ``where``) against ``schema`` (``None``: any keys), recursively.

    ``context``: ``{'options': the whole file, 'is_train': bool, 'check_paths': bool}``.
    """
    if schema is None:
        return
    for name in section:
        if name not in schema:
            raise OptionsError(unknown_key_message(name, where or 'the top level', schema))
    for name, key in schema.items():
        value = section.get(name)
        path = f'{where}.{name}' if where else name
        if value is None:
            if key.required is True or (key.required == 'train' and context['is_train']):
                raise OptionsError(f'{path} is missing: expected {_expected(key)}')
            continue
        if key.refused:
            raise OptionsError(f'{path}: {key.refused}')
        check_value(path, value, key if context['check_paths'] else Key(**{**key.__dict__, 'path': None}))
        if _is(MAP, value) and key.each is not None:
            for entry, content in value.items():
                if not _is(MAP, content):
                    raise OptionsError(f'{path}.{entry} = {content!r}: expected a mapping (key: value lines)')
                check_section(f'{path}.{entry}', content, key.each(entry, content, context), context)
        elif _is(MAP, value) and key.keys is not None:
            check_section(path, value, key.keys(value, context) if callable(key.keys) else key.keys, context)


# ------------------------------------------------------------------------------ sections named by a registry
def signature_keys(function, skip=0, type_key=True, **extra):
    """A schema of the keyword arguments of ``function`` (any kind), plus ``type`` and ``extra``; ``None`` (open)
    when it takes ``**kwargs``. ``skip``: leading positional arguments that the caller fills in."""
    parameters = list(inspect.signature(function).parameters.values())[skip:]
    if any(parameter.kind == parameter.VAR_KEYWORD for parameter in parameters):
        return None
    schema = {parameter.name: Key() for parameter in parameters if parameter.kind != parameter.VAR_POSITIONAL}
    if type_key:
        schema['type'] = Key(STR, required=True)
    schema.update(extra)
    return schema


def registry_section(registry_name, skip=0, **extra):
    """``keys`` of a section whose ``type`` names a class of BasicSR's ``registry_name`` registry."""
    def schema(section, context=None):
        from basicsr.utils import registry
        registry_object = getattr(registry, registry_name)
        type_name = section.get('type')
        if type_name not in registry_object:
            names = ', '.join(sorted(name for name, _ in registry_object))
            raise OptionsError(f'type = {type_name!r} in a {registry_name.split("_")[0].lower()} section: not '
                               f'registered (expected one of: {names})')
        return signature_keys(registry_object.get(type_name), skip, **extra)
    return schema


def loss_keys(section, context):
    """Keys of a loss section: its class's constructor arguments (``loss_weight`` > 0, ``reduction``)."""
    try:
        return registry_section('LOSS_REGISTRY', loss_weight=Key(NUMBER, low=0),
                                reduction=Key(STR, choices=('none', 'mean', 'sum')))(section)
    except OptionsError as error:
        raise OptionsError(f'{error} (a loss)') from None


def optimizer_keys(section, context):
    """Keys of ``train.optim_g``: a ``torch.optim`` class's constructor arguments (``lr`` > 0 required)."""
    import torch
    optimizer = getattr(torch.optim, str(section.get('type')), None)
    if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
        raise OptionsError(f'train.optim_g.type = {section.get("type")!r}: not a torch.optim optimizer '
                           '(e.g. Adam, AdamW, SGD)')
    if section.get('fused') is True and section.get('foreach') is True:
        raise OptionsError('train.optim_g: fused and foreach are two implementations; give at most one of them true')
    schema = signature_keys(optimizer, skip=1, lr=Key(NUMBER, low=0, required=True))
    for implementation in ('fused', 'foreach'):  # a quoted "false" would be taken as true by torch
        if schema is not None and implementation in schema:
            schema[implementation] = Key(BOOL)
    return schema


SCHEDULERS = {}  # type -> (module, class name): the schedulers BasicSR's and HINTModel's setup_schedulers build


def scheduler_keys(section, context):
    """Keys of ``train.scheduler``: the constructor arguments of the scheduler it names (optimizer excluded)."""
    import importlib
    if section.get('type') not in SCHEDULERS:
        raise OptionsError(f'train.scheduler.type = {section.get("type")!r}: expected one of '
                           f'{", ".join(sorted(SCHEDULERS))}')
    module, name = SCHEDULERS[section['type']]
    return signature_keys(getattr(importlib.import_module(module), name), skip=1,
                          periods=Key(LIST, items=WHOLE, low=1), milestones=Key(LIST, items=WHOLE, low=0),
                          restart_weights=Key(LIST, items=NUMBER, low=0), eta_mins=Key(LIST, items=NUMBER, low=0),
                          gamma=Key(NUMBER, low=0), eta_min=Key(NUMBER, low=0))


SCHEDULERS.update({
    'MultiStepLR': ('basicsr.models.lr_scheduler', 'MultiStepRestartLR'),
    'MultiStepRestartLR': ('basicsr.models.lr_scheduler', 'MultiStepRestartLR'),
    'CosineAnnealingRestartLR': ('basicsr.models.lr_scheduler', 'CosineAnnealingRestartLR'),
    'CosineAnnealingRestartCyclicLR': ('hint_plugin.models.lr_scheduler', 'CosineAnnealingRestartCyclicLR'),
})


# ---------------------------------------------------------------------------------------------- datasets
SIZE, COUNT, FLAG = Key(INT, low=1), Key(INT, low=0), Key(BOOL)
IO_BACKEND = Key(MAP, required=True, keys={
    'type': Key(STR, required=True, choices=('disk', 'lmdb', 'memcached')),
    'db_paths': Key((STR, LIST)), 'client_keys': Key((STR, LIST)),
    'server_list_cfg': Key(STR), 'client_cfg': Key(STR), 'sys_path': Key(STR),
})

LOADER_KEYS = {  # basicsr.data.build_dataset / build_dataloader and the training loop
    'name': Key(STR, required=True), 'type': Key(STR, required=True), 'phase': Key(STR), 'scale': Key(INT, low=1),
    'batch_size_per_gpu': SIZE, 'num_worker_per_gpu': COUNT, 'use_shuffle': FLAG,
    'dataset_enlarge_ratio': Key(WHOLE, low=1), 'prefetch_mode': Key(STR, choices=('cpu', 'cuda')),
    'num_prefetch_queue': SIZE, 'pin_memory': FLAG, 'persistent_workers': FLAG,
    # HINTModel's progressive training (train phase): stage j, iters[j] iterations, mini_batch_sizes[j] patches
    # of gt_sizes[j] pixels (the authors' ImageCleanModel reads the same keys)
    'mini_batch_sizes': Key(LIST, items=INT, low=1), 'iters': Key(LIST, items=WHOLE, low=1),
    'gt_sizes': Key(LIST, items=INT, low=1),
}
PAIRED_KEYS = {  # basicsr.data.PairedImageDataset (train phase: gt_size, use_hflip, use_rot read directly)
    'dataroot_gt': Key(STR, required=True, path='dir'), 'dataroot_lq': Key(STR, required=True, path='dir'),
    'meta_info_file': Key(STR, path='file'), 'filename_tmpl': Key(STR), 'io_backend': IO_BACKEND,
    'gt_size': Key(INT, low=1, required='train'), 'use_hflip': Key(BOOL, required='train'),
    'use_rot': Key(BOOL, required='train'), 'color': Key(STR, choices=('y',)),
    'mean': Key(LIST, items=NUMBER), 'std': Key(LIST, items=NUMBER),
}
NOISE_KEYS = {  # hint_plugin.data.GaussianNoiseDataset
    'dataroot_gt': Key(STR, required=True, path='dir'), 'io_backend': Key(**{**IO_BACKEND.__dict__, 'required': False}),
    'sigma_range': Key(LIST, items=NUMBER, low=0, length=2), 'sigma_test': Key(NUMBER, low=0),
    'gt_size': Key(INT, low=1, required='train'), 'use_hflip': FLAG, 'use_rot': FLAG, 'seed': Key(INT),
    'test_noise': Key(STR, choices=('name_seeded', 'authors')),
}
AUTHORS_PAIRED_KEYS = {  # the authors' Dataset_PairedImage and Dataset_PairedImage_dehazeSOT
    'dataroot_gt': Key(STR, required=True), 'dataroot_lq': Key(STR, required=True),
    'meta_info_file': Key(STR, path='file'), 'filename_tmpl': Key(STR), 'io_backend': IO_BACKEND,
    'gt_size': Key(INT, low=1, required='train'), 'geometric_augs': FLAG,
    'mean': Key(LIST, items=NUMBER), 'std': Key(LIST, items=NUMBER),
    **{name: Key(refused="the authors' datasets do not read it; geometric_augs: true draws one of the eight "
                         'flips / quarter turns') for name in ('use_hflip', 'use_rot', 'use_flip')},
}
AUTHORS_DEHAZE_KEYS = {  # Dataset_PairedImage_dehazeSOT reads folders only
    **AUTHORS_PAIRED_KEYS, 'io_backend': Key(MAP, keys={'type': Key(STR, required=True, choices=('disk',))}),
}
AUTHORS_NOISE_KEYS = {  # the authors' Dataset_GaussianDenoising (dataroot_lq: none)
    **AUTHORS_PAIRED_KEYS, 'dataroot_gt': Key(STR, required=True, path='dir'), 'dataroot_lq': Key(STR),
    'io_backend': Key(**{**IO_BACKEND.__dict__, 'required': False}),
    'sigma_type': Key(STR, choices=('constant', 'random', 'choice'), required='train'),
    'sigma_range': Key((NUMBER, LIST), required='train'), 'sigma_test': Key(NUMBER, low=0),
    'in_ch': Key(INT, choices=(1, 3)), 'align_with_promptir': FLAG,
}
DATASET_KEYS = {}  # dataset type -> schema of its own keys (the loader's keys come on top); others: any keys
DATASET_RULES = {}  # dataset type -> checks tying its keys together: rule(where, section, phase, options)


def register_dataset_keys(type_name, schema, rule=None):
    """Declare the option keys of the dataset ``type_name`` (a ``{key: Key}`` table) and, optionally, a
    ``rule(where, section, phase, options)`` checking keys that go together (run after the keys' own checks)."""
    DATASET_KEYS[type_name] = dict(schema)
    if rule is not None:
        DATASET_RULES[type_name] = rule


def dataset_phase(name, section):
    """The phase BasicSR's parser gives ``datasets.<name>``: the name up to its first ``_`` (``val_1`` -> ``val``);
    a ``phase`` in the section (datasets built from Python) wins."""
    return section.get('phase') or str(name).split('_')[0]


def dataset_scale(section, options):
    """The scale a dataset gets: its own, else the file's (BasicSR's parser copies it), else 1."""
    return section.get('scale', options.get('scale', 1))


def no_lmdb_on_disk_backend(where, section):
    """``io_backend: disk`` (the default) reads files: a ``dataroot_*`` that is an LMDB (holds ``data.mdb``) needs
    ``io_backend: {type: lmdb}``."""
    if (section.get('io_backend') or {}).get('type', 'disk') != 'disk':
        return
    for key in ('dataroot_gt', 'dataroot_lq'):
        folder = section.get(key)
        if isinstance(folder, str) and os.path.isfile(os.path.join(folder, 'data.mdb')):
            raise OptionsError(f"{where}.{key} = {folder!r} is an LMDB (it holds data.mdb) but io_backend reads "
                               'files: set io_backend: {type: lmdb}')


def needs_sigma_test(where, section, phase):
    """Validation and test sets add noise of ``sigma_test``: it has no default."""
    if phase != 'train' and section.get('sigma_test') is None:
        raise OptionsError(f'{where}.sigma_test is missing: expected the noise level (a number >= 0 on the 0-255 '
                           f'scale) that phase {phase} adds')


def rule_noise_dataset(where, section, phase, options):
    """GaussianNoiseDataset: ``sigma_range`` as ``[low, high]``, ``sigma_test`` outside training."""
    no_lmdb_on_disk_backend(where, section)
    needs_sigma_test(where, section, phase)
    low, high = section.get('sigma_range') or (0, 0)
    if low > high:
        raise OptionsError(f'{where}.sigma_range = {list(section["sigma_range"])}: expected [low, high] with '
                           'low <= high')


SIGMA_RANGES = {  # sigma_type of the authors' Gaussian denoising -> (valid sigma_range, what it must be)
    'constant': (lambda value: _is(NUMBER, value) and value >= 0, 'one noise level'),
    'random': (lambda value: _is(LIST, value) and len(value) == 2 and all(_is(NUMBER, v) and v >= 0 for v in value)
               and value[0] <= value[1], '[low, high] with 0 <= low <= high'),
    'choice': (lambda value: _is(LIST, value) and len(value) > 0 and all(_is(NUMBER, v) and v >= 0 for v in value),
               'a non-empty list of noise levels'),
}


def rule_authors_dataset(where, section, phase, options):
    """The authors' datasets work at scale 1 (their restoration tasks keep the size)."""
    if dataset_scale(section, options) != 1:
        raise OptionsError(f'{where}.scale = {dataset_scale(section, options)!r}: expected 1 '
                           f'({section.get("type")} keeps the image size)')


def rule_authors_dehaze_dataset(where, section, phase, options):
    """Dataset_PairedImage_dehazeSOT validates on the central ``gt_size`` crop."""
    rule_authors_dataset(where, section, phase, options)
    if phase == 'val' and section.get('gt_size') is None:
        raise OptionsError(f'{where}.gt_size is missing: expected the size of the central crop it validates on')


def rule_authors_noise_dataset(where, section, phase, options):
    """Dataset_GaussianDenoising: ``dataroot_lq: none``, a ``sigma_range`` fitting ``sigma_type`` in training,
    ``sigma_test`` outside it."""
    rule_authors_dataset(where, section, phase, options)
    no_lmdb_on_disk_backend(where, {**section, 'dataroot_lq': None})
    if str(section.get('dataroot_lq', 'none')).lower() not in ('none', 'null', '~'):
        raise OptionsError(f'{where}.dataroot_lq = {section["dataroot_lq"]!r}: expected none (the noisy images are '
                           'made from dataroot_gt)')
    if phase != 'train':
        needs_sigma_test(where, section, phase)
        return
    sigma_type, sigma_range = section.get('sigma_type'), section.get('sigma_range')
    if sigma_type == 'constant' and _is(LIST, sigma_range) and len(sigma_range) == 1:
        sigma_range = sigma_range[0]  # [50] is read as 50
    valid, expected = SIGMA_RANGES.get(sigma_type, (lambda value: True, ''))
    if sigma_range is not None and not valid(sigma_range):
        raise OptionsError(f'{where}.sigma_range = {section["sigma_range"]!r}: expected {expected} for sigma_type '
                           f'{sigma_type} (0-255 scale)')


def rule_paired_dataset(where, section, phase, options):
    no_lmdb_on_disk_backend(where, section)


for _type, _schema, _rule in (
        ('PairedImageDataset', PAIRED_KEYS, rule_paired_dataset),
        ('CheckedPairedImageDataset', PAIRED_KEYS, rule_paired_dataset),
        ('GaussianNoiseDataset', NOISE_KEYS, rule_noise_dataset),
        ('Dataset_PairedImage', AUTHORS_PAIRED_KEYS, rule_authors_dataset),
        ('Dataset_PairedImage_dehazeSOT', AUTHORS_DEHAZE_KEYS, rule_authors_dehaze_dataset),
        ('Dataset_GaussianDenoising', AUTHORS_NOISE_KEYS, rule_authors_noise_dataset)):
    register_dataset_keys(_type, _schema, _rule)


def dataset_keys(phase, section, context):
    """The schema of ``datasets.<phase>``: the loader's keys and those of its ``type``. BasicSR's parser makes
    the phase the entry's name up to its first ``_`` (``train``, ``val_1`` -> ``val``)."""
    own = DATASET_KEYS.get(section.get('type'))
    if own is None:
        return None  # a dataset type this table does not know: its own constructor checks its keys
    schema = {**LOADER_KEYS, **own}
    if not (context['is_train'] and dataset_phase(phase, section) == 'train'):  # train-phase keys are optional here
        schema = {name: Key(**{**key.__dict__, 'required': key.required is True}) for name, key in schema.items()}
    return schema


# ------------------------------------------------------------------------------------ model, train and val
TRAIN_KEYS = {  # basicsr.train, basicsr.models.sr_model.SRModel
    'total_iter': Key(WHOLE, low=1, required=True), 'warmup_iter': Key(WHOLE, low=-1),
    'ema_decay': Key(NUMBER, low=0, high=1), 'optim_g': Key(MAP, required=True, keys=optimizer_keys),
    'scheduler': Key(MAP, required=True, keys=scheduler_keys), 'pixel_opt': Key(MAP, keys=loss_keys),
    'perceptual_opt': Key(MAP, keys=loss_keys),
}
METRIC = {'type': Key(STR, required=True), 'crop_border': Key(INT, low=0), 'test_y_channel': FLAG,
          'input_order': Key(STR, choices=('HWC', 'CHW')), 'better': Key(STR, choices=('higher', 'lower'))}


def metric_keys(name, section, context):
    """A ``val.metrics.<name>`` section: a registered metric, with BasicSR's metric keys and the named arguments
    of its function (BasicSR's metrics swallow any other keyword, so a misspelt one would pass unseen)."""
    from basicsr.utils.registry import METRIC_REGISTRY
    if section.get('type') not in METRIC_REGISTRY:
        names = ', '.join(sorted(name for name, _ in METRIC_REGISTRY))
        raise OptionsError(f'val.metrics: type = {section.get("type")!r} is not a registered metric '
                           f'(expected one of: {names})')
    parameters = inspect.signature(METRIC_REGISTRY.get(section['type'])).parameters.values()
    named = {parameter.name: Key() for parameter in parameters
             if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
             and parameter.name not in ('img', 'img2')}
    return {**named, **METRIC}


VAL_KEYS = {  # basicsr.train and SRModel.validation
    'val_freq': Key(WHOLE, low=1, required='train'), 'save_img': Key(BOOL, required=True), 'suffix': Key(STR),
    'pbar': FLAG, 'metrics': Key(MAP, each=metric_keys),
}
MODEL_KEYS = {}  # model_type -> {'train': schema, 'val': schema} of the keys it adds; others: any keys


def register_model_keys(model_type, train=None, val=None, skips_oversize_stages=False, needs_process_per_gpu=False):
    """Declare the ``train`` and ``val`` keys that ``model_type`` reads on top of BasicSR's SRModel's;
    ``skips_oversize_stages``: its loop skips progressive stages whose patch exceeds ``gt_size`` (with a warning)
    instead of needing them refused; ``needs_process_per_gpu``: ``num_gpu > 1`` needs a launcher (one process
    per GPU), since its batch sizes are per GPU."""
    MODEL_KEYS[model_type] = {'train': {**TRAIN_KEYS, **(train or {})}, 'val': {**VAL_KEYS, **(val or {})},
                              'skips_oversize_stages': skips_oversize_stages,
                              'needs_process_per_gpu': needs_process_per_gpu}


AMP = Key((BOOL, STR), choices=(False, 'bf16', 'fp16'))
GRAD_SCALER = Key(MAP, keys={'init_scale': Key(NUMBER, low=0), 'growth_factor': Key(NUMBER, low=0),
                             'backoff_factor': Key(NUMBER, low=0), 'growth_interval': Key(INT, low=1)})
TILE = Key(MAP, keys={'size': SIZE, 'overlap': COUNT, 'merge': Key(STR, choices=TILE_MERGES)})
MIXING = Key(MAP, keys={'mixup': FLAG, 'mixup_beta': Key(NUMBER, low=0), 'use_identity': FLAG})
register_model_keys('SRModel')
HINT_TRAIN_KEYS = {  # HINTModel's
    'fft_loss_opt': Key(MAP, keys=loss_keys), 'mixing_augs': MIXING, 'use_grad_clip': FLAG,
    'grad_clip_max_norm': Key(NUMBER, low=0), 'skip_nonfinite': FLAG, 'amp': AMP, 'compile': Key((BOOL, MAP)),
    'accum_iter': Key(INT, low=1), 'grad_scaler': GRAD_SCALER,
}
HINT_VAL_KEYS = {'window_size': SIZE, 'tile': TILE}
register_model_keys('HINTModel', train=HINT_TRAIN_KEYS, val=HINT_VAL_KEYS)
register_model_keys('ImageCleanModel', train=HINT_TRAIN_KEYS, skips_oversize_stages=True,  # the authors' name
                    needs_process_per_gpu=True,
                    val={**HINT_VAL_KEYS, 'rgb2bgr': FLAG, 'use_image': FLAG, 'max_minibatch': SIZE})


def model_section(part):
    """``keys`` of the ``train`` or ``val`` section for the file's ``model_type`` (unregistered: any keys)."""
    return lambda section, context: MODEL_KEYS.get(context['options'].get('model_type'), {}).get(part)

PATH_KEYS = {  # basicsr.utils.options and SRModel; the parser fills in the output folders
    'pretrain_network_g': Key(STR, path='file'), 'strict_load_g': FLAG, 'param_key_g': Key(STR),
    'resume_state': Key(STR, path='file'), 'root': Key(STR), 'experiments_root': Key(STR), 'models': Key(STR),
    'training_states': Key(STR), 'log': Key(STR), 'visualization': Key(STR), 'results_root': Key(STR),
}
TOP_KEYS = {
    'name': Key(STR, required=True), 'model_type': Key(STR, required=True), 'scale': Key(INT, low=1),
    'num_gpu': Key((INT, STR), low=0), 'manual_seed': Key(INT), 'find_unused_parameters': FLAG,
    'datasets': Key(MAP, required=True, each=dataset_keys), 'network_g': Key(MAP, required=True),
    'path': Key(MAP, required=True, keys=PATH_KEYS),
    'train': Key(MAP, required='train', keys=model_section('train')),
    'val': Key(MAP, keys=model_section('val')),
    'logger': Key(MAP, required='train', keys={
        'print_freq': Key(WHOLE, low=1, required=True), 'save_checkpoint_freq': Key(WHOLE, low=1, required=True),
        'use_tb_logger': FLAG, 'wandb': Key(MAP, keys={'project': Key(STR), 'resume_id': Key(STR)})}),
    'dist_params': Key(MAP, keys={'backend': Key(STR, choices=('nccl', 'gloo', 'mpi')),
                                  'port': Key(INT, low=1, high=65535)}),
}


# ----------------------------------------------------------------------------- rules tying keys together
def rule_num_gpu(options, is_train):
    if isinstance(options.get('num_gpu'), str) and options['num_gpu'] != 'auto':
        raise OptionsError(f'num_gpu = {options["num_gpu"]!r}: expected an integer >= 0 or auto')


def rule_experiment_name(options, is_train):
    """``name`` becomes experiments/<name>, tb_logger/<name> or results/<name>: one plain folder name."""
    check_plain_name(options['name'], 'name')


def rule_model_type(options, is_train):
    from basicsr.utils.registry import MODEL_REGISTRY
    if options['model_type'] not in MODEL_REGISTRY:
        raise OptionsError(f'model_type = {options["model_type"]!r}: not a registered model (expected one of: '
                           f'{", ".join(sorted(name for name, _ in MODEL_REGISTRY))})')


def rule_training_set(options, is_train):
    """Training needs ``datasets.train`` with its loader sizes; testing needs at least one dataset."""
    datasets = options['datasets']
    if not datasets:
        raise OptionsError('datasets is empty: expected at least one dataset section')
    if not is_train:
        return
    train = datasets.get('train')
    if train is None:
        raise OptionsError(f'datasets.train is missing (found: {", ".join(map(str, datasets))})')
    for name in ('batch_size_per_gpu', 'num_worker_per_gpu'):
        if train.get(name) is None:
            raise OptionsError(f'datasets.train.{name} is missing: expected {_expected(LOADER_KEYS[name])}')


def rule_progressive(options, is_train):
    """``mini_batch_sizes``, ``iters``, ``gt_sizes``: all or none, one length, within the loader's batch and patch."""
    train = options['datasets'].get('train') or {}
    names = ('mini_batch_sizes', 'iters', 'gt_sizes')
    given = {name: train.get(name) for name in names if train.get(name) is not None}
    if given and len(given) < 3:
        raise OptionsError(f'datasets.train: {", ".join(names)} go together; {", ".join(given)} given without '
                           f'{", ".join(name for name in names if name not in given)}')
    if not given:
        return
    if len({len(value) for value in given.values()}) != 1:
        raise OptionsError('datasets.train: mini_batch_sizes, iters and gt_sizes must have one length, got '
                           + ', '.join(f'{name} {list(value)}' for name, value in given.items()))
    batch, patch = train.get('batch_size_per_gpu'), train.get('gt_size')
    if batch is not None and max(given['mini_batch_sizes']) > batch:
        raise OptionsError(f'datasets.train.mini_batch_sizes = {list(given["mini_batch_sizes"])}: each must be <= '
                           f'batch_size_per_gpu ({batch}), the batch the loader delivers')
    skips = MODEL_KEYS.get(options.get('model_type'), {}).get('skips_oversize_stages', False)
    if patch is not None and max(given['gt_sizes']) > patch and not skips:
        raise OptionsError(f'datasets.train.gt_sizes = {list(given["gt_sizes"])}: each must be <= gt_size '
                           f'({patch}), the patch the loader delivers')


def rule_scheduler(options, is_train):
    """Restart schedulers: one weight (and eta_min) per period, and periods covering ``total_iter``."""
    train = options.get('train') or {}
    scheduler = train.get('scheduler') or {}
    periods = scheduler.get('periods')
    if not is_train or periods is None:
        return
    for name in ('restart_weights', 'eta_mins'):
        if scheduler.get(name) is not None and len(scheduler[name]) != len(periods):
            raise OptionsError(f'train.scheduler.{name} = {list(scheduler[name])}: expected one per period '
                               f'({len(periods)} periods)')
    if train.get('total_iter') is not None and sum(periods) < train['total_iter']:
        raise OptionsError(f'train.scheduler.periods = {list(periods)} sum to {sum(periods)}, fewer than '
                           f'train.total_iter ({train["total_iter"]}): the schedule has no learning rate after that')


def rule_test_val(options, is_train):
    if not is_train and not isinstance(options.get('val'), Mapping):
        raise OptionsError('val is missing: testing reads val.save_img (e.g. val: {save_img: true})')


def rule_losses(options, is_train):
    train = options.get('train') or {}
    if is_train and not any(train.get(name) for name in ('pixel_opt', 'perceptual_opt', 'fft_loss_opt')):
        raise OptionsError('train: no loss given (expected pixel_opt, and optionally perceptual_opt or fft_loss_opt)')


def rule_wandb(options, is_train):
    logger = options.get('logger') or {}
    if (logger.get('wandb') or {}).get('project') and not logger.get('use_tb_logger'):
        raise OptionsError('logger.wandb.project needs logger.use_tb_logger: true (BasicSR logs to wandb '
                           'through tensorboard)')


def rule_network(options, is_train):
    from hint_plugin.utils.options import check_network_options
    check_network_options(options['network_g'], 'network_g')


def rule_grad_scaler(options, is_train):
    train = options.get('train') or {}
    if train.get('grad_scaler') is not None and train.get('amp') != 'fp16':
        raise OptionsError(f'train.grad_scaler is only used with train.amp: fp16 (train.amp is {train.get("amp")!r})')


def rule_input_channels(options, is_train):
    """A dataset's ``in_ch`` (the authors' grayscale switch) is the network's ``inp_channels``."""
    inp_channels = options['network_g'].get('inp_channels', 3)
    for name, dataset in options['datasets'].items():
        if dataset.get('in_ch', inp_channels) != inp_channels:
            raise OptionsError(f'datasets.{name}.in_ch is {dataset["in_ch"]} but network_g.inp_channels is '
                               f'{inp_channels}: they must agree (grayscale denoising: both 1)')


def rule_datasets(options, is_train):
    """Each dataset's own rule (:func:`register_dataset_keys`)."""
    for name, dataset in options['datasets'].items():
        rule = DATASET_RULES.get(dataset.get('type'))
        if rule is not None:
            rule(f'datasets.{name}', dataset, dataset_phase(name, dataset), options)


RULES = [rule_num_gpu, rule_experiment_name, rule_model_type, rule_training_set, rule_progressive, rule_scheduler,
         rule_losses, rule_wandb, rule_test_val, rule_network, rule_grad_scaler, rule_input_channels, rule_datasets]


def check_launcher_fits(options, launcher, source='the options'):
    """``num_gpu > 1`` without a launcher (``--launcher none``) makes one process share one batch among the GPUs;
    models whose batch sizes are per GPU (``needs_process_per_gpu``) need one process per GPU."""
    num_gpu = options.get('num_gpu')
    needs_launcher = MODEL_KEYS.get(options.get('model_type'), {}).get('needs_process_per_gpu', False)
    if launcher == 'none' and needs_launcher and _is(INT, num_gpu) and num_gpu > 1:
        raise OptionsError(
            f'{source}: num_gpu: {num_gpu} in one process would share one batch of batch_size_per_gpu x num_gpu '
            "among the GPUs and keep mini_batch_sizes[j] of it in all, not per GPU as in the authors' runs. Launch one "
            f'process per GPU: torchrun --nproc_per_node={num_gpu} tools/train.py -opt <file> --launcher pytorch '
            '(or set num_gpu: 1)')


def check_options(options, is_train, source='the options', check_paths=True):
    """Check a whole option file (as read, before BasicSR's parser adds its keys) against the schema and
    ``RULES``; raise :class:`OptionsError` that names ``source`` (the file), the key and what was expected.

    ``check_paths``: whether files and folders named by the options must exist (off to check a recipe
    without its data). The command line's ``--launcher`` is checked against ``num_gpu`` by
    :func:`check_launcher_fits`.
    """
    if not isinstance(options, Mapping) or not options:
        raise OptionsError(f'{source} holds no options (expected a mapping at the top level)')
    try:
        check_section('', options, TOP_KEYS, {'options': options, 'is_train': is_train, 'check_paths': check_paths})
        for rule in RULES:
            rule(options, is_train)
    except OptionsError as error:
        raise OptionsError(f'{source}: {error}') from None


def check_dataset_options(section, name=None, options=None, check_paths=True):
    """Check one dataset's options (``datasets.<name>`` of a file, or the dict a dataset is built from in
    Python, ``phase`` included) with the same tables and rules as :func:`check_options`; ``options``: the rest
    of the file (its ``scale``). For Python users: the datasets themselves trust their options."""
    name = name or section.get('name') or section.get('phase') or 'dataset'
    phase = dataset_phase(name, section)
    context = {'options': options or {}, 'is_train': phase == 'train', 'check_paths': check_paths}
    where = f'datasets.{name}'
    schema = dataset_keys(name, section, context)
    if schema is not None:
        schema = {**schema, 'name': Key(STR)}  # a dataset built in Python needs no name
    check_section(where, section, schema, context)
    rule = DATASET_RULES.get(section.get('type'))
    if rule is not None:
        rule(where, section, phase, options or {})


INFERENCE_KEYS = {  # the keys of a test option file that tools/inference.py --opt and export_onnx.py read
    'path': {name: PATH_KEYS[name] for name in ('pretrain_network_g', 'param_key_g', 'strict_load_g')},
    'val': {name: HINT_VAL_KEYS[name] for name in ('window_size', 'tile')},
}


def check_network_file(options, source, sections=INFERENCE_KEYS):
    """Check what the commands that only build the network read from an option file (``tools/inference.py``
    ``--opt`` / ``--config``, ``tools/export_onnx.py``): ``network_g`` (:func:`check_network_options`) and, of
    the ``path`` and ``val`` sections, the keys in ``sections`` (other keys are left alone: any test file
    will do). Raises :class:`OptionsError` naming ``source``, the key and what was expected."""
    from hint_plugin.utils.options import check_network_options, network_options
    context = {'options': options, 'is_train': False, 'check_paths': False}  # the weights: read, and named, later
    network = network_options(options, source)  # names the file when there is no network_g with a type
    try:
        check_network_options(network, 'network_g')
        for name, schema in sections.items():
            section = options.get(name)
            if section is None:
                continue
            check_value(name, section, Key(MAP))
            check_section(name, {key: section[key] for key in schema if key in section}, schema, context)
    except OptionsError as error:
        raise OptionsError(f'{source}: {error}') from None

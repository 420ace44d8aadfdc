"""``model_type: ImageCleanModel``: HINTModel under the name of the HINT authors' option files, with their dialect.

What their files say and this model does with it:

* progressive stages whose patch (``gt_sizes[j]``) exceeds the loader's ``gt_size`` run on whole ``gt_size``
  patches with that stage's batch, as the authors' loop does (it only crops smaller patches); a warning names
  those stages (HINTModel refuses such files);
* ``val.use_image``: ``true`` computes the metrics on 8-bit images (BasicSR's way), ``false`` on the network's
  float output, neither rounded nor clipped, scaled to 0-255 (as the authors' ``calculate_psnr`` on tensors
  while the output stays <= 1; their switch to a peak of 255 when a value exceeds 1 is not reproduced);
* ``val.rgb2bgr``: the channel order of the images saved and measured (``true``, the default, is BGR, which
  ``test_y_channel`` expects);
* ``val.max_minibatch``: read by neither the authors' code nor this one (validation runs one image at a time):
  a warning says so;
* ``val.window_size``: the padding multiple of testing (HINTModel);
* ``num_gpu > 1`` without a launcher is refused: one process would split one batch over the GPUs and keep
  ``mini_batch_sizes[j]`` of it in all, where the authors' runs kept that many per GPU; torchrun gives their
  global batch;
* a dataset's ``in_ch`` must equal ``network_g.inp_channels``.
"""
from os import path as osp

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY

from hint_plugin.errors import OptionsError
from hint_plugin.models.hint_model import HINTModel


def float_image(tensor, rgb2bgr=True):
    """``(1, C, H, W)`` float output in [0, 1] -> float64 ``(H, W, C)`` on the 0-255 scale, not rounded, not
    clipped; channels reversed (RGB -> BGR) when ``rgb2bgr`` and C is 3."""
    image = tensor.detach()[0].to(torch.float64).cpu().numpy().transpose(1, 2, 0) * 255.0
    return np.ascontiguousarray(image[..., ::-1]) if rgb2bgr and image.shape[2] == 3 else image


def skipped_stages(gt_sizes, gt_size):
    """1-based numbers of the progressive stages whose patch exceeds ``gt_size``."""
    return [index + 1 for index, size in enumerate(gt_sizes) if size > gt_size]


def check_authors_options(opt):
    """Refuse what cannot be honoured and warn about what is not read (see the module docstring)."""
    if not opt.get('dist') and isinstance(opt.get('num_gpu'), int) and opt['num_gpu'] > 1:
        raise OptionsError(
            f"num_gpu: {opt['num_gpu']} in one process would share one batch of batch_size_per_gpu x num_gpu "
            'among the GPUs and keep mini_batch_sizes[j] of it in all, not per GPU as in the authors\' runs. '
            f"Launch one process per GPU: torchrun --nproc_per_node={opt['num_gpu']} tools/train.py -opt <file> "
            '--launcher pytorch (or set num_gpu: 1)')
    inp_channels = opt['network_g'].get('inp_channels', 3)
    for phase, dataset in (opt.get('datasets') or {}).items():
        if 'in_ch' in dataset and dataset['in_ch'] != inp_channels:
            raise OptionsError(f"datasets.{phase}.in_ch is {dataset['in_ch']} but network_g.inp_channels is "
                                     f'{inp_channels}: they must agree (grayscale denoising: both 1)')
    val = opt.get('val') or {}
    for key in ('rgb2bgr', 'use_image'):
        if not isinstance(val.get(key, True), bool):
            raise OptionsError(f'val.{key} must be true or false, got {val[key]!r}')
    if 'max_minibatch' in val:
        get_root_logger().warning(f"val.max_minibatch ({val['max_minibatch']}) is not read, by the authors' code "
                                  'either: validation runs one image at a time.')


@MODEL_REGISTRY.register()
class ImageCleanModel(HINTModel):
    """:class:`HINTModel` under the authors' model name, reading their option keys (module docstring)."""

    def __init__(self, opt):
        check_authors_options(opt)
        super().__init__(opt)

    def _init_progressive(self, dataset_opt):
        """HINTModel's progressive schedule; stages with a patch above ``gt_size`` take whole ``gt_size`` patches
        (the authors' behaviour) and are named in a warning."""
        gt_size, gt_sizes = dataset_opt.get('gt_size'), dataset_opt.get('gt_sizes')
        if isinstance(gt_size, int) and isinstance(gt_sizes, (list, tuple)):
            skipped = skipped_stages(gt_sizes, gt_size)
            if skipped:
                get_root_logger().warning(
                    f'datasets.train: progressive stage(s) {", ".join(map(str, skipped))} ask for patches of '
                    f'{", ".join(str(gt_sizes[j - 1]) for j in skipped)} above gt_size {gt_size}; as in the '
                    f"authors' loop they train on the loader's {gt_size} x {gt_size} patches (with their own batch "
                    'sizes). Raise gt_size to train on the larger patches.')
                dataset_opt = dict(dataset_opt, gt_sizes=[min(size, gt_size) for size in gt_sizes])
        super()._init_progressive(dataset_opt)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """SRModel's validation, with the metrics on 8-bit images or on the float output (``val.use_image``) and
        the channel order of ``val.rgb2bgr``."""
        val_opt = self.opt['val']
        use_image, rgb2bgr = val_opt.get('use_image', True), val_opt.get('rgb2bgr', True)
        dataset_name = dataloader.dataset.opt['name']
        metrics = val_opt.get('metrics')
        if metrics is not None:
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {name: 0 for name in metrics}
        count = 0
        for val_data in dataloader:
            img_name = osp.splitext(osp.basename(val_data['lq_path'][0]))[0]
            self.feed_data(val_data)
            self.test()
            sr_img = tensor2img([self.output.detach().cpu()], rgb2bgr=rgb2bgr)
            metric_data = {'img': sr_img if use_image else float_image(self.output, rgb2bgr)}
            if hasattr(self, 'gt'):
                metric_data['img2'] = (tensor2img([self.gt.detach().cpu()], rgb2bgr=rgb2bgr) if use_image
                                       else float_image(self.gt, rgb2bgr))
                del self.gt
            del self.lq, self.output
            if save_img:
                if self.opt['is_train']:
                    path = osp.join(self.opt['path']['visualization'], img_name, f'{img_name}_{current_iter}.png')
                else:
                    suffix = val_opt.get('suffix') or self.opt['name']
                    path = osp.join(self.opt['path']['visualization'], dataset_name, f'{img_name}_{suffix}.png')
                imwrite(sr_img, path)
            if metrics is not None:
                for name, metric_opt in metrics.items():
                    self.metric_results[name] += calculate_metric(metric_data, metric_opt)
            count += 1
        if metrics is not None and count:
            for name in self.metric_results:
                self.metric_results[name] /= count
                self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

"""``model_type: ImageCleanModel``: HINTModel under the name of the HINT authors' option files, with their dialect.

What their files say and this model does with it:

* progressive stages whose patch (``gt_sizes[j]``) exceeds the loader's ``gt_size`` run on whole ``gt_size``
  patches with that stage's batch, as the authors' loop does (it only crops smaller patches); a warning names
  those stages (HINTModel refuses such files);
* ``val.use_image``: ``true`` computes the metrics on 8-bit images (BasicSR's way), ``false`` on the network's
  float output clipped to [0, 1] (``tensor2img`` clips it in place in the authors' loop) but not rounded, scaled
  to 0-255, as the authors' ``calculate_psnr`` on tensors;
* validation is otherwise SRModel's (``val.pbar``, ``val.suffix``, the best results);
* ``val.rgb2bgr``: the channel order of the images saved and measured (``true``, the default, is BGR, which
  ``test_y_channel`` expects);
* ``val.max_minibatch``: read by neither the authors' code nor this one (validation runs one image at a time):
  a warning says so;
* ``val.window_size``: the padding multiple of testing (HINTModel);
* ``num_gpu > 1`` without a launcher is refused: one process would split one batch over the GPUs and keep
  ``mini_batch_sizes[j]`` of it in all, where the authors' runs kept that many per GPU; torchrun gives their
  global batch;
* a dataset's ``in_ch`` must equal ``network_g.inp_channels``.

The refusals are the option schema's (:mod:`hint_plugin.utils.option_schema`: ``check_launcher_fits``,
``rule_input_channels``), run when the file is read; this model trusts its options.
"""
from collections import OrderedDict

import numpy as np
import torch
from basicsr.metrics import calculate_metric
from basicsr.utils import get_root_logger
from basicsr.utils.registry import MODEL_REGISTRY

from hint_plugin.models.hint_model import HINTModel


def float_image(tensor, rgb2bgr=True):
    """``(1, C, H, W)`` float output in [0, 1] -> float64 ``(H, W, C)`` on the 0-255 scale, not rounded, not
    clipped; channels reversed (RGB -> BGR) when ``rgb2bgr`` and C is 3."""
    image = tensor.detach()[0].to(torch.float64).cpu().numpy().transpose(1, 2, 0) * 255.0
    return np.ascontiguousarray(image[..., ::-1]) if rgb2bgr and image.shape[2] == 3 else image


def skipped_stages(gt_sizes, gt_size):
    """1-based numbers of the progressive stages whose patch exceeds ``gt_size``."""
    return [index + 1 for index, size in enumerate(gt_sizes) if size > gt_size]


def warn_unread_options(opt):
    """Warn about what the authors' files give and nothing reads (see the module docstring)."""
    val = opt.get('val') or {}
    if 'max_minibatch' in val:
        get_root_logger().warning(f"val.max_minibatch ({val['max_minibatch']}) is not read, by the authors' code "
                                  'either: validation runs one image at a time.')


@MODEL_REGISTRY.register()
class ImageCleanModel(HINTModel):
    """:class:`HINTModel` under the authors' model name, reading their option keys (module docstring)."""

    def __init__(self, opt):
        warn_unread_options(opt)
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
        """SRModel's validation (``val.pbar``, the saved images, the best results) in the authors' dialect:
        ``val.rgb2bgr`` through :meth:`get_current_visuals`; with ``val.use_image: false`` SRModel's loop runs
        without metrics and :meth:`get_current_visuals` measures each image on the float output instead."""
        val_opt = self.opt['val']
        metrics = val_opt.get('metrics')
        if metrics is None or val_opt.get('use_image', True):
            return super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        dataset_name = dataloader.dataset.opt['name']
        self._initialize_best_metric_results(dataset_name)
        self.metric_results, self._float_metrics, self._measured = dict.fromkeys(metrics, 0), metrics, 0
        val_opt['metrics'] = None
        try:
            super().nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            val_opt['metrics'], self._float_metrics = metrics, None
        for name in metrics:
            self.metric_results[name] /= max(self._measured, 1)
            self._update_best_metric_result(dataset_name, name, self.metric_results[name], current_iter)
        self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def get_current_visuals(self):
        """SRModel's visuals, colour channels reversed when ``val.rgb2bgr`` is false (BasicSR's ``tensor2img``
        turns RGB into BGR, so the images saved and measured come out RGB); during a ``val.use_image: false``
        validation the current image's metrics are added here, on :func:`float_image` of the output clipped to
        [0, 1] and of the gt."""
        visuals = super().get_current_visuals()
        rgb2bgr = (self.opt.get('val') or {}).get('rgb2bgr', True)
        if getattr(self, '_float_metrics', None):
            data = {'img': float_image(visuals['result'].clamp(0, 1), rgb2bgr)}
            if 'gt' in visuals:
                data['img2'] = float_image(visuals['gt'], rgb2bgr)
            for name, metric_opt in self._float_metrics.items():
                self.metric_results[name] += calculate_metric(data, metric_opt)
            self._measured += 1
        if not rgb2bgr:
            visuals = OrderedDict((key, image.flip(1) if image.shape[1] == 3 else image)
                                  for key, image in visuals.items())
        return visuals

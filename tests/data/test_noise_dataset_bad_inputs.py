"""Bad data and options given to the Gaussian-noise datasets (the plugin's GaussianNoiseDataset and the authors'
Dataset_GaussianDenoising): each is a named error saying which file, key or option and what was expected.

Option problems are :class:`OptionsError` from the schema when the file is read (the entry points exit 2);
data problems are :class:`DataError` (``LmdbError`` for LMDBs), which the entry points turn into exit 1.
Each test is named by what it feeds."""
import cv2
import numpy as np
import pytest
from basicsr.utils.lmdb_util import make_lmdb_from_imgs

import hint_plugin.data  # noqa: F401  (registers the datasets)
from hint_plugin.data.authors_denoising_dataset import Dataset_GaussianDenoising
from hint_plugin.data.gaussian_noise_dataset import GaussianNoiseDataset
from hint_plugin.errors import DataError, LmdbError, OptionsError
from hint_plugin.utils.option_schema import check_dataset_options, check_options

DATASETS = {
    'plugin': (GaussianNoiseDataset, {}),
    'authors': (Dataset_GaussianDenoising, {'dataroot_lq': 'none', 'in_ch': 3}),
}


def write_image(path, size=(24, 20), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8))
    return path


def val_options(kind, root, **extra):
    return {'name': 'val', 'phase': 'val', 'type': DATASETS[kind][0].__name__, 'dataroot_gt': str(root),
            'io_backend': {'type': 'disk'}, 'sigma_test': 25, **DATASETS[kind][1], **extra}


def build(kind, root, **extra):
    return DATASETS[kind][0](val_options(kind, root, **extra))


def lmdb_of(folder, target):
    names = sorted(path.name for path in folder.iterdir())
    make_lmdb_from_imgs(str(folder), str(target), names, [name.rsplit('.', 1)[0] for name in names], map_size=1 << 20)
    return target


def assert_runtime_error(error):
    """A data problem: a HINTError the entry points exit 1 on, not an option problem (exit 2)."""
    assert isinstance(error.value, DataError) and not isinstance(error.value, OptionsError)


@pytest.mark.parametrize('kind', DATASETS)
def test_empty_folder(tmp_path, kind):
    (tmp_path / 'clean').mkdir()
    (tmp_path / 'clean' / 'notes.txt').write_text('no image here')
    with pytest.raises(DataError, match=rf"dataroot_gt '{tmp_path / 'clean'}' holds no images \(expected files "
                                        r'ending in .bmp') as error:
        build(kind, tmp_path / 'clean')
    assert_runtime_error(error)


@pytest.mark.parametrize('kind', DATASETS)
def test_file_that_is_no_image(tmp_path, kind):
    write_image(tmp_path / 'clean' / 'a.png')
    (tmp_path / 'clean' / 'b.png').write_bytes(b'not a png at all')
    dataset = build(kind, tmp_path / 'clean')
    assert dataset[0]['gt'].shape[-2:] == (24, 20)
    with pytest.raises(DataError, match=rf"cannot decode the file '{tmp_path / 'clean' / 'b.png'}' \(16 bytes\): "
                                        'truncated, corrupted or not an image') as error:
        dataset[1]
    assert_runtime_error(error)


@pytest.mark.parametrize('extension', ['.png', '.jpg'])
@pytest.mark.parametrize('kind', DATASETS)
def test_truncated_image(tmp_path, kind, extension):
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    content = cv2.imencode(extension, image)[1].tobytes()
    (tmp_path / 'clean').mkdir()
    (tmp_path / 'clean' / f'a{extension}').write_bytes(content[:len(content) // 2])
    with pytest.raises(DataError, match=rf"cannot decode the file '.*a\{extension}' \({len(content) // 2} bytes\)"):
        build(kind, tmp_path / 'clean')[0]


def test_image_smaller_than_the_training_gt_size(tmp_path):
    write_image(tmp_path / 'clean' / 'a.png', size=(24, 20))
    dataset = GaussianNoiseDataset({'phase': 'train', 'dataroot_gt': str(tmp_path / 'clean'), 'gt_size': 32,
                                    'sigma_range': [0, 50]})
    with pytest.raises(DataError, match=r"the file '.*a\.png' is 24x20, smaller than the training crop gt_size 32; "
                                        'remove it or lower gt_size') as error:
        dataset[0]
    assert_runtime_error(error)


def test_image_smaller_than_the_authors_validation_crop(tmp_path):
    write_image(tmp_path / 'clean' / 'a.png', size=(24, 20))
    dataset = build('authors', tmp_path / 'clean', gt_size=22)
    with pytest.raises(DataError, match=r"the file '.*a\.png' is 24x20, smaller than the validation crop gt_size 22"):
        dataset[0]
    assert build('authors', tmp_path / 'clean', gt_size=20)[0]['gt'].shape == (3, 20, 20)


@pytest.mark.parametrize('kind', DATASETS)
def test_lmdb_key_listed_in_meta_info_but_missing(tmp_path, kind):
    write_image(tmp_path / 'clean' / 'a.png')
    lmdb = lmdb_of(tmp_path / 'clean', tmp_path / 'clean.lmdb')
    with open(lmdb / 'meta_info.txt', 'a', encoding='utf-8') as meta_info:
        meta_info.write('ghost.png (24,20,3) 1\n')
    dataset = build(kind, lmdb, io_backend={'type': 'lmdb'})
    with pytest.raises(LmdbError, match=rf"the LMDB key 'ghost' of '{lmdb}' is listed in meta_info.txt but not in "
                                        'the LMDB') as error:
        dataset[dataset.paths.index('ghost')]
    assert_runtime_error(error)


@pytest.mark.parametrize('kind', DATASETS)
def test_lmdb_without_meta_info(tmp_path, kind):
    write_image(tmp_path / 'clean' / 'a.png')
    lmdb = lmdb_of(tmp_path / 'clean', tmp_path / 'clean.lmdb')
    (lmdb / 'meta_info.txt').unlink()
    with pytest.raises(LmdbError, match=rf"dataroot_gt '{lmdb}' is not a BasicSR LMDB: no meta_info.txt in it") as error:
        build(kind, lmdb, io_backend={'type': 'lmdb'})
    assert_runtime_error(error)


@pytest.mark.parametrize('kind', DATASETS)
def test_disk_backend_given_an_lmdb_folder(tmp_path, kind):
    write_image(tmp_path / 'clean' / 'a.png')
    lmdb = lmdb_of(tmp_path / 'clean', tmp_path / 'clean.lmdb')
    check_dataset_options(val_options(kind, lmdb, io_backend={'type': 'lmdb'}))
    with pytest.raises(OptionsError, match=rf"datasets.val.dataroot_gt = '{lmdb}' is an LMDB \(it holds data.mdb\) "
                                           r'but io_backend reads files: set io_backend: \{type: lmdb\}'):
        check_dataset_options(val_options(kind, lmdb))


@pytest.mark.parametrize('kind', DATASETS)
def test_test_option_file_without_sigma_test(tmp_path, kind):
    """Caught when the test command reads the file (exit 2), before any dataset is built."""
    write_image(tmp_path / 'clean' / 'a.png')
    dataset = {key: value for key, value in val_options(kind, tmp_path / 'clean').items() if key != 'phase'}
    options = {'name': 'noise_test', 'model_type': 'HINTModel', 'num_gpu': 0, 'network_g': {'type': 'HINT'},
               'path': {}, 'val': {'save_img': False}, 'datasets': {'test_1': dataset}}
    check_options(options, is_train=False, source='test.yml')
    del dataset['sigma_test']
    with pytest.raises(OptionsError, match='test.yml: datasets.test_1.sigma_test is missing: expected the noise '
                                           'level .* that phase test adds'):
        check_options(options, is_train=False, source='test.yml')

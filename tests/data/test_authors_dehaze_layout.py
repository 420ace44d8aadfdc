"""The authors' dehazing layout: one root (both dataroots) holding their list files, read as their dataset reads
them; two folders keep the folder pairing."""
import cv2
import numpy as np
import pytest

from hint_plugin.data.authors_paired_dataset import Dataset_PairedImage_dehazeSOT
from hint_plugin.errors import DataError


def dataset(root, phase, gt=None):
    return Dataset_PairedImage_dehazeSOT({
        'name': 'Set', 'type': 'Dataset_PairedImage_dehazeSOT', 'phase': phase, 'scale': 1, 'gt_size': 8,
        'geometric_augs': False, 'dataroot_lq': str(root), 'dataroot_gt': str(gt or root),
        'io_backend': {'type': 'disk'}})


def write(path, size=(12, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((*size, 3), 128, np.uint8))


def test_one_root_is_read_through_the_training_list_as_the_authors_code_reads_it(tmp_path):
    (tmp_path / 'hazy_outside.txt').write_text('synthetic/part4/8961_0.95_0.08.jpg\n\npart1/12_0.8_0.2.jpg\n')
    pairs = dataset(tmp_path, 'train').paths
    assert pairs == [
        {'lq_path': str(tmp_path / 'Dehaze/synthetic/part4/8961_0.95_0.08.jpg'),
         'gt_path': str(tmp_path / 'Dehaze/original/8961.jpg')},
        {'lq_path': str(tmp_path / 'Dehaze/part1/12_0.8_0.2.jpg'), 'gt_path': str(tmp_path / 'Dehaze/original/12.jpg')}]


@pytest.mark.parametrize('phase', ['val', 'test'])
def test_one_root_is_read_through_the_test_list_in_validation_and_testing(tmp_path, phase):
    (tmp_path / 'haze_test.txt').write_text('1917_0.95_0.2.jpg\n')
    write(tmp_path / 'outdoor/hazy/1917_0.95_0.2.jpg')
    write(tmp_path / 'outdoor/gt/1917.png')
    data = dataset(tmp_path, phase)
    assert data.paths == [{'lq_path': str(tmp_path / 'outdoor/hazy/1917_0.95_0.2.jpg'),
                           'gt_path': str(tmp_path / 'outdoor/gt/1917.png')}]
    item = data[0]
    assert item['lq'].shape == item['gt'].shape == ((3, 8, 8) if phase == 'val' else (3, 12, 12))


def test_one_root_without_the_list_file_is_named(tmp_path):
    write(tmp_path / 'Dehaze/original/11.jpg')
    with pytest.raises(DataError, match=r"hazy_outside.txt': No such file or directory \(dataroot_lq and "
                                        'dataroot_gt name one folder'):
        dataset(tmp_path, 'train')


def test_one_root_with_an_empty_list_is_named(tmp_path):
    (tmp_path / 'haze_test.txt').write_text('\n')
    with pytest.raises(DataError, match="haze_test.txt' names no hazy image"):
        dataset(tmp_path, 'val')


def test_clear_image_missing_from_the_authors_layout_is_named_when_read(tmp_path):
    (tmp_path / 'haze_test.txt').write_text('7_0.8_0.1.jpg\n')
    write(tmp_path / 'outdoor/hazy/7_0.8_0.1.jpg')
    with pytest.raises(DataError, match=r"gt file '.*outdoor/gt/7.png'"):
        dataset(tmp_path, 'test')[0]


def test_two_folders_keep_the_folder_pairing(tmp_path):
    write(tmp_path / 'hazy/part1/3_0.8_0.1.jpg')
    write(tmp_path / 'clear/3.png')
    (tmp_path / 'hazy' / 'haze_test.txt').write_text('ignored_1.jpg\n')  # a list file only counts in one root
    assert dataset(tmp_path / 'hazy', 'val', gt=tmp_path / 'clear').paths == [
        {'lq_path': str(tmp_path / 'hazy/part1/3_0.8_0.1.jpg'), 'gt_path': str(tmp_path / 'clear/3.png')}]

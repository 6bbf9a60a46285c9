"""The file layout that dataset.py reads, the example-data command, and the errors for a wrong layout."""

import subprocess
import sys

import pytest

import train
from conftest import PROJECT
from dataset import DATA_CONFIG, build_datasets, make_example
from utils import RunError


def test_example_data_is_read_back(tmp_path, config):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=40)
    train_set, valid_set = build_datasets({**config, 'dataset_dir': str(tmp_path / 'data')})
    assert len(train_set) + len(valid_set) == 40


def test_make_example_command_writes_the_layout(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', str(tmp_path / 'd'),
                             '--n_samples', '12'], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'wrote 12 samples' in result.stdout
    assert any((tmp_path / 'd').iterdir())


@pytest.mark.parametrize('n_samples', ['0', '-3'])
def test_make_example_command_refuses_too_few_samples_and_writes_nothing(tmp_path, n_samples):
    result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', str(tmp_path / 'd'),
                             '--n_samples', n_samples], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr == f'error: n_samples must be at least 2 (one to train on, one to validate), got {n_samples}\n'
    assert not (tmp_path / 'd').exists()


def test_make_example_never_overwrites(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'mine.txt').write_text('keep me')
    with pytest.raises(RunError, match='not empty'):
        make_example(tmp_path / 'd', DATA_CONFIG, n_samples=10)
    assert (tmp_path / 'd' / 'mine.txt').read_text() == 'keep me'
    with pytest.raises(RunError, match="'.*mine.txt' is a file; choose a new folder"):
        make_example(tmp_path / 'd' / 'mine.txt', DATA_CONFIG, n_samples=10)
    assert (tmp_path / 'd' / 'mine.txt').read_text() == 'keep me'


def test_missing_dataset_dir_names_the_layout_and_the_command(workdir, capsys):
    with pytest.raises(RunError) as error:
        train.main(['--dataset_dir', 'nowhere', '--n_epoch', '1'])
    message = str(error.value)
    assert 'nowhere' in message and 'expected' in message and 'python dataset.py --make-example' in message
    # the empty run folders made for this run are removed again
    assert not any((workdir / 'loggers').iterdir()) and not any((workdir / 'checkpoints').iterdir())


def test_wrong_layout_is_a_clear_error(tmp_path, config):
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'stray.txt').write_text('not data')
    with pytest.raises(RunError, match='expected'):
        build_datasets({**config, 'dataset_dir': str(tmp_path / 'data')})


def test_a_file_as_dataset_dir_is_a_clear_error(tmp_path, config):
    (tmp_path / 'notes.txt').write_text('not data\n')
{%- if cookiecutter.dataset == 'image_folder' %}
    with pytest.raises(RunError, match="dataset_dir '.*notes.txt' is not a folder; expected"):
{%- else %}
    with pytest.raises(RunError, match='notes.txt'):
{%- endif %}
        build_datasets({**config, 'dataset_dir': str(tmp_path / 'notes.txt')})

{%- set classification = cookiecutter.task == 'classification' %}
{%- if cookiecutter.dataset == 'synthetic' -%}
import subprocess
import sys

{% endif -%}
import pytest
import torch

{% if cookiecutter.dataset == 'synthetic' -%}
from conftest import PROJECT
{% endif -%}
from dataset import build_datasets, collate_fn, split
from utils import RunError


@pytest.fixture
def datasets(config, data_args):
    args = dict(zip(data_args[::2], data_args[1::2]))
    config = {**config, **{k[2:]: type(config[k[2:]])(v) for k, v in args.items() if k[2:] in config}}
    return build_datasets(config), config


def test_items_have_the_right_shapes_and_dtypes(datasets):
    (train_set, valid_set), config = datasets
    x, y = train_set[0]
    assert x.dtype == torch.float32
{%- if cookiecutter.model == 'transformer' %}
    assert x.dim() == 2 and x.shape[1] == config['num_features']
{%- elif cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' %}
    assert x.shape == (config['image_channels'], config['image_size'], config['image_size'])
{%- else %}
    assert x.shape == (config['num_features'],)
{%- endif %}
{%- if classification %}
    assert y.dtype == torch.int64 and y.shape == () and 0 <= int(y) < config['num_classes']
{%- else %}
    assert y.dtype == torch.float32 and y.shape == (1,)
{%- endif %}


def test_split_is_seeded_disjoint_and_complete(datasets):
    (train_set, valid_set), config = datasets
    again, _ = build_datasets(config)
    assert train_set.indices == again.indices
    assert not set(train_set.indices) & set(valid_set.indices)
    assert len(train_set) + len(valid_set) == len(train_set.dataset)
    assert len(valid_set) == round(len(train_set.dataset) * config['valid_ratio'])
    other, _ = split(train_set.dataset, config['valid_ratio'], config['seed'] + 1)
    assert other.indices != train_set.indices


def test_batches_collate(datasets):
    (train_set, _), _ = datasets
    loader = torch.utils.data.DataLoader(train_set, batch_size=5, collate_fn=collate_fn)
    *inputs, target = next(iter(loader))
    assert len(target) == 5 and inputs[0].shape[0] == 5
{%- if cookiecutter.model == 'transformer' %}
    frames, padding_mask = inputs
    lengths = torch.tensor([len(train_set[i][0]) for i in range(5)])
    assert torch.equal((~padding_mask).sum(1), lengths)
{%- endif %}


def test_too_few_samples_for_a_split_is_a_clear_error(datasets):
    (train_set, _), _ = datasets
    with pytest.raises(RunError, match='too few'):
        split(torch.utils.data.Subset(train_set, [0]), 0.2, 0)
{%- if cookiecutter.dataset == 'synthetic' and cookiecutter.model == 'cnn' %}


def test_upsample_matches_bilinear_interpolation():
    from dataset import upsample

    images = torch.randn(5, 3, 4, 4)
    expected = torch.nn.functional.interpolate(images, size=(32, 32), mode='bilinear', align_corners=False)
    torch.testing.assert_close(upsample(images, 32), expected)
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' %}


def test_dataset_py_as_a_command_says_there_is_no_example_to_write(tmp_path):
    result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', 'data'], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith('error: the synthetic reader needs no files') and result.stderr.count('\n') == 1
    assert not any(tmp_path.iterdir())
{%- endif %}

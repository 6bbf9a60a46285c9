"""The model. Replace it with your own: train.py needs MODEL_CONFIG, SHAPE_KEYS, check_model_config(config) and
build_model(config)."""
{%- set output_key = "config['num_classes']" if cookiecutter.task == 'classification' else '1' %}
{%- set output_keys = "'num_classes', " if cookiecutter.task == 'classification' else '' %}
{%- set scales_features = cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] %}
{%- set scales_targets = cookiecutter.task == 'regression' %}

{% if cookiecutter.model == 'transformer' -%}
import math

import torch
{% elif scales_features or scales_targets -%}
import torch
{% endif -%}
from torch import nn

from runfiles import RunError
from utils import check_minimums

# The model's hyperparameters; train.py merges them into its config dict, and each comment is its --help.
MODEL_CONFIG = {
{%- if cookiecutter.model == 'mlp' %}
    'hidden_dim': 256,  # width of the hidden layers
    'n_layers': 2,  # hidden layers (0: a linear model)
{%- elif cookiecutter.model == 'cnn' %}
    'base_channels': 32,  # channels of the first convolution block; each later block doubles them
{%- else %}
    'd_model': 128,  # width of the transformer layers (a multiple of n_heads)
    'n_heads': 4,  # attention heads
    'n_layers': 2,  # transformer encoder layers
{%- endif %}
    'dropout': 0.1,  # dropout probability, 0 to below 1
}

# Config keys that fix the shape of the weights: resume refuses to change them.
{%- if cookiecutter.model == 'mlp' and cookiecutter.dataset == 'image_folder' %}
SHAPE_KEYS = ({{ output_keys }}'image_channels', 'image_size', 'hidden_dim', 'n_layers')
{%- elif cookiecutter.model == 'mlp' %}
SHAPE_KEYS = ({{ output_keys }}'num_features', 'hidden_dim', 'n_layers')
{%- elif cookiecutter.model == 'cnn' %}
SHAPE_KEYS = ({{ output_keys }}'image_channels', 'base_channels')
{%- else %}
SHAPE_KEYS = ({{ output_keys }}'num_features', 'd_model', 'n_heads', 'n_layers')
{%- endif %}


def check_model_config(config):
    """Reject values the model cannot be built with, in one line, before train.py writes anything."""
{%- if cookiecutter.model == 'mlp' %}
    check_minimums(config, {'hidden_dim': 1, 'n_layers': 0})
{%- elif cookiecutter.model == 'cnn' %}
    check_minimums(config, {'base_channels': 1})
{%- else %}
    check_minimums(config, {'d_model': 1, 'n_heads': 1, 'n_layers': 1})
    d_model, n_heads = config['d_model'], config['n_heads']
    if d_model % n_heads:
        raise RunError(f'd_model must be a multiple of n_heads ({n_heads}), got {d_model}; '
                       f'e.g. --d_model {math.ceil(d_model / n_heads) * n_heads}')
{%- endif %}
    if not 0 <= config['dropout'] < 1:
        raise RunError(f"dropout must be at least 0 and below 1, got {config['dropout']}")
{%- if scales_features or scales_targets %}


def fit_mean_and_std(mean, std, values):
    """Set the buffers `mean` and `std` to the values' mean and std per column (a constant column keeps std 1:
    it is only shifted). float32 is accurate enough here (about 5e-8 relative on 2M rows): no float64 copy."""
    with torch.no_grad():
        values_std, values_mean = torch.std_mean(values.float(), dim=0, correction=0)
        mean.copy_(values_mean.view_as(mean))
        std.copy_(torch.where(values_std > 0, values_std, 1.0).view_as(std))
{%- endif %}
{%- macro scaling_buffers(name, size, values, first=True) %}
        # Scaling of {{ values }}: the training split's mean and std (fit_{{ name }}_scaling).
{%- if first %}
        # Saved with the weights: resume, --init_from and predict.py scale as in training. Until fitted: no scaling.
{%- endif %}
        self.register_buffer('{{ name }}_mean', torch.zeros({{ size }}))
        self.register_buffer('{{ name }}_std', torch.ones({{ size }}))
{%- endmacro %}
{%- macro fit_method(name, values, docstring, columns='') %}

    def fit_{{ name }}_scaling(self, {{ values }}):
        """{{ docstring }}"""
        fit_mean_and_std(self.{{ name }}_mean, self.{{ name }}_std, {{ columns or values }})
{%- endmacro %}
{%- if cookiecutter.dataset == 'image_folder' %}
{%- set feature_buffers = scaling_buffers('feature', 'image_channels, 1, 1', 'each channel') %}
{%- set feature_method = fit_method('feature', 'images', "Scale each channel to mean 0 and std 1 inside the model, from a batch of training images (train.py).", 'images.movedim(1, -1).reshape(-1, images.shape[1])') %}
{%- elif cookiecutter.dataset == 'sequence' %}
{%- set feature_buffers = scaling_buffers('feature', 'feature_dim', 'each feature, over real frames') %}
{%- set feature_method = fit_method('feature', 'frames', "Scale each feature to mean 0 and std 1 inside the model, from training sequences' real frames (train.py).") %}
{%- else %}
{%- set feature_buffers = scaling_buffers('feature', 'in_features', 'each feature') %}
{%- set feature_method = fit_method('feature', 'inputs', "Scale each column to mean 0 and std 1 inside the model, from the training split's inputs (train.py).") %}
{%- endif %}
{%- set target_buffers = scaling_buffers('target', 'num_outputs', 'the target, learnt near 0 and 1', first=not scales_features) %}
{%- set target_method = fit_method('target', 'targets', "Scale the target to mean 0 and std 1 inside the model, from the training split's targets (train.py).") %}
{#- each model's scaling buffers, then its fit methods: the same members in every model that scales #}
{%- set scaling_members = (feature_buffers if scales_features else '') ~ (target_buffers if scales_targets else '')
                          ~ (feature_method if scales_features else '') ~ (target_method if scales_targets else '') %}
{%- set to_target_units = ' * self.target_std + self.target_mean' if cookiecutter.task == 'regression' else '' %}
{%- if cookiecutter.model == 'mlp' %}


class MLP(nn.Module):
{%- if cookiecutter.dataset == 'csv' and cookiecutter.task == 'regression' %}
    """Standardize the features, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head whose
    output is scaled back to the target's units."""
{%- elif cookiecutter.dataset == 'csv' %}
    """Standardize the features, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head."""
{%- elif cookiecutter.dataset == 'image_folder' and cookiecutter.task == 'regression' %}
    """Standardize each channel, flatten, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head whose
    output is scaled back to the target's units."""
{%- elif cookiecutter.dataset == 'image_folder' %}
    """Standardize each channel, flatten, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head."""
{%- elif cookiecutter.task == 'regression' %}
    """Flatten, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head whose output is scaled back
    to the target's units."""
{%- else %}
    """Flatten, then `n_layers` hidden Linear-GELU-Dropout blocks, then a linear head."""
{%- endif %}

    def __init__(self, in_features, hidden_dim, n_layers, num_outputs, dropout{{ ', image_channels' if cookiecutter.dataset == 'image_folder' }}):
        super().__init__()
        layers = [nn.Flatten()]
        width = in_features
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden_dim), nn.GELU(), nn.Dropout(dropout)]
            width = hidden_dim
        layers.append(nn.Linear(width, num_outputs))
        self.net = nn.Sequential(*layers)
{{- scaling_members }}

    def forward(self, x):
{%- if scales_features %}
        return self.net((x - self.feature_mean) / self.feature_std){{ to_target_units }}
{%- else %}
        return self.net(x){{ to_target_units }}
{%- endif %}


def build_model(config):
{%- if cookiecutter.dataset == 'image_folder' %}
    in_features = config['image_channels'] * config['image_size'] ** 2
{%- else %}
    in_features = config['num_features']
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}
    return MLP(in_features, config['hidden_dim'], config['n_layers'], {{ output_key }}, config['dropout'],
               config['image_channels'])
{%- else %}
    return MLP(in_features, config['hidden_dim'], config['n_layers'], {{ output_key }}, config['dropout'])
{%- endif %}
{%- elif cookiecutter.model == 'cnn' %}


def conv_block(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SmallCNN(nn.Module):
{%- if scales_features %}
    """Standardize each channel, then three conv blocks (C, 2C, 4C channels, each halving the size), global
    average pooling, linear head{{ " whose output is scaled back to the target's units" if scales_targets }}."""
{%- elif scales_targets %}
    """Three conv blocks (C, 2C, 4C channels, each halving the size), global average pooling, linear head whose
    output is scaled back to the target's units."""
{%- else %}
    """Three conv blocks (C, 2C, 4C channels, each halving the size), global average pooling, linear head."""
{%- endif %}

    def __init__(self, image_channels, base_channels, num_outputs, dropout):
        super().__init__()
        c = base_channels
        self.features = nn.Sequential(conv_block(image_channels, c), conv_block(c, 2 * c), conv_block(2 * c, 4 * c))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(4 * c, num_outputs))
{{- scaling_members }}

    def forward(self, x):
{%- if scales_features %}
        x = (x - self.feature_mean) / self.feature_std
{%- endif %}
        return self.head(self.features(x)){{ to_target_units }}


def build_model(config):
    return SmallCNN(config['image_channels'], config['base_channels'], {{ output_key }}, config['dropout'])
{%- else %}


class SinusoidalPositions(nn.Module):
    """Fixed sine/cosine position encodings, computed for whatever length comes in."""

    def __init__(self, d_model):
        super().__init__()
        self.register_buffer('inv_freq', torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model)),
                             persistent=False)

    def forward(self, x):
        position = torch.arange(x.shape[1], device=x.device, dtype=x.dtype).unsqueeze(1)
        angles = position * self.inv_freq.to(x.dtype)
        encoding = torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, : x.shape[-1]]
        return x + encoding


class TransformerEncoderModel(nn.Module):
    """Frames (batch, frames, feature_dim){{ ', standardized,' if scales_features else '' }} -> Transformer encoder -> mean over
    real frames -> head{{ " -> the target's units" if scales_targets else '' }}.

    `padding_mask` is True at padded frames, as the dataset's collate_fn builds it.
    """

    def __init__(self, feature_dim, d_model, n_heads, n_layers, num_outputs, dropout):
        super().__init__()
        self.input_proj = nn.Linear(feature_dim, d_model)
        self.positions = SinusoidalPositions(d_model)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_outputs)
{{- scaling_members }}

    def forward(self, frames, padding_mask):
{%- if scales_features %}
        # padding stays 0: standardized, a large feature mean would make it large enough to overflow float16 (AMP)
        frames = ((frames - self.feature_mean) / self.feature_std).masked_fill(padding_mask.unsqueeze(-1), 0)
{%- endif %}
        x = self.encoder(self.positions(self.input_proj(frames)), src_key_padding_mask=padding_mask)
        keep = (~padding_mask).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.head(self.norm(pooled)){{ to_target_units }}


def build_model(config):
    return TransformerEncoderModel(config['num_features'], config['d_model'], config['n_heads'], config['n_layers'],
                                   {{ output_key }}, config['dropout'])
{%- endif %}

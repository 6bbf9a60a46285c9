{%- set classification = cookiecutter.task == 'classification' %}
{%- set folder_kind = 'class' if classification else 'target value' %}
{%- set kind = 'sequence' if cookiecutter.model == 'transformer' else ('image' if cookiecutter.model == 'cnn' or cookiecutter.dataset == 'image_folder' else 'vector') %}
{%- set minimums = (["'n_samples': 2"] if cookiecutter.dataset == 'synthetic' else [])
    + (["'image_channels': 1", "'image_size': 8"] if kind == 'image' else ["'num_features': 1"])
    + (["'max_frames': 1"] if kind == 'sequence' else []) + (["'num_classes': 2"] if classification else [])
    + (["'random_shift': 0"] if kind == 'image' else []) -%}
"""The data. Edit it for your own: train.py needs DATA_CONFIG, SPLIT_KEYS, check_data_config(config),
build_datasets(config){{ ', collate_fn and augment(images, flip, shift)' if kind == 'image' else ' and collate_fn' }}.
A dataset may list warning lines in `.warnings` (data that reads, but probably not as meant): train.py writes them
to train.log when a new run starts, and predict.py prints them.
{%- if cookiecutter.dataset == 'synthetic' %}

The synthetic dataset needs no files: it draws {{ 'labelled samples around one random centre per class' if classification else 'samples whose target is a smooth function of the input' }}
from a generator seeded by config['seed'], so the data is the same on every run with that seed. The task
itself does not depend on the seed or n_samples: predict.py's fresh samples come from the task a model learned.
{%- elif cookiecutter.dataset == 'csv' %}

Layout under config['dataset_dir']:
    data.csv    a header row, then one row per sample: the feature columns, plus the label
                column named by config['label_column'], and the id column config['id_column'] if
                set (the samples' ids, not a feature).
                {{ 'Labels are integers 0..num_classes-1 or class names.' if classification else 'Labels are numbers.' }}
{%- elif cookiecutter.dataset == 'image_folder' %}

Layout under config['dataset_dir']:
{%- if classification %}
    <class name>/<images>     one folder per class; classes are numbered in sorted order
{%- else %}
    <target value>/<images>   one folder per target value, named as a number (e.g. 0.25/)
{%- endif %}
Images in subfolders of those folders count too.
Images (.png, .jpg, .jpeg, .jpe, .jfif, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm, .pbm, .pnm, .tga) are read with
Pillow, turned upright by their EXIF orientation, converted to image_channels (1: L, 3: RGB, 4: RGBA) and resized to
image_size x image_size: the whole image, stretched (resize 'stretch'), its largest centred square (resize
'center_crop'), or the whole image with its shape kept, in the middle of a black square (resize 'pad').
16-bit and 32-bit float greyscale images (a 16-bit .pgm too), and 16-bit colour PNGs and TIFFs, keep all their
levels: 0..65535 and 0..1 are black to white.
{%- else %}

Layout under config['dataset_dir']:
    index.csv           a header `file,label`, then one row per sample
    frames/<name>.pt    one tensor per sample, shape (frames, num_features), of any length
Sequences longer than max_frames keep their first max_frames frames. Batches are padded by collate_fn.
{%- endif %}
{%- if cookiecutter.dataset != 'synthetic' %}

Write a small example in this layout with:  python dataset.py --make-example data/
{%- endif %}
"""
{%- if cookiecutter.dataset != 'synthetic' %}

{% if cookiecutter.dataset in ['csv', 'sequence'] -%}
import csv
{% endif -%}
{% if cookiecutter.dataset == 'image_folder' -%}
import collections
{% endif -%}
{% if cookiecutter.dataset == 'csv' -%}
import re
import shlex
{% endif -%}
{% if cookiecutter.dataset == 'image_folder' and not classification -%}
import math
{% endif -%}
{% if cookiecutter.dataset == 'image_folder' -%}
import sys
{% endif -%}
from pathlib import Path
{%- endif %}

import torch
{%- if kind == 'image' %}
import torch.nn.functional as F
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}
from PIL import Image, ImageOps
{%- endif %}
{%- if kind != 'sequence' and cookiecutter.dataset in ['synthetic', 'csv'] %}
from torch.utils.data import Dataset, default_collate, random_split
{%- else %}
from torch.utils.data import Dataset, random_split
{%- endif %}

from runfiles import {{ 'CommandParser, ' if cookiecutter.dataset != 'synthetic' else '' }}RunError, one_line_errors{{ ', print_output, project_folder_note' if cookiecutter.dataset != 'synthetic' else '' }}
from utils import {{ 'check_choice, ' if cookiecutter.dataset == 'image_folder' }}check_minimums{{ ', names_text' if cookiecutter.dataset == 'csv' }}

DATA_CONFIG = {
{%- if cookiecutter.dataset == 'synthetic' %}
    'n_samples': 4096,  # synthetic samples, train and valid together
{%- else %}
    'dataset_dir': './data',  # the data folder; its layout is at the top of dataset.py
{%- endif %}
{%- if cookiecutter.dataset == 'csv' %}
    'label_column': 'label',  # the CSV column that holds the target
    'id_column': '',  # a CSV column of sample ids, not a feature: predictions.csv's id ('': the row number)
{%- endif %}
    'valid_ratio': 0.2,  # share of the samples held out for validation
{%- if kind == 'image' %}
    'image_channels': {{ cookiecutter.image_channels }},  # 1 grey, 3 RGB, 4 RGBA
    'image_size': {{ cookiecutter.image_size }},  # image height and width in pixels{{ ' (files are resized to it)' if cookiecutter.dataset == 'image_folder' else '' }}
{%- if cookiecutter.dataset == 'image_folder' %}
    'resize': 'stretch',  # 'stretch' each image to a square, 'center_crop' its centred square, or 'pad' it to one
{%- endif %}
    'random_flip': False,  # mirror each training image left-right with probability 0.5 (augment() below)
    'random_shift': 0,  # shift training images by up to this many pixels each way, at random (augment() below)
{%- else %}
    'num_features': {{ cookiecutter.num_features }},  # input features per sample{{ ' (per frame)' if kind == 'sequence' else '' }}
{%- endif %}
{%- if kind == 'sequence' %}
    'max_frames': 512,  # longer sequences keep their first max_frames frames
{%- endif %}
{%- if classification %}
    'num_classes': {{ cookiecutter.num_classes }},  # outputs of the model, one per class
{%- endif %}
}

# Config keys that decide which data trains and validates (the split{{ ', the label and id columns' if cookiecutter.dataset == 'csv' else ', the samples drawn' if cookiecutter.dataset == 'synthetic' }}):
# resume refuses to change them.
{%- if cookiecutter.dataset == 'synthetic' %}
SPLIT_KEYS = ('seed', 'valid_ratio', 'n_samples')
{%- else %}
# Not dataset_dir: resume checks the data itself, so data moved to another folder resumes with --dataset_dir.
SPLIT_KEYS = ('seed', 'valid_ratio'{{ ", 'label_column', 'id_column'" if cookiecutter.dataset == 'csv' }})
{%- endif %}


def check_data_config(config):
    """Reject sizes no data can have, in one line, before train.py writes anything."""
    check_minimums(config, {{ '{' ~ minimums | join(', ') ~ '}' }})
{%- if kind == 'image' %}
    if config['random_shift'] >= config['image_size']:  # reflect padding needs a shift smaller than the image
        raise RunError(f"random_shift must be below image_size ({config['image_size']}), got {config['random_shift']}")
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}
    check_choice(config, 'resize', RESIZE_CHOICES)
{%- endif %}
{%- if cookiecutter.dataset == 'csv' %}
    if config['id_column'] and config['id_column'] == config['label_column']:
        raise RunError(f"id_column and label_column are both {config['label_column']!r}; name the ids' column in "
                       "--id_column, or pass --id_column '' to number the rows")
{%- endif %}
{%- if cookiecutter.dataset != 'synthetic' %}


LAYOUT = (
{%- if cookiecutter.dataset == 'csv' %}
    "expected <dataset_dir>/data.csv with a header row of feature columns and a label column"
{%- elif cookiecutter.dataset == 'image_folder' %}
    "expected <dataset_dir>/{{ '<class name>' if classification else '<target value>' }}/ folders holding .png, .jpg, .bmp, .webp or .tif images"
{%- else %}
    "expected <dataset_dir>/index.csv (file,label) and one (frames, num_features) tensor file per sample"
{%- endif %}
    "; write an example with: python dataset.py --make-example <dataset_dir>"
)
PREDICT_LAYOUT = (  # what predict.py's --data takes
{%- if cookiecutter.dataset == 'csv' %}
    "--data takes a CSV file with the feature columns of training (the label column optional), or a folder "
    "holding data.csv"
{%- elif cookiecutter.dataset == 'image_folder' %}
    "--data takes a folder in the training layout, a folder of images (unlabelled), or one image file"
{%- else %}
    "--data takes a folder holding index.csv (file, and label if known) and the tensor files, or one tensor file"
{%- endif %}
)


def layout_hint(labels_required):
    """The layout an error names: training's under dataset_dir (labels required), or predict.py's --data."""
    return LAYOUT if labels_required else PREDICT_LAYOUT
{%- endif %}
{%- if kind == 'image' %}


def upsample(images, size):
    """Bilinear upsampling of (..., h, h) images to (..., size, size), as two small matrix products: the
    same weights as F.interpolate(mode='bilinear'), about 10 times faster here for thousands of images."""
    weights = F.interpolate(torch.eye(images.shape[-1]).unsqueeze(0), size=size, mode='linear')[0].T  # (size, h)
    return weights @ images @ weights.T
{%- endif %}
{%- if classification or kind == 'vector' %}


SYNTHETIC_TASK_SEED = 0  # seeds the task's own generator: one task, whatever seed draws the samples
{%- endif %}


def synthetic_samples(config, n, seed):
    """`n` learnable samples in this project's input shape, drawn by a generator seeded by `seed`.

    The task ({{ 'the class centres' if classification else "the target's direction in the input" if kind == 'vector' else 'how the target shows in the input' }}) does not depend on `seed` or `n`:
    more samples, or samples drawn with another seed to predict on, come from the task a model learned.
    """
    g = torch.Generator().manual_seed(seed)
{%- if classification or kind == 'vector' %}
    task = torch.Generator().manual_seed(SYNTHETIC_TASK_SEED)
{%- endif %}
{%- if kind == 'image' %}
    c, s = config['image_channels'], config['image_size']
{%- else %}
    f = config['num_features']
{%- endif %}
{%- if classification %}
    k = config['num_classes']
    centres = torch.randn(k, {{ 'c, 4, 4' if kind == 'image' else 'f' }}, generator=task)  # class j's centre is the same whatever k is
    targets = torch.randperm(n, generator=g) % k  # balanced: every class appears once n >= k
{%- else %}
{%- if kind == 'vector' %}
    direction = torch.randn(f, generator=task)
    direction = direction / direction.norm()
{%- endif %}
    targets = torch.rand(n, 1, generator=g) * 2 - 1
{%- endif %}
{%- if kind == 'vector' %}
{%- if classification %}
    inputs = centres[targets] + 1.5 * torch.randn(n, f, generator=g)
{%- else %}
    inputs = torch.randn(n, f, generator=g) + targets * direction * 3
{%- endif %}
    return inputs, targets
{%- elif kind == 'image' %}
    # smooth blobs (4x4 noise upsampled), so that a small CNN sees structure; mixed at 4x4, since
    # upsampling is linear, so that only one full-size tensor is made
{%- if classification %}
    inputs = centres[targets] + 0.8 * torch.randn(n, c, 4, 4, generator=g)
{%- else %}
    inputs = 0.5 * torch.randn(n, c, 4, 4, generator=g) + targets.view(n, 1, 1, 1)
{%- endif %}
    return upsample(inputs, s).clamp_(-3, 3), targets
{%- else %}
    lengths = torch.randint(8, 33, (n,), generator=g).tolist()
{%- if classification %}
    inputs = [centres[y] + 1.5 * torch.randn(length, f, generator=g) for y, length in zip(targets, lengths)]
{%- else %}
    inputs = [torch.randn(length, f, generator=g) + y for y, length in zip(targets, lengths)]
{%- endif %}
    # views of one tensor: a DataLoader worker that spawn or forkserver (Linux's default from Python 3.14)
    # starts is handed a file descriptor per tensor storage, and forkserver fails past about 250
    return list(torch.cat(inputs).split(lengths)), targets
{%- endif %}
{%- if classification and cookiecutter.dataset != 'synthetic' %}


def class_count_error(found, num_classes, where, what, why=''):
    """Training needs one output per class the data names: an output no class stands for is only ever wrong."""
    return RunError(f"'{where}' has {found} {what} but num_classes is {num_classes}; pass --num_classes {found}{why}")
{%- endif %}
{%- if classification and cookiecutter.dataset in ['csv', 'sequence'] %}


def spells_a_number(text):
    """Whether float() reads `text` ('2.5', '-1', '1e3')."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def label_indices(labels, line_numbers, num_classes, where, classes=None, labels_required=True):
    """Integer labels are used as they are; names are numbered in sorted order, or by the training run's
    `classes` when given (prediction: numbered as in training, whatever they look like). Training needs two
    classes or more. `line_numbers`: each label's line, for the errors. Returns (classes, targets)."""
    numbers = [v.strip().isdecimal() for v in labels]  # isdigit() would take '²', which int() refuses
    if classes is None and all(numbers):
        targets = torch.tensor([int(v) for v in labels])
    else:
        if classes is None:  # one label that is no class number makes them all names: say which
            at = numbers.index(False)
            name = f"line {line_numbers[at]} has label '{labels[at].strip()}'"
            if not labels_required:  # predicting, with a model trained on class numbers: a name would be renumbered
                raise RunError(f"'{where}' {name}, but the model was trained on class numbers 0..{num_classes - 1}; "
                               'fix that line, or leave the label column out')
            names = set(labels)
            if len({v.strip() for v in names}) < len(names):  # 'cat' and 'cat ' would be two classes
                first_line_of = {}  # by the name without its surrounding spaces: the name as written, and its line
                for v, number in zip(labels, line_numbers):
                    seen = first_line_of.setdefault(v.strip(), (v, number))
                    if seen[0] != v:
                        raise RunError(f"'{where}' line {seen[1]} has label {seen[0]!r} and line {number} {v!r}, "
                                       'which differ only by the spaces around them; write the label the same way in '
                                       'both')
            n_names = len(names)
            if 2 <= n_names != num_classes:  # training
                numeric = any(numbers) or spells_a_number(labels[at])  # a '-1' among numbers; '1.0' (pandas' floats)
                why = (f' (the labels are read as names, numbered in sorted order, since {name}, which is not a '
                       'class number; fix that line if they are numbers)') if numeric else ''
                raise class_count_error(n_names, num_classes, where, 'class names', why)
            classes = sorted(names)
        number_of = {name: number for number, name in enumerate(classes)}  # a dict: a list's index() is O(classes)
        unknown = next((i for i, v in enumerate(labels) if v not in number_of), None)
        if unknown is not None:
            label = labels[unknown]
            spaced = next((name for name in classes if name.strip() == label.strip()), None)
            also = f' (it knows {spaced!r}: the spaces around a label count)' if spaced is not None else ''
            raise RunError(f"'{where}' line {line_numbers[unknown]} has label {label!r}, which the model was not "
                           f'trained on{also}')
        targets = torch.tensor([number_of[v] for v in labels])
    highest = int(targets.max())
    if classes is None and int(targets.min()) == 1 and highest == num_classes:  # integer labels 1..k
        also = f' (or pass --num_classes {highest + 1} if class 0 exists)' if labels_required else ''
        raise RunError(f"'{where}' has labels 1..{highest} but class numbers start at 0; subtract 1 from every "
                       f'label{also}')
    if highest >= num_classes:  # predicting, the model's classes are fixed: no option to pass
        fix = f'pass --num_classes {highest + 1}' if labels_required else f'the model knows {num_classes} classes'
        raise RunError(f"'{where}' has labels outside 0..{num_classes - 1}; {fix}")
    if labels_required and targets.unique().numel() < 2:
        raise RunError(f"'{where}' has one label value only ('{labels[0].strip()}'); classification needs two or "
                       'more: check the label column')
    return classes, targets
{%- endif %}
{%- if cookiecutter.dataset in ['csv', 'sequence'] %}


def not_utf8(path):
    """The error for a text file that is not UTF-8, naming its first such line (Excel's plain "CSV" format is
    in the Windows code page, so a name like 'café' comes out as one byte that UTF-8 cannot read)."""
    raw = Path(path).read_bytes()
    try:
        raw.decode('utf-8-sig')
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b'\n') + 1
        return RunError(f"'{path}' line {line} is not UTF-8 text; save the file as UTF-8 (in Excel: 'CSV UTF-8')")
    return RunError(f"'{path}' is not UTF-8 text; save the file as UTF-8")
{%- endif %}
{%- if cookiecutter.dataset == 'csv' %}


MISSING_VALUES = {'', 'na', 'n/a', 'null', 'none', '?'}  # how spreadsheets and pandas write a missing value
HEADER_NAMES_SHOWN = 30  # a column error names this many of the header's names (a file may have thousands)


def not_a_feature_value(path, number, header, row, columns):
    """The error for a CSV row's first feature value (`columns`: their indices) that is not a number: a missing
    one, or text."""
    for i in columns:
        name, value = header[i], row[i]
        try:
            float(value)
        except ValueError:
            where = f"'{path}' line {number} column '{name}'"
            if value.strip().lower() in MISSING_VALUES:
                return RunError(f'{where} has no value ({value!r}); fill in missing values or drop the row')
            return RunError(f'{where} holds {value!r}, not a number; encode text as numbers (one 0/1 column per '
                            'category, say) or drop the column')
    return RunError(f"'{path}' line {number} has a feature value that is not a number")


# A column name that reads as sample ids: 'id', 'ID', 'sample_id', 'PassengerId', 'customerID', pandas' 'index'
ID_COLUMN_NAME = re.compile(r'(?i:id|index|unnamed: \d+)|.*(?i:[ _.-]id)|.*[a-z](?:Id|ID)')


def id_like_column(names, inputs):
    """The first of the feature columns `names` that looks like sample ids rather than a feature: an id's name,
    and a different whole number in each row of `inputs` (one column per name). None if none does."""
    for i, name in enumerate(names):
        if ID_COLUMN_NAME.fullmatch(name):
            column = inputs[:, i]
            if bool((column == column.round()).all()) and len(column.unique()) == len(column):
                return name
    return None


def id_column_warning(names, inputs, id_column):
    """A warning, or None, for a feature column that looks like sample ids (id_like_column): it trains as a
    feature, and a model can learn the ids of the training rows by heart."""
    name = id_like_column(names, inputs)
    if name is None:
        return None
    fix = (f'drop it from the data (id_column is {id_column!r})' if id_column else
           f"pass --id_column {shlex.quote(name)} --num_features {len(names) - 1}, which makes them the samples' ids")
    return (f'warning: feature column {name!r} holds a different whole number in each row, as sample ids do, '
            f'and trains as a feature; if it holds ids, {fix}')


def match_feature_columns(path, names, trained, label):
    """`trained` (the model's feature columns, in its input order) when a file's `names` are the same columns in
    any order; else an error that lists the differences."""
    have, known = set(names), set(trained)
    missing = [name for name in trained if name not in have]
    extra = [name for name in names if name not in known]
    if missing or extra:
        differ = '; '.join(([f'missing {names_text(missing)}'] if missing else [])
                           + ([f'not trained on {names_text(extra)}'] if extra else []))
        raise RunError(f"'{path}' has other feature columns than the model was trained on ({differ}); give it "
                       f"the training data's feature columns, in any order, and name a label column '{label}' or leave "
                       'it out')
    return list(trained)
{%- endif %}
{%- if cookiecutter.dataset == 'csv' or not classification and cookiecutter.dataset == 'sequence' %}


def first_nonfinite_row(values):
    """The index of the first row of a 2-d tensor holding nan or inf (a number beyond float32 reads as inf), or None."""
    rows = (~values.isfinite()).any(dim=1).nonzero()
    return int(rows[0]) if len(rows) else None
{%- endif %}
{%- if not classification and cookiecutter.dataset in ['csv', 'sequence'] %}


def numeric_labels(labels, line_numbers, where):
    """Regression targets as an (n, 1) tensor; a label that is not a finite number is an error naming its line."""
    targets = []
    for number, value in zip(line_numbers, labels):
        try:
            targets.append(float(value))
        except ValueError as err:
            raise RunError(f"'{where}' line {number} has a non-numeric label ({err})") from None
    targets = torch.tensor(targets).unsqueeze(1)
    bad = first_nonfinite_row(targets)
    if bad is not None:
        raise RunError(f"'{where}' line {line_numbers[bad]} has a label that is not finite (nan, inf or too large); "
                       'fix or remove it')
    return targets
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' %}


class SyntheticDataset(Dataset):
    """`n` samples (default n_samples) from a generator seeded by `seed` (default config['seed'])."""

    def __init__(self, config, n=None, seed=None):
        n, seed = n or config['n_samples'], config['seed'] if seed is None else seed
        self.inputs, self.targets = synthetic_samples(config, n, seed)
        self.ids, self.has_labels, self.classes = range(n), True, None

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]
{%- if kind != 'sequence' %}

    def __getitems__(self, indices):
        """A whole batch by one tensor index, instead of one item at a time plus a collate."""
        index = torch.tensor(indices)
        return self.inputs[index], self.targets[index]
{%- endif %}
{%- elif cookiecutter.dataset == 'csv' %}


class CsvDataset(Dataset):
    """Reads data.csv into memory: every column but the label column is a float feature.

    For prediction (labels_required=False) the label column may be missing; `path` may be any CSV file, and
    `feature_columns` (the training data's, from the checkpoint) picks the features by name, in any order.
    """

    def __init__(self, config, path=None, labels_required=True, classes=None, feature_columns=None):
        path = Path(path or config['dataset_dir'])
        path = path / 'data.csv' if path.is_dir() else path
        if not path.is_file():
            raise RunError(f"no data.csv at '{path}'{project_folder_note(path)}; {layout_hint(labels_required)}")
        try:
            with open(path, newline='', encoding='utf-8-sig') as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
                reader = csv.reader(f, skipinitialspace=True)  # 'f0, f1, label' names the column 'label'
                header = next(reader, [])
                lines = [(reader.line_num, row) for row in reader if row]  # (line number, values); blank lines skipped
        except UnicodeDecodeError:
            raise not_utf8(path) from None
        if not header or len(lines) < (2 if labels_required else 1):  # training: one row to train on, one to validate
            rows_needed = 'at least two rows' if labels_required else 'a row'
            raise RunError(f"'{path}' needs a header and {rows_needed}; {layout_hint(labels_required)}")
        separator = next((s for s in ';\t|' if s in header[0]), None) if len(header) == 1 else None
        if separator:  # a spreadsheet's export in another locale, or a TSV
            raise RunError(f"'{path}' separates its values with {separator!r}; save it with commas")
        unnamed = next((number for number, name in enumerate(header, 1) if not name.strip()), None)
        if unnamed:  # training on a row index as a feature would go unnoticed
            raise RunError(f"'{path}' column {unnamed} has no name in the header (pandas' to_csv writes its index so: "
                           'pass index=False); name the column or remove it')
        position = {}  # column index by name (a dict: a file may have thousands of columns)
        for i, name in enumerate(header):
            if name in position:  # columns are looked up by name: which one would be meant?
                raise RunError(f"'{path}' has two columns named {name!r} (columns {position[name] + 1} and {i + 1}); "
                               'rename or remove one')
            position[name] = i
        label = config['label_column']
        self.has_labels = label in position
        if not self.has_labels and labels_required:
            raise RunError(f"'{path}' has no column '{label}'; pass --label_column with one of: "
                           f'{names_text(header, HEADER_NAMES_SHOWN)}')
        label_at = position.get(label)
        id_column = config['id_column']
        id_at = position.get(id_column) if id_column else None
        if id_column and id_at is None and labels_required:  # predicting, a file without ids gets row numbers
            raise RunError(f"'{path}' has no column {id_column!r} (id_column); pass --id_column with one of: "
                           f"{names_text(header, HEADER_NAMES_SHOWN)}, or --id_column '' to number the rows")
        self.feature_columns = [name for i, name in enumerate(header) if i not in (label_at, id_at)]
        if feature_columns is not None:  # in the model's order, wherever they are in this file
            self.feature_columns = match_feature_columns(path, self.feature_columns, feature_columns, label)
        columns = [position[name] for name in self.feature_columns]
        features = []
        for number, row in lines:
            if len(row) != len(header):
                raise RunError(f"'{path}' line {number} has {len(row)} values but the header has {len(header)} columns")
            if self.has_labels and not row[label_at].strip():
                raise RunError(f"'{path}' line {number} has an empty {label}")
            if id_at is not None and not row[id_at].strip():  # predictions.csv would have a blank id
                raise RunError(f"'{path}' line {number} has an empty {id_column} (id_column); fill it in")
            try:
                features.append([float(row[i]) for i in columns])
            except ValueError:
                raise not_a_feature_value(path, number, header, row, columns) from None
        values = torch.tensor(features, dtype=torch.float64)  # ids above 2**24 are still distinct here
        self.inputs = values.float()
        # after the values: a column of text (notes, a category) is the likelier cause of one feature too many
        n_features = len(columns)
        if n_features != config['num_features']:  # predicting, the model's input size is fixed: no option to pass
            fix = (f'pass --num_features {n_features}' if labels_required else "give it the training data's "
                   f"feature columns, and name a label column '{label}' or leave it out")
            ids = id_like_column(self.feature_columns, values) if labels_required and not id_column else None
            if ids and n_features == config['num_features'] + 1:  # the one too many may be the samples' ids
                fix = (f'pass --id_column {shlex.quote(ids)} if {ids!r} holds sample ids (not a feature), else '
                       f'--num_features {n_features}')
            raise RunError(f"'{path}' has {n_features} feature columns but num_features is "
                           f"{config['num_features']}; {fix}")
        bad = first_nonfinite_row(self.inputs)
        if bad is not None:
            raise RunError(f"'{path}' line {lines[bad][0]} has a feature value that is not finite "
                           '(nan, inf or too large); fix or remove it')
        self.ids = [row[id_at] for _, row in lines] if id_at is not None else range(len(lines))  # else rows, from 0
        ids_warning = id_column_warning(self.feature_columns, values, id_column) if labels_required else None
        self.warnings = [ids_warning] if ids_warning else []  # train.py writes them to train.log
        labels = [row[label_at] for _, row in lines] if self.has_labels else ['0'] * len(lines)
{%- if classification %}
        self.classes, self.targets = label_indices(labels, [number for number, _ in lines], config['num_classes'], path,
                                                   classes if self.has_labels else None, labels_required)
{%- else %}
        self.classes = None
        self.targets = numeric_labels(labels, [number for number, _ in lines], path)
{%- endif %}

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, index):
        return self.inputs[index], self.targets[index]

    def __getitems__(self, indices):
        """A whole batch by one tensor index, instead of one item at a time plus a collate."""
        index = torch.tensor(indices)
        return self.inputs[index], self.targets[index]
{%- elif cookiecutter.dataset == 'image_folder' %}


IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.bmp', '.gif', '.webp', '.tif', '.tiff',  # any case
                  '.ppm', '.pgm', '.pbm', '.pnm',  # Netpbm: GTSRB's traffic signs, older face datasets
                  '.tga')  # Truevision: renders from game engines (synthetic datasets)
# Image formats left out, so that a folder is the same data wherever it is read (Pillow reads some only with a plugin,
# a build option or a newer version, .qoi from 9.5, .ico and .dds differently by version, .pam not at all; others are
# HDR, vectors, layered .psd, camera raws, icons, animations or rare formats that JPEG or PNG replace): a warning
# counts them
LEFT_OUT_SUFFIXES = ('.heic', '.heif', '.avif', '.jxl', '.jp2', '.j2k', '.jpx', '.jpf', '.jpc', '.j2c', '.pfm', '.exr',
                     '.hdr', '.svg', '.eps', '.psd', '.ico', '.cur', '.icns', '.dds', '.pam', '.dng', '.cr2', '.cr3',
                     '.nef', '.arw', '.raf', '.orf', '.rw2', '.apng', '.mpo', '.qoi', '.pcx', '.dib', '.sgi', '.rgb',
                     '.ras', '.xbm', '.xpm', '.fits', '.fit')
PIL_MODES = {1: 'L', 3: 'RGB', 4: 'RGBA'}
RESIZE_CHOICES = ('stretch', 'center_crop', 'pad')
FULL_SCALE = {'I': 65535, 'F': 1.0}  # white in 16-bit ('I;16...', or 'I') and float greyscale images
EXIF_ORIENTATION = 0x0112  # the EXIF tag of how a camera held the picture
BITS_PER_SAMPLE, PLANAR_CONFIGURATION, EXTRA_SAMPLES = 258, 284, 338  # TIFF tags
ASSOCIATED_ALPHA = 1  # an ExtraSamples value: colours premultiplied by the alpha


def pixel_values(image, dtype):
    """A Pillow image's pixels as one flat tensor, channels interleaved (RGBRGB...)."""
    return torch.frombuffer(bytearray(image.tobytes()), dtype=dtype)


# The byte order a 16-bit raw mode's letter names (B: big-endian, L: little, N: this machine's) -> the other one
OTHER_BYTE_ORDER = {'B': 'L', 'L': 'B', 'N': 'B' if sys.byteorder == 'little' else 'L'}


def raw_mode(image):
    """How a PNG or TIFF file stores its pixels, in Pillow's words ('RGB;16B': 16-bit RGB, big-endian); '' for
    other files, or once the image is loaded."""
    if image.format not in ('PNG', 'TIFF') or not image.tile:
        return ''
    return tile_raw_mode(image.tile[0])


def tile_raw_mode(tile):
    """How one tile (a strip, or a planar TIFF's band of it) is stored: see raw_mode."""
    args = tile[3]
    return args if isinstance(args, str) else args[0]  # TIFF: (raw mode, ...)


def upright_bytes(image):
    """A Pillow image's bytes, turned upright by its EXIF orientation: (height, width, bytes per pixel)."""
    image = ImageOps.exif_transpose(image)
    return pixel_values(image, torch.uint8).view(image.height, image.width, -1)


def with_raw_mode(tile, mode):
    """A Pillow tile that unpacks its pixels with raw mode `mode` instead of its own."""
    args = mode if isinstance(tile[3], str) else (mode, *tile[3][1:])  # TIFF: (raw mode, ...)
    return tile._replace(args=args) if hasattr(tile, '_replace') else (*tile[:3], args)  # Pillow 11+: a namedtuple


def decoded_as(path, mode):
    """The file's pixels unpacked with raw mode `mode` instead of their own, upright (see upright_bytes).
    A `mode` that starts with ';' follows each tile's own: a planar TIFF's 'R' tile with ';16B' is 'R;16B'."""
    with Image.open(path) as image:
        image.tile = [with_raw_mode(tile, tile_raw_mode(tile) + mode if mode.startswith(';') else mode)
                      for tile in image.tile]
        return upright_bytes(image)


def tiff_tag(image, tag):
    """A TIFF tag's values as a tuple (() where absent, or not a TIFF)."""
    value = image.tag_v2.get(tag, ()) if image.format == 'TIFF' else ()
    return value if isinstance(value, tuple) else (value,)


def sixteen_bit_planes_order(image):
    """'B' or 'L' (the byte order) for an uncompressed 16-bit colour TIFF stored a plane per band, whose planes
    Pillow unpacks as 8-bit ('R', 'G', ...: half of each plane's bytes, high and low mixed, as pixels); None
    for other images. A compressed one, which libtiff decodes to high bytes only, is an error."""
    # a grey image (one band) has the same bytes, planes or not, which Pillow reads as they are
    planar = image.mode in ('RGB', 'RGBA') and tiff_tag(image, PLANAR_CONFIGURATION) == (2,)
    if not planar or set(tiff_tag(image, BITS_PER_SAMPLE)) != {16}:
        return None
    if not all(len(tile_raw_mode(tile)) == 1 for tile in image.tile):
        raise RunError(f"image '{image.filename}' is a compressed 16-bit TIFF stored a plane per band, which Pillow "
                       'reads as 8 bits; save it with its bands interleaved (planar configuration 1), or uncompressed')
    return 'B' if image.tag_v2.prefix == b'MM' else 'L'


def sixteen_bit_colour(image):
    """A 16-bit colour PNG's or TIFF's levels, 0..65535, upright: (height, width, 3 or 4, the 4th alpha, also
    from a PNG's transparent colour); None for other images.

    Pillow reads such a file as 8-bit, keeping each value's high byte only (a 12-bit camera's picture comes
    out almost black); decoding the file again in the other byte order gives the low bytes. A TIFF's
    premultiplied colours (its alpha 'associated') are divided by the alpha after both decodes."""
    mode, _, depth = raw_mode(image).partition(';')
    if mode == 'LA' and depth == '16B':  # grey and alpha (PNG): its 4 bytes a pixel, unpacked as they are
        grey_alpha = decoded_as(image.filename, 'RGBA').unflatten(2, (2, 2)).float() @ torch.tensor([256.0, 1.0])
        return grey_alpha[..., [0, 0, 0, 1]]
    order = sixteen_bit_planes_order(image)
    if order is not None:
        high, low = (decoded_as(image.filename, f';16{o}') for o in (order, OTHER_BYTE_ORDER[order]))
    elif mode in ('RGB', 'RGBA', 'RGBX', 'RGBa') and depth[:2] == '16' and depth[2:] in OTHER_BYTE_ORDER:
        as_stored = 'RGBA' if mode == 'RGBa' else mode  # Pillow's RGBa divides the high bytes alone by the alpha
        high = decoded_as(image.filename, f'{as_stored};{depth}') if mode == 'RGBa' else upright_bytes(image)
        low = decoded_as(image.filename, f'{as_stored};16{OTHER_BYTE_ORDER[depth[2:]]}')
        high, low = (part[..., :3 if mode in ('RGB', 'RGBX') else 4] for part in (high, low))  # RGBX: X dropped
    else:
        return None
    levels = high.float() * 256 + low.float()
    if levels.shape[2] == 4 and tiff_tag(image, EXTRA_SAMPLES)[:1] == (ASSOCIATED_ALPHA,):
        alpha = levels[..., 3:]
        levels[..., :3] = torch.where(alpha > 0, levels[..., :3] * 65535 / alpha, 0.0).clamp(max=65535)
    key = image.info.get('transparency')  # a PNG's tRNS colour key: pixels of exactly this colour are transparent
    if mode == 'RGB' and isinstance(key, tuple) and len(key) == 3:
        opaque = (levels != torch.tensor(key, dtype=levels.dtype)).any(dim=2, keepdim=True)
        levels = torch.cat([levels, opaque.float() * 65535], dim=2)
    return levels


def image_files(folder, left_out):
    """The images in `folder` and its subfolders at any depth, sorted; hidden files and folders (macOS's
    ._name.png copies, .ipynb_checkpoints/) are skipped. Files of the formats in LEFT_OUT_SUFFIXES are added to
    the list `left_out`."""
    images = []
    for p in folder.rglob('*'):
        suffix = p.suffix.lower()
        if suffix in IMAGE_SUFFIXES or suffix in LEFT_OUT_SUFFIXES:
            if not any(part.startswith('.') for part in p.relative_to(folder).parts):
                (images if suffix in IMAGE_SUFFIXES else left_out).append(p)
    return sorted(images)


def suffix_counts(files):
    """How many of `files` have each suffix, in lower case: '2 .heic, 1 .avif'."""
    counts = collections.Counter(path.suffix.lower() for path in files)
    return ', '.join(f'{n} {suffix}' for suffix, n in sorted(counts.items()))


def left_out_warning(files, root):
    """The warning for image files of formats this reader leaves out (HEIC photos from an iPhone, say)."""
    them = 'them' if len(files) != 1 else 'it'
    return (f"warning: '{root}' holds {len(files)} image file{'s' * (len(files) != 1)} of a format that this reader "
            f"leaves out ({suffix_counts(files)}; e.g. '{min(files)}'), so the data goes without {them}; convert "
            f'{them} to JPEG or PNG to use {them}')


def check_nothing_beside(root, labels_required, left_out):
    """Refuse image files directly in `root` beside its {{ folder_kind }} folders: they have no label. Files of the
    formats in LEFT_OUT_SUFFIXES there are added to the list `left_out`, as in the folders."""
    images = []
    for p in root.iterdir():
        suffix = p.suffix.lower()
        if (suffix in IMAGE_SUFFIXES or suffix in LEFT_OUT_SUFFIXES) and p.is_file() and not p.name.startswith('.'):
            (images if suffix in IMAGE_SUFFIXES else left_out).append(p)
    beside = sorted(p.name for p in images)
    if beside:
        what = f"an image ('{beside[0]}')" if len(beside) == 1 else f"{len(beside)} images (e.g. '{beside[0]}')"
        then = '' if labels_required else ' and predict on them with their own --data'
        raise RunError(f"'{root}' holds {what} beside its {{ folder_kind }} folders, in none of them; "
                       f"move each into its {{ folder_kind }} folder, or out of '{root}'{then}")


class ImageFolderDataset(Dataset):
    """Lists the image files once; reads, converts and resizes each one when it is asked for.

    For prediction (labels_required=False) `root` may also hold the images directly, without labels, or be
    one image file.
    """

    def __init__(self, config, root=None, labels_required=True, classes=None):
        root = Path(root or config['dataset_dir'])
        one_image = not labels_required and root.is_file() and root.suffix.lower() in IMAGE_SUFFIXES
        if not root.is_dir() and not one_image:
            if not root.exists():
                problem = f'does not exist{project_folder_note(root)}'
            elif labels_required:
                problem = 'is not a folder'
            elif root.suffix.lower() in LEFT_OUT_SUFFIXES:
                problem = (f'is a {root.suffix.lower()} image, a format this reader leaves out: convert it to JPEG '
                           'or PNG')
            else:
                problem = 'is not an image file'
            where = 'dataset_dir' if labels_required else '--data'
            raise RunError(f"{where} '{root}' {problem}; {layout_hint(labels_required)}")
        if config['image_channels'] not in PIL_MODES:
            raise RunError(f"image_channels must be 1, 3 or 4 for image files, got {config['image_channels']}")
        folders = [] if one_image else sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))
        left_out = []  # files of the formats in LEFT_OUT_SUFFIXES
        loose = [root] if one_image else [] if folders else image_files(root, left_out)  # not .ipynb_checkpoints/
        if folders:  # an image beside the labelled folders has no label: training would leave it out unsaid
            check_nothing_beside(root, labels_required, left_out)
        self.files, targets, self.has_labels = [], [], bool(folders)
        if loose and not labels_required:
            self.files, targets = loose, [0] * len(loose)
{%- if classification %}
        self.classes = classes or [folder.name for folder in folders]
        unknown = [folder.name for folder in folders if folder.name not in self.classes]
        if unknown:
            raise RunError(f"'{root}' has a folder that is none of the model's classes: '{unknown[0]}'; give it class "
                           'folders named as in training, or unlabelled images directly, without subfolders')
        if labels_required and len(folders) == 1:
            raise RunError(f"'{root}' has one class folder only ('{folders[0].name}'); classification needs two or "
                           'more: point dataset_dir at the folder that holds the class folders')
        for folder in folders:
            index = self.classes.index(folder.name)
{%- else %}
        for folder in folders:
            try:
                value = float(folder.name)
            except ValueError:
                raise RunError(f"folder '{folder}' is not named as a number; {layout_hint(labels_required)}") from None
            if not math.isfinite(value):
                raise RunError(f"folder '{folder}' is named '{folder.name}', not a finite number; "
                               f'{layout_hint(labels_required)}')
            if '_' in folder.name:  # float() skips underscores: '3_5' would be 35, not 3.5
                raise RunError(f"folder '{folder}' is named '{folder.name}', which reads as {value:g}; rename it "
                               f"'{value:g}' if that is meant, or write a fraction with a decimal point; "
                               f'{layout_hint(labels_required)}')
{%- endif %}
{%- if classification %}
            earlier = len(left_out)
            images = image_files(folder, left_out)
            if not images and labels_required:
                only = left_out[earlier:]  # an export of HEIC photos, say
                fix = (f', only files of formats it leaves out ({suffix_counts(only)}); convert them to JPEG or PNG'
                       if only else '; add some or remove it')
                raise RunError(f"class folder '{folder}' holds no images ({', '.join(IMAGE_SUFFIXES)}){fix}")
{%- else %}
            images = image_files(folder, left_out)
{%- endif %}
            self.files += images
            targets += [{{ 'index' if classification else 'value' }}] * len(images)
{%- if classification %}
        if len(self.classes) > config['num_classes'] or labels_required and 2 <= len(folders) < config['num_classes']:
            raise class_count_error(len(self.classes), config['num_classes'], root, 'class folders')
{%- endif %}
        if len(self.files) < (2 if labels_required else 1):
            raise RunError(f"found {len(self.files)} images in '{root}'; {layout_hint(labels_required)}")
        self.targets = torch.tensor(targets){{ '' if classification else '.unsqueeze(1)' }}
        self.ids = [root.name] if one_image else [str(path.relative_to(root)) for path in self.files]
{%- if not classification %}
        self.classes = None
{%- endif %}
        self.mode, self.size = PIL_MODES[config['image_channels']], config['image_size']
        self.resize = config['resize']
        self.warnings = [left_out_warning(left_out, root)] if left_out else []  # train.py and predict.py print them

    def crop_box(self, width, height):
        """The centred square (left, top, right, bottom) that resize 'center_crop' keeps; None: keep it all."""
        if self.resize != 'center_crop' or width == height:
            return None
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side

    def resized_size(self, width, height):
        """(width, height) to resize the image (or its crop) to: the square, or under resize 'pad' the image's own
        shape with its longer side at image_size."""
        if self.resize != 'pad' or width == height:
            return self.size, self.size
        scale = self.size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))

    def padded(self, pixels):
        """(height, width, channels) pixels in the middle of an image_size square of -1: black, and transparent
        under RGBA (as Pillow's blank RGBA image)."""
        height, width, channels = pixels.shape
        if height == width == self.size:
            return pixels
        square = pixels.new_full((self.size, self.size, channels), -1.0)
        top, left = (self.size - height) // 2, (self.size - width) // 2
        square[top:top + height, left:left + width] = pixels
        return square

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        try:
            with Image.open(self.files[index]) as image:
                image.draft(None, (self.size, self.size))  # JPEG: decode at 1/2-1/8 scale, still >= size: ~10x faster
                levels = sixteen_bit_colour(image)  # None for all but 16-bit colour PNGs and TIFFs
                if levels is None and image.getexif().get(EXIF_ORIENTATION, 1) != 1:  # phone photos are often sideways
                    image = ImageOps.exif_transpose(image)
                if levels is not None:
                    pixels = self.fine_colour(levels)
                elif image.mode[0] in FULL_SCALE:  # microscopy, medical: 8 bits would round away most levels
                    pixels = self.fine_greyscale(image, self.files[index])
                else:
                    if image.mode == 'LAB':  # Pillow converts CIELab to RGB only
                        image = image.convert('RGB')
                    image = image.convert(self.mode)
                    if box := self.crop_box(image.width, image.height):
                        image = image.crop(box)
                    image = image.resize(self.resized_size(image.width, image.height), Image.Resampling.BILINEAR)
                    pixels = (pixel_values(image, torch.uint8).float() / 127.5 - 1).view(image.height, image.width, -1)
        except OSError as err:  # PIL's UnidentifiedImageError (not an image) and truncated files are OSErrors
            raise RunError(f"cannot read image '{self.files[index]}' ({err}); remove or replace it") from None
        except Image.DecompressionBombError as err:  # Pillow refuses images over 2 x Image.MAX_IMAGE_PIXELS
            raise RunError(f"image '{self.files[index]}' is too large to read ({err}); shrink it once (training reads "
                           f"it at {self.size}x{self.size}), or set Image.MAX_IMAGE_PIXELS = None in dataset.py if you "
                           "trust your files") from None
        return self.padded(pixels).permute(2, 0, 1), self.targets[index]

    def fine_greyscale(self, image, path):
        """A 16-bit or 32-bit float greyscale image, resized, in [-1, 1] with all its levels: (height, width, channels).
        As RGBA, a PNG's transparent grey level (its tRNS key) has alpha -1, as Pillow gives 8-bit images."""
        full_scale = FULL_SCALE[image.mode[0]]
        key = image.info.get('transparency')
        height, width = image.height, image.width
        image = image.convert('F')
        values = pixel_values(image, torch.float32)
        low, high = values.aminmax()
        if values.isnan().any() or low < 0 or high > full_scale:
            kind = 'float' if full_scale == 1 else 'integer'
            raise RunError(f"image '{path}' holds {kind} pixels from {low:g} to {high:g}, not within 0..{full_scale:g} "
                           "(black to white); rescale it, or edit ImageFolderDataset's fine_greyscale in dataset.py")
        box = self.crop_box(width, height)
        if box:
            image = image.crop(box)
        image = image.resize(self.resized_size(image.width, image.height), Image.Resampling.BILINEAR)
        grey = pixel_values(image, torch.float32).view(image.height, image.width, 1)
        grey = grey / (full_scale / 2) - 1
        if self.mode == 'L':
            return grey
        alpha = torch.ones_like(grey)  # opaque
        if isinstance(key, int):
            opaque = (values != key).float().view(1, 1, height, width)
            if box:
                opaque = opaque[..., box[1]:box[3], box[0]:box[2]]
            alpha = F.interpolate(opaque, size=grey.shape[:2], mode='bilinear', antialias=True).view_as(grey) * 2 - 1
        return torch.cat([grey] * 3 + [alpha] * (self.mode == 'RGBA'), dim=2)

    def fine_colour(self, levels):
        """A 16-bit colour image's levels (see sixteen_bit_colour), resized, in [-1, 1]: (height, width, channels).

        Converted to image_channels as Pillow converts 8-bit images: its luma weights for greyscale, alpha
        dropped for RGB, an opaque one added for RGBA."""
        if box := self.crop_box(levels.shape[1], levels.shape[0]):
            levels = levels[box[1]:box[3], box[0]:box[2]]
        width, height = self.resized_size(levels.shape[1], levels.shape[0])
        image = levels.permute(2, 0, 1).unsqueeze(0) / 32767.5 - 1
        image = F.interpolate(image, size=(height, width), mode='bilinear', antialias=True)[0]  # as Pillow's BILINEAR
        if self.mode == 'L':
            image = torch.tensordot(torch.tensor([0.299, 0.587, 0.114]), image[:3], dims=1).unsqueeze(0)
        elif self.mode == 'RGB':
            image = image[:3]
        elif len(image) == 3:
            image = torch.cat([image, torch.ones_like(image[:1])])
        return image.permute(1, 2, 0).contiguous()
{%- else %}


class SequenceDataset(Dataset):
    """Reads index.csv once; loads each sample's (frames, num_features) tensor when it is asked for.

    For prediction (labels_required=False) the label column may be missing, and `root` may be one sample's file.
    """

    def __init__(self, config, root=None, labels_required=True, classes=None):
        self.root = Path(root or config['dataset_dir'])
        index = self.root / 'index.csv'
        if not labels_required and self.root.is_file() and self.root.name != 'index.csv':  # predict.py --data x.pt
            index, self.root, lines = self.root, self.root.parent, [(1, {'file': self.root.name})]
        elif not index.is_file() and labels_required:
            raise RunError(f"no index.csv in dataset_dir '{self.root}'{project_folder_note(index)}; {LAYOUT}")
        elif not index.is_file():
            problem = 'holds no index.csv' if self.root.exists() else 'does not exist'
            raise RunError(f"--data '{self.root}' {problem}{project_folder_note(index)}; {PREDICT_LAYOUT}")
        else:
            try:
                with open(index, newline='', encoding='utf-8-sig') as f:  # -sig: a BOM (Excel) is not part of 'file'
                    reader = csv.DictReader(f, skipinitialspace=True)
                    lines = [(reader.line_num, row) for row in reader]  # (line number, row); blank lines skipped
            except UnicodeDecodeError:
                raise not_utf8(index) from None
        rows = [row for _, row in lines]
        self.has_labels = bool(rows) and 'label' in rows[0]
        if not rows or 'file' not in rows[0] or labels_required and (len(rows) < 2 or not self.has_labels):
            needs = 'the columns file,label and at least two rows' if labels_required else 'a file column and a row'
            raise RunError(f"'{index}' needs {needs}; {layout_hint(labels_required)}")
        for number, row in lines:  # csv puts a short row's missing values at None, a long row's extras at key None
            if None in row or None in row.values() or not row['file'] or self.has_labels and not row['label'].strip():
                raise RunError(f"'{index}' line {number} does not have one value per column "
                               f"({', '.join(reader.fieldnames)}); {layout_hint(labels_required)}")
        missing = [row['file'] for row in rows if not (self.root / row['file']).is_file()]
        if missing:
            count = 'a missing file' if len(missing) == 1 else f'{len(missing)} missing files, e.g.'
            raise RunError(f"'{index}' lists {count} '{self.root / missing[0]}'; {layout_hint(labels_required)}")
        self.files = self.ids = [row['file'] for row in rows]
        labels = [row['label'] for row in rows] if self.has_labels else ['0'] * len(rows)
{%- if classification %}
        self.classes, self.targets = label_indices(labels, [number for number, _ in lines], config['num_classes'],
                                                   index, classes if self.has_labels else None, labels_required)
{%- else %}
        self.classes = None
        self.targets = numeric_labels(labels, [number for number, _ in lines], index)
{%- endif %}
        self.num_features, self.max_frames = config['num_features'], config['max_frames']

    def __len__(self):
        return len(self.files)

    def __getitem__(self, index):
        path = self.root / self.files[index]
        try:
            frames = torch.load(path, weights_only=True)
        except Exception:  # not a torch.save file, truncated, or holding objects that could run code
            raise RunError(f"cannot read '{path}' with torch.load(weights_only=True); each file must hold one "
                           f'(frames, {self.num_features}) tensor saved with torch.save') from None
        if not isinstance(frames, torch.Tensor):
            raise RunError(f"'{path}' holds a {type(frames).__name__}, not a (frames, {self.num_features}) tensor; "
                           'save the tensor itself with torch.save')
        if frames.dim() != 2 or frames.shape[1] != self.num_features or len(frames) == 0:  # 0 frames: pooling gives NaN
            raise RunError(f"'{path}' has shape {tuple(frames.shape)}, expected (frames, {self.num_features}) with at "
                           'least one frame; fix or remove it')
        if not frames.isfinite().all():
            raise RunError(f"'{path}' holds values that are not finite (nan or inf); fix or remove it")
        return frames[: self.max_frames].float(), self.targets[index]
{%- endif %}
{%- if kind == 'sequence' %}


def collate_fn(batch):
    """Pad variable-length sequences; padding_mask is True at padded frames."""
    frames, targets = zip(*batch)
    lengths = torch.tensor([len(f) for f in frames])
    padded = torch.nn.utils.rnn.pad_sequence(frames, batch_first=True)
    padding_mask = torch.arange(padded.shape[1]) >= lengths.unsqueeze(1)
    return padded, padding_mask, torch.stack(targets)
{%- elif cookiecutter.dataset in ['synthetic', 'csv'] %}


def collate_fn(batch):
    """__getitems__ already returns a whole batch as a tuple; a list of items is stacked as usual."""
    return batch if isinstance(batch, tuple) else default_collate(batch)
{%- else %}


collate_fn = None  # the DataLoader's default: stack samples into a batch
{%- endif %}
{%- if kind == 'image' %}


def augment(images, flip, shift):
    """A training batch (n, channels, height, width) with each image mirrored left-right with probability 0.5 (`flip`)
    and shifted by up to `shift` pixels each way (a random crop of the image reflect-padded by `shift`).

    train.py calls it on each training batch, on its device, once `random_flip` or `random_shift` is set; validation
    and predict.py see the images as they are. It draws from the run's torch RNG, which checkpoints keep: resume
    stays exact, with DataLoader workers too. Add your own augmentation here."""
    n, _, height, width = images.shape
    augmented = images
    if flip:
        mirrored = torch.rand(n, device=images.device) < 0.5
        augmented = torch.where(mirrored.view(n, 1, 1, 1), augmented.flip(3), augmented)
    if shift:
        padded = F.pad(augmented, (shift, shift, shift, shift), mode='reflect')
        top, left = torch.randint(0, 2 * shift + 1, (2, n, 1), device=images.device)
        rows = top + torch.arange(height, device=images.device)  # (n, height): each image's window
        cols = left + torch.arange(width, device=images.device)
        batch = torch.arange(n, device=images.device).view(n, 1, 1)
        window = padded[batch, :, rows.view(n, height, 1), cols.view(n, 1, width)]  # (n, height, width, channels)
        augmented = torch.empty_like(images).copy_(window.permute(0, 3, 1, 2))  # in the input's memory format
    return augmented
{%- endif %}


def split(dataset, valid_ratio, seed):
    """A seeded train/valid split: the same seed gives the same split on every run and after resume."""
    n_valid = max(1, round(len(dataset) * valid_ratio))
    if n_valid >= len(dataset):
        raise RunError(f'{len(dataset)} samples are too few to split with valid_ratio {valid_ratio}: '
                       f'validation takes {n_valid} and leaves none to train on; use more samples')
    generator = torch.Generator().manual_seed(seed)
    return random_split(dataset, [len(dataset) - n_valid, n_valid], generator=generator)


def build_datasets(config):
    """Return (train_set, valid_set)."""
{%- if cookiecutter.dataset == 'synthetic' %}
    dataset = SyntheticDataset(config)
{%- elif cookiecutter.dataset == 'csv' %}
    dataset = CsvDataset(config)
{%- elif cookiecutter.dataset == 'image_folder' %}
    dataset = ImageFolderDataset(config)
{%- else %}
    dataset = SequenceDataset(config)
{%- endif %}
    return split(dataset, config['valid_ratio'], config['seed'])


def build_predict_dataset(config, source=None, classes=None, feature_columns=None, n_samples=256):
    """Samples to predict on, in this project's layout; labels are optional. predict.py uses it.

    `classes` and `feature_columns` are the training data's, from the checkpoint (None where it had none).
    The dataset has .ids (one per sample, for predictions.csv) and .has_labels.
    """
{%- if cookiecutter.dataset == 'synthetic' %}
    if source is not None:
        raise RunError('the synthetic reader takes no --data: predict.py draws --n_samples fresh samples')
    return SyntheticDataset(config, n_samples, seed=config['seed'] + 1)  # fresh samples, not the training ones
{%- elif cookiecutter.dataset == 'csv' %}
    return CsvDataset(config, source, labels_required=False, classes=classes, feature_columns=feature_columns)
{%- elif cookiecutter.dataset == 'image_folder' %}
    return ImageFolderDataset(config, source, labels_required=False, classes=classes)
{%- else %}
    return SequenceDataset(config, source, labels_required=False, classes=classes)
{%- endif %}
{%- if cookiecutter.dataset != 'synthetic' %}


def make_example(root, config, n_samples=512, seed=0):
    """Write `n_samples` learnable samples to `root` in the layout above. Refuses a non-empty folder."""
    root = Path(root)
    if n_samples < 2:
        raise RunError(f'n_samples must be at least 2 (one to train on, one to validate), got {n_samples}')
    if not 0 <= seed < 2**32:  # train.py's range for seed
        raise RunError(f'seed must be between 0 and {2**32 - 1}, got {seed}')
{%- if cookiecutter.dataset == 'image_folder' and classification %}
    if n_samples < config['num_classes']:  # training needs a folder, so an image, for every class
        raise RunError(f"n_samples must be at least num_classes ({config['num_classes']}) for a folder per class, "
                       f'got {n_samples}')
{%- endif %}
    if root.exists() and not root.is_dir():
        raise RunError(f"'{root}' is a file; choose a new folder for the example data")
    if root.exists() and any(root.iterdir()):
        raise RunError(f"'{root}' is not empty; choose a new folder for the example data")
    root.mkdir(parents=True, exist_ok=True)
    inputs, targets = synthetic_samples(config, n_samples, seed)
{%- if cookiecutter.dataset == 'csv' %}
    label = config['label_column']
    with open(root / 'data.csv', 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow([f'f{i}' for i in range(inputs.shape[1])] + [label])
        for x, y in zip(inputs.tolist(), targets.tolist()):
            writer.writerow([f'{v:.5f}' for v in x] + [{{ 'y' if classification else "f'{y[0]:.5f}'" }}])
{%- elif cookiecutter.dataset == 'image_folder' %}
    mode = PIL_MODES[config['image_channels']]
    for i, (x, y) in enumerate(zip(inputs, targets)):
{%- if classification %}
        folder = root / f'class_{int(y)}'
{%- else %}
        folder = root / f'{round(float(y) * 4) / 4:g}'  # quarter steps, so that files share folders
{%- endif %}
        folder.mkdir(exist_ok=True)
        pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).contiguous()
        image = Image.frombytes(mode, (x.shape[2], x.shape[1]), bytes(pixels.flatten().tolist()))
        image.save(folder / f'{i:05d}.png')
{%- else %}
    (root / 'frames').mkdir()
    with open(root / 'index.csv', 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['file', 'label'])
        for i, (x, y) in enumerate(zip(inputs, targets)):
            name = f'frames/{i:05d}.pt'
            torch.save(x.clone(), root / name)
            writer.writerow([name, {{ 'int(y)' if classification else "f'{float(y):.5f}'" }}])
{%- endif %}
    return root


if __name__ == '__main__':
    parser = CommandParser(description='Write a small example dataset in the layout this project reads.',
                           word_option=lambda word: '--make-example')
    parser.add_argument('--make-example', metavar='DIR', required=True, help='a new or empty folder')
{%- if cookiecutter.dataset == 'image_folder' and classification %}
    parser.add_argument('--n_samples', type=int, default=max(512, 2 * DATA_CONFIG['num_classes']),
                        help='at least num_classes: a folder per class (default: %(default)s)')
{%- else %}
    parser.add_argument('--n_samples', type=int, default=512)
{%- endif %}
    parser.add_argument('--seed', type=int, default=0, help='draws the samples; every seed gives the same task, '
                        'so --seed 1 writes new samples to predict on (default: 0)')
    with one_line_errors():
        args = parser.parse_args()
        make_example(args.make_example, DATA_CONFIG, args.n_samples, args.seed)
        print_output(f'wrote {args.n_samples} samples to {args.make_example}; train on them with: '
                     f'python train.py --dataset_dir {args.make_example}')
{%- else %}


if __name__ == '__main__':
    with one_line_errors():
        raise RunError('the synthetic reader needs no files, so there is no example data to write; '
                       'python train.py trains on samples drawn in memory')
{%- endif %}

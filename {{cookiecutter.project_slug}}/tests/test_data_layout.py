"""The file layout that dataset.py reads, the example-data command, and the errors for a wrong layout."""

{% if cookiecutter.dataset == 'image_folder' -%}
import math
{% endif -%}
import os
{% if cookiecutter.dataset == 'image_folder' -%}
import struct
{% endif -%}
import subprocess
import sys
{%- if cookiecutter.dataset == 'image_folder' %}
import zlib
{%- endif %}

import pytest
{%- if cookiecutter.dataset in ['sequence', 'image_folder', 'csv'] %}
import torch
{%- endif %}
{%- if cookiecutter.dataset == 'image_folder' %}
from PIL import Image
{%- endif %}

import runfiles
import train
from conftest import PROJECT, TEST_DATA_CONFIG, run_as_command
{%- if cookiecutter.dataset == 'csv' %}
from dataset import DATA_CONFIG, HEADER_NAMES_SHOWN, CsvDataset, build_datasets, id_like_column, make_example
{%- elif cookiecutter.dataset == 'sequence' %}
from dataset import DATA_CONFIG, SequenceDataset, build_datasets, make_example
{%- elif cookiecutter.dataset == 'image_folder' %}
from dataset import DATA_CONFIG, IMAGE_SUFFIXES, LEFT_OUT_SUFFIXES, ImageFolderDataset, build_datasets, make_example
{%- else %}
from dataset import DATA_CONFIG, build_datasets, make_example
{%- endif %}
from runfiles import RunError


def test_example_data_is_read_back(tmp_path, config):
    make_example(tmp_path / 'data', TEST_DATA_CONFIG, n_samples=40)
    train_set, valid_set = build_datasets({**config, 'dataset_dir': str(tmp_path / 'data')})
    assert len(train_set) + len(valid_set) == 40


def test_make_example_command_writes_data_that_trains_as_baked(tmp_path, config):
    result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', str(tmp_path / 'd')],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    n_samples = int(result.stdout.split()[1])  # 'wrote N samples to ...'
{%- if cookiecutter.dataset == 'image_folder' and cookiecutter.task == 'classification' %}
    assert n_samples >= 512 and n_samples >= DATA_CONFIG['num_classes']  # a folder per class, however many
{%- else %}
    assert n_samples == 512
{%- endif %}
    train_set, valid_set = build_datasets({**config, **DATA_CONFIG, 'dataset_dir': str(tmp_path / 'd')})
    assert len(train_set) + len(valid_set) == n_samples


@pytest.mark.skipif(not os.path.exists('/dev/full'), reason='no /dev/full to write to (Linux has one)')
def test_make_example_command_says_when_its_line_cannot_be_written(tmp_path):
    with open('/dev/full', 'w') as full:  # its output on a full disk: the data is written, its one line is not
        result = subprocess.run([sys.executable, str(PROJECT / 'dataset.py'), '--make-example', str(tmp_path / 'd'),
                                 '--n_samples', str(max(8, DATA_CONFIG.get('num_classes', 0)))], stdout=full,
                                stderr=subprocess.PIPE, text=True)
    assert (result.returncode, result.stderr) == (
        2, 'error: cannot write to standard output (No space left on device); free some space\n')
    assert any((tmp_path / 'd').iterdir())


@pytest.mark.parametrize('option, value, message', [
    ('--n_samples', '0', 'n_samples must be at least 2 (one to train on, one to validate), got 0'),
    ('--n_samples', '-3', 'n_samples must be at least 2 (one to train on, one to validate), got -3'),
    ('--seed', '-1', 'seed must be between 0 and 4294967295, got -1'),
    ('--seed', str(2**70), f'seed must be between 0 and 4294967295, got {2**70}'),  # torch's seed would overflow
{%- if cookiecutter.dataset == 'image_folder' and cookiecutter.task == 'classification' and cookiecutter.num_classes|int > 2 %}
    ('--n_samples', str(DATA_CONFIG['num_classes'] - 1),  # a class with no image would have no folder
     f"n_samples must be at least num_classes ({DATA_CONFIG['num_classes']}) for a folder per class, "
     f"got {DATA_CONFIG['num_classes'] - 1}"),
{%- endif %}
])
def test_make_example_command_refuses_bad_sizes_and_seeds_and_writes_nothing(tmp_path, monkeypatch, capsys, option,
                                                                           value, message):
    code, _, stderr = run_as_command('dataset.py', ['--make-example', str(tmp_path / 'd'), option, value],
                                     monkeypatch, capsys)
    assert code == 2
    assert stderr == f'error: {message}\n'
    assert not (tmp_path / 'd').exists()


def test_make_example_never_overwrites(tmp_path):
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / 'mine.txt').write_text('keep me')
    with pytest.raises(RunError, match='not empty'):
        make_example(tmp_path / 'd', TEST_DATA_CONFIG, n_samples=10)
    assert (tmp_path / 'd' / 'mine.txt').read_text() == 'keep me'
    with pytest.raises(RunError, match="'.*mine.txt' is a file; choose a new folder"):
        make_example(tmp_path / 'd' / 'mine.txt', TEST_DATA_CONFIG, n_samples=10)
    assert (tmp_path / 'd' / 'mine.txt').read_text() == 'keep me'


def test_missing_dataset_dir_names_the_layout_and_the_command(workdir, capsys):
    with pytest.raises(RunError) as error:
        train.main(['--dataset_dir', 'nowhere', '--n_epoch', '1'])
    message = str(error.value)
    assert 'nowhere' in message and 'expected' in message and 'python dataset.py --make-example' in message
    # the empty folders made for this run are removed again, loggers/ and checkpoints/ too on a first run
    assert sorted(workdir.iterdir()) == []


def test_data_in_the_project_folder_is_named_when_a_script_starts_from_another(tmp_path, monkeypatch, config):
    # `python my_project/train.py` from the folder above looks for ./data there, not in the project folder
    project, elsewhere = tmp_path / 'project', tmp_path / 'elsewhere'
    make_example(project / 'data', TEST_DATA_CONFIG, n_samples=40)
    elsewhere.mkdir()
    monkeypatch.setattr(runfiles, 'PROJECT_FOLDER', project.resolve())
    monkeypatch.chdir(elsewhere)
    with pytest.raises(RunError) as error:
        build_datasets({**config, 'dataset_dir': 'data'})
    note = f"(paths are relative to the folder you are in, {elsewhere.resolve()}; '{project.resolve() / 'data'}"
    assert note in str(error.value) and f'exists: cd {project.resolve()} first); expected ' in str(error.value)
    with pytest.raises(RunError) as error:  # not in the project folder either: no note
        build_datasets({**config, 'dataset_dir': 'other'})
    assert 'relative to the folder' not in str(error.value)
    monkeypatch.chdir(project)
    assert sum(map(len, build_datasets({**config, 'dataset_dir': 'data'}))) == 40


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
{%- if cookiecutter.dataset in ['csv', 'sequence', 'image_folder'] %}


def check_predict_answers_as_the_checkpoint(checkpoint_path, data, output, *inputs):
    """predict.py on `data`, one sample, writes to `output` what the checkpoint's model answers for `inputs`."""
    import predict
    from conftest import load
    from model import build_model

    predict.predict(checkpoint_path, data, output)
    checkpoint = load(checkpoint_path)
    model = build_model(checkpoint['config']).eval()
    model.load_state_dict(checkpoint['model'])
    with torch.no_grad():
        expected = model(*inputs)[0]
    written = output.read_text().splitlines()[1].split(',')
{%- if cookiecutter.task == 'regression' %}
    assert float(written[1]) == pytest.approx(float(expected), rel=1e-5)
{%- else %}
    probabilities = [float(v) for v in written[2:]]
    assert probabilities == pytest.approx(expected.softmax(0).tolist(), abs=2e-6)
{%- endif %}
{%- endif %}
{%- if cookiecutter.dataset == 'csv' %}


def csv_file(path, rows):
    """A data.csv in this project's shape, with `rows` (lists of values, or [] for a blank line) after the header."""
    header = [f'f{i}' for i in range(DATA_CONFIG['num_features'])] + [DATA_CONFIG['label_column']]
    path.write_text('\n'.join(','.join(map(str, row)) for row in [header] + rows) + '\n')
    return str(path)


def good_row(label=1):
    return [0.5] * DATA_CONFIG['num_features'] + [label]


def test_blank_lines_in_a_csv_are_skipped(tmp_path, config):
    path = csv_file(tmp_path / 'data.csv', [good_row(), [], good_row(0), good_row(), good_row(0), [], []])
    train_set, valid_set = build_datasets({**config, 'dataset_dir': path})
    assert len(train_set) + len(valid_set) == 4


@pytest.mark.parametrize('bad_row, message', [
    (good_row()[1:], 'line 4 has {n} values but the header has {m} columns'),
    (good_row() + [7], 'line 4 has {m1} values but the header has {m} columns'),
    (['male'] + good_row()[1:], "line 4 column 'f0' holds 'male', not a number; encode text as numbers"),
    (good_row()[:-2] + ['', 1], r"line 4 column 'f{last}' has no value \(''\); fill in missing values or drop the row"),
    (good_row()[:-2] + ['NULL', 1], r"line 4 column 'f{last}' has no value \('NULL'\); fill in missing"),
    (good_row(label=' '), f"line 4 has an empty {DATA_CONFIG['label_column']}"),
    (['nan'] + good_row()[1:], 'line 4 has a feature value that is not finite'),
    (['1e39'] + good_row()[1:], 'line 4 has a feature value that is not finite'),  # beyond float32
{%- if cookiecutter.task != 'classification' %}
    (good_row(label='big'), 'line 4 has a non-numeric label'),
    (good_row(label='-inf'), 'line 4 has a label that is not finite'),
{%- endif %}
])
def test_a_bad_csv_row_is_named_by_its_line(tmp_path, config, bad_row, message):
    n_features = DATA_CONFIG['num_features']
    message = message.format(n=n_features, m=n_features + 1, m1=n_features + 2, last=n_features - 1)
    path = csv_file(tmp_path / 'data.csv', [good_row(), [], bad_row, good_row(0)])  # line 4: the blank one counts
    with pytest.raises(RunError, match=message):
        build_datasets({**config, 'dataset_dir': path})


def test_a_text_column_is_named_before_the_count_of_feature_columns(tmp_path, config):
    """A column of notes is one feature too many: 'pass --num_features N + 1' would only lead to its values' error."""
    n = DATA_CONFIG['num_features']
    header = [f'f{i}' for i in range(n)] + ['note', DATA_CONFIG['label_column']]
    rows = [[0.5] * n + [note, label] for note, label in (('', 1), ('hello', 0), ('', 1), ('', 0))]
    path = tmp_path / 'data.csv'
    path.write_text('\n'.join(','.join(map(str, row)) for row in [header] + rows) + '\n')
    with pytest.raises(RunError) as error:
        build_datasets({**config, 'dataset_dir': str(path)})
    assert str(error.value) == (f"'{path}' line 2 column 'note' has no value (''); fill in missing values or drop "
                                'the row')
    path.write_text(path.read_text().replace(',,', ',hi,'))
    with pytest.raises(RunError) as error:
        build_datasets({**config, 'dataset_dir': str(path)})
    assert str(error.value) == (f"'{path}' line 2 column 'note' holds 'hi', not a number; encode text as numbers "
                                '(one 0/1 column per category, say) or drop the column')
    path.write_text(path.read_text().replace('hi', '7').replace('hello', '8'))  # a number column: one feature more
    with pytest.raises(RunError, match=rf"has {n + 1} feature columns but num_features is {n}; pass --num_features "
                                       rf"{n + 1}$"):
        build_datasets({**config, 'dataset_dir': str(path)})


def test_a_missing_label_column_names_the_columns_to_pick_from(tmp_path, config):
    names = [f'f{i}' for i in range(DATA_CONFIG['num_features'] + 40)]  # no label column among them
    (tmp_path / 'data.csv').write_text(','.join(names) + '\n' + (','.join(['1'] * len(names)) + '\n') * 2)
    with pytest.raises(RunError) as error:
        build_datasets({**config, 'dataset_dir': str(tmp_path)})
    shown = ', '.join(repr(name) for name in names[:HEADER_NAMES_SHOWN])
    assert str(error.value) == (f"'{tmp_path / 'data.csv'}' has no column '{DATA_CONFIG['label_column']}'; pass "
                                f'--label_column with one of: {shown} and {len(names) - HEADER_NAMES_SHOWN} '
                                'more')
    label = DATA_CONFIG['label_column']
    (tmp_path / 'data.csv').write_text(f'f0,{label} ,f2\n1,2,3\n4,5,6\n')  # quoted, a trailing space shows
    with pytest.raises(RunError, match=rf"with one of: 'f0', '{label} ', 'f2'$"):
        build_datasets({**config, 'dataset_dir': str(tmp_path)})


{%- if cookiecutter.task == 'classification' %}


def test_a_csv_with_one_label_value_is_refused_for_training_only(tmp_path, config):
    path = csv_file(tmp_path / 'data.csv', [good_row(1)] * 4)
    with pytest.raises(RunError, match=r"has one label value only \('1'\); classification needs two or more"):
        build_datasets({**config, 'dataset_dir': path})
    assert len(CsvDataset(config, path, labels_required=False)) == 4  # predict.py may score a single class


def test_a_label_that_is_no_class_number_is_named_by_its_line_in_the_csv(tmp_path, config):
    from utils import labels_warning

    path = csv_file(tmp_path / 'data.csv', [good_row(0), [], good_row(-1), good_row(1)])  # '-1' on line 4
    with pytest.raises(RunError, match=r"has 3 class names but num_classes is 2; pass --num_classes 3 \(the labels are "
                                       r"read as names, .* since line 4 has label '-1', which is not a class number"):
        CsvDataset({**config, 'num_classes': 2}, path)
    with pytest.raises(RunError, match=r"line 4 has label '-1', but the model was trained on class numbers 0\.\.2; "):
        CsvDataset({**config, 'num_classes': 3}, path, labels_required=False)  # predict.py, run trained on numbers
    dataset = CsvDataset({**config, 'num_classes': 3}, path)  # as many names as outputs: it trains, with a warning
    assert dataset.classes == ['-1', '0', '1']
    assert labels_warning(dataset, 3) == ("warning: the labels are class names, numbered in sorted order, as some are "
                                          "not class numbers (e.g. '-1'), so label '0' is class 1; if the labels are "
                                          'numbers, fix the ones that are not')


def test_labels_that_differ_only_by_spaces_are_named_by_their_lines_in_the_csv(tmp_path, config):
    # a spreadsheet cell typed 'cat ' would otherwise be a class of its own, and the count error would not say why
    path = csv_file(tmp_path / 'data.csv', [good_row('cat'), good_row('dog'), [], good_row('cat '), good_row('dog')])
    with pytest.raises(RunError) as error:
        CsvDataset({**config, 'num_classes': 2}, path)
    assert str(error.value) == (f"'{path}' line 2 has label 'cat' and line 5 'cat ', which differ only by the spaces "
                                'around them; write the label the same way in both')
    with pytest.raises(RunError) as error:  # predicting: the name as it is written, and the one the model knows
        CsvDataset({**config, 'num_classes': 2}, path, labels_required=False, classes=['cat', 'dog'])
    assert str(error.value) == (f"'{path}' line 5 has label 'cat ', which the model was not trained on (it knows "
                                "'cat': the spaces around a label count)")


def test_predict_names_every_output_of_a_run_with_fewer_class_names(workdir, config):
    # before training required one output per class name, a run could have more outputs than names
    import predict
    from conftest import FAST, SMALL_MODEL, load, only_run

    path = csv_file(workdir / 'data.csv', [good_row(name) for name in ('cat', 'dog') * 8])
    assert train.main(['--dataset_dir', path, '--num_classes', '2', '--n_epoch', '1'] + SMALL_MODEL + FAST) == 0
    _, ckpts = only_run(workdir)
    checkpoint = load(ckpts / 'best_checkpoint.pt')
    checkpoint['classes'] = ['cat']  # two outputs, one name
    torch.save(checkpoint, ckpts / 'old.pt')
    features = [f'f{i}' for i in range(DATA_CONFIG['num_features'])]
    unlabelled = ','.join(map(str, good_row()[:-1]))
    (workdir / 'new.csv').write_text(','.join(features) + '\n' + unlabelled + '\n')
    predict.predict(ckpts / 'old.pt', workdir / 'new.csv', workdir / 'p.csv')
    header, row = (workdir / 'p.csv').read_text().splitlines()
    assert header == 'id,prediction,prob_cat,prob_output_1' and row.split(',')[1] in ('cat', 'output_1')
{%- endif %}


def test_a_spreadsheet_export_is_read(tmp_path, config):
    # Excel's "CSV UTF-8" starts with a byte-order mark; hand-written files put spaces after the commas
    header = [DATA_CONFIG['label_column']] + [f'f{i}' for i in range(DATA_CONFIG['num_features'])]
    rows = [[label] + [0.5] * DATA_CONFIG['num_features'] for label in (0, 1, 0, 1)]
    text = '\r\n'.join(', '.join(map(str, row)) for row in [header] + rows) + '\r\n'
    (tmp_path / 'data.csv').write_bytes(b'\xef\xbb\xbf' + text.encode())
    train_set, valid_set = build_datasets({**config, 'dataset_dir': str(tmp_path)})
    assert len(train_set) + len(valid_set) == 4
    assert sorted(float(train_set.dataset.targets[i]) for i in range(4)) == [0, 0, 1, 1]


@pytest.mark.parametrize('separator', [';', '\t'])
def test_a_csv_with_another_separator_is_a_clear_error(tmp_path, config, separator):
    path = csv_file(tmp_path / 'data.csv', [good_row(), good_row(0)])
    data = tmp_path / 'data.csv'
    data.write_text(data.read_text().replace(',', separator))
    for labels_required in (True, False):  # training and predict.py
        with pytest.raises(RunError) as error:
            CsvDataset(config, path, labels_required=labels_required)
        assert f"separates its values with {separator!r}; save it with commas" in str(error.value)


def test_a_column_without_a_name_is_a_clear_error(tmp_path, config):
    # pandas' df.to_csv('data.csv') writes the row index as a first column named ''
    rows = [[i] + good_row(i % 2) for i in range(4)]
    header = [''] + [f'f{i}' for i in range(DATA_CONFIG['num_features'] - 1)] + [DATA_CONFIG['label_column']]
    (tmp_path / 'data.csv').write_text('\n'.join(','.join(map(str, row)) for row in [header] + rows) + '\n')
    for labels_required in (True, False):  # training and predict.py
        with pytest.raises(RunError, match=r"data.csv' column 1 has no name in the header \(pandas' to_csv writes"):
            CsvDataset(config, tmp_path / 'data.csv', labels_required=labels_required)


def test_a_csv_that_is_not_utf8_is_a_clear_error(tmp_path, config):
    path = csv_file(tmp_path / 'data.csv', [good_row(), good_row(0), good_row(), good_row(0)])
    text = (tmp_path / 'data.csv').read_text().splitlines()
    text[2] = text[2].replace('0.5', '0.5 caf\u00e9', 1)  # Excel's plain "CSV" writes the Windows code page
    (tmp_path / 'data.csv').write_bytes('\r\n'.join(text).encode('cp1252'))
    for labels_required in (True, False):  # training and predict.py
        with pytest.raises(RunError, match=r"data.csv' line 3 is not UTF-8 text; save the file as UTF-8 \(in Excel"):
            CsvDataset(config, path, labels_required=labels_required)


def test_a_csv_with_two_columns_of_one_name_is_a_clear_error(tmp_path, config):
    # columns are taken by name: a second 'label' column would otherwise train as a feature
    header = [f'f{i}' for i in range(DATA_CONFIG['num_features'])] + [DATA_CONFIG['label_column']] * 2
    rows = [good_row(i % 2) + [i % 2] for i in range(4)]
    (tmp_path / 'data.csv').write_text('\n'.join(','.join(map(str, row)) for row in [header] + rows) + '\n')
    n = DATA_CONFIG['num_features']
    for labels_required in (True, False):  # training and predict.py
        with pytest.raises(RunError, match=rf"data.csv' has two columns named '{DATA_CONFIG['label_column']}' "
                                           rf'\(columns {n + 1} and {n + 2}\); rename or remove one'):
            CsvDataset(config, tmp_path / 'data.csv', labels_required=labels_required)


def reordered_csv(path, rows, order, names=None):
    """csv_file's table with its columns (the label's included) taken in `order`, renamed by `names` if given."""
    csv_file(path, rows)
    table = [line.split(',') for line in path.read_text().splitlines()]
    if names:
        table[0] = names
    path.write_text('\n'.join(','.join(line[i] for i in order) for line in table) + '\n')
    return path


def test_predict_takes_the_feature_columns_by_name_in_any_order(tmp_path, config):
    n = DATA_CONFIG['num_features']
    rows = [[round(0.1 * i + row, 1) for i in range(n)] + [row % 2] for row in range(4)]  # every value differs
    trained = CsvDataset(config, reordered_csv(tmp_path / 'data.csv', rows, range(n + 1)))
    assert trained.feature_columns == [f'f{i}' for i in range(n)]
    label_first_then_reversed = [n] + list(range(n))[::-1]
    new = reordered_csv(tmp_path / 'new.csv', rows, label_first_then_reversed)
    as_read = CsvDataset(config, new, labels_required=False).inputs  # a checkpoint without the columns' names
    assert n == 1 or not torch.equal(as_read, trained.inputs)
    matched = CsvDataset(config, new, labels_required=False, feature_columns=trained.feature_columns)
    assert torch.equal(matched.inputs, trained.inputs) and torch.equal(matched.targets, trained.targets)
    assert matched.feature_columns == trained.feature_columns
    unlabelled = reordered_csv(tmp_path / 'unlabelled.csv', rows, list(range(n))[::-1])
    assert torch.equal(CsvDataset(config, unlabelled, labels_required=False,
                                  feature_columns=trained.feature_columns).inputs, trained.inputs)

    label = DATA_CONFIG['label_column']
    more = f' and {n - 5} more' if n > 5 else ''  # five names at most, then a count
    every = ', '.join(f"'f{i}'" for i in range(min(n, 5))) + more, ', '.join(f"'x{i}'" for i in range(min(n, 5))) + more
    for names, differ in [([f'x{i}' for i in range(n)] + [label], 'missing {}; not trained on {}'.format(*every)),
                          (['g0'] + [f'f{i}' for i in range(1, n)] + [label], "missing 'f0'; not trained on 'g0'"),
                          ([f'f{i}' for i in range(n)] + ['target'], "not trained on 'target'")]:  # another label name
        renamed = reordered_csv(tmp_path / 'renamed.csv', rows, range(n + 1), names)
        with pytest.raises(RunError) as error:
            CsvDataset(config, renamed, labels_required=False, feature_columns=trained.feature_columns)
        assert str(error.value) == (f"'{renamed}' has other feature columns than the model was trained on ({differ}); "
                                    "give it the training data's feature columns, in any order, and name a label "
                                    f"column '{label}' or leave it out")


def test_a_run_keeps_its_feature_columns_for_predict_and_init_from(workdir):
    import predict
    from conftest import FAST, SMALL_MODEL, load, snapshot

    n = DATA_CONFIG['num_features']
    (workdir / 'data').mkdir()
    rows = [[round(0.1 * i + row % 7, 1) for i in range(n)] + [row % 2] for row in range(32)]
    reordered_csv(workdir / 'data' / 'data.csv', rows, range(n + 1))
    assert train.main(['--dataset_dir', 'data', '--n_epoch', '1', '--run_name', 'first'] + SMALL_MODEL + FAST) == 0
    best = workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt'
    assert load(best)['feature_columns'] == [f'f{i}' for i in range(n)]
    reordered_csv(workdir / 'new.csv', rows, [n] + list(range(n))[::-1])  # the label first, the features reversed
    predict.predict(best, workdir / 'data', workdir / 'p.csv')
    predict.predict(best, workdir / 'new.csv', workdir / 'q.csv')
    assert (workdir / 'p.csv').read_text() == (workdir / 'q.csv').read_text()

    if n > 1:  # --init_from: the weights are per input, so a shared column must stay the same input
        (workdir / 'swapped').mkdir()
        reordered_csv(workdir / 'swapped' / 'data.csv', rows, [1, 0] + list(range(2, n + 1)))
        before = snapshot(workdir)
        with pytest.raises(RunError) as error:
            train.main(['--dataset_dir', 'swapped', '--n_epoch', '1', '--init_from', 'first'] + SMALL_MODEL + FAST)
        assert str(error.value) == (f"--init_from '{best.relative_to(workdir)}' was trained with feature column 'f1' "
                                    'as input 2, but it is input 1 here (the feature columns are in another order); '
                                    "order them as in that run's data")
        with pytest.raises(RunError, match=r"^--init_from '.*' was trained with feature column 'f1' as input 2"):
            train.main(['--dataset_dir', 'swapped', '--n_epoch', '1', '--init_from', 'first', '--init_partial', 'true']
                       + SMALL_MODEL + FAST)  # the same num_features: the first layer would load, in the old order
        assert snapshot(workdir) == before
    (workdir / 'inserted').mkdir()  # a new column first: with another num_features the inputs' weights start fresh
    reordered_csv(workdir / 'inserted' / 'data.csv', [[9.5 - row] + row_values for row, row_values in enumerate(rows)],
                  range(n + 2), ['new'] + [f'f{i}' for i in range(n)] + [DATA_CONFIG['label_column']])
    assert train.main(['--dataset_dir', 'inserted', '--n_epoch', '1', '--run_name', 'inserted', '--init_from', 'first',
                       '--init_partial', 'true', '--num_features', str(n + 1)] + SMALL_MODEL + FAST) == 0
    note = (workdir / 'loggers' / 'inserted' / 'note.log').read_text()
    fresh = note.split(' start fresh: ')[1].split(';')[0].replace("'", '').split(', ')
    assert {'feature_mean', 'feature_std'} <= set(fresh) and any(name.endswith('.weight') for name in fresh)
    (workdir / 'renamed').mkdir()  # other data, with a column of its own: fine-tuning
    names = [f'f{i}' for i in range(n - 1)] + ['new', DATA_CONFIG['label_column']]
    reordered_csv(workdir / 'renamed' / 'data.csv', rows, range(n + 1), names)
    assert train.main(['--dataset_dir', 'renamed', '--n_epoch', '1', '--run_name', 'second', '--init_from', 'first']
                      + SMALL_MODEL + FAST) == 0
    assert load(workdir / 'checkpoints' / 'second' / 'best_checkpoint.pt')['feature_columns'] == names[:-1]


def first_column(path):
    return [line.split(',')[0] for line in path.read_text().splitlines()]


def test_an_id_column_is_no_feature_and_names_the_predictions(workdir):
    import predict
    from conftest import FAST, SMALL_MODEL, load

    n, label = DATA_CONFIG['num_features'], DATA_CONFIG['label_column']
    rows = [[round(0.1 * i + row % 7, 1) for i in range(n)] + [row % 2] for row in range(32)]
    ids = [f'p{1000 - row}' for row in range(32)]  # text, and not the row numbers
    table = [['PassengerId'] + [f'f{i}' for i in range(n)] + [label]] + [[i] + row for i, row in zip(ids, rows)]
    (workdir / 'data').mkdir()
    (workdir / 'data' / 'data.csv').write_text('\n'.join(','.join(map(str, line)) for line in table) + '\n')
    args = ['--dataset_dir', 'data', '--n_epoch', '1'] + SMALL_MODEL + FAST
    assert train.main(args + ['--id_column', 'PassengerId', '--run_name', 'first']) == 0
    best = workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt'
    assert load(best)['feature_columns'] == [f'f{i}' for i in range(n)]  # the ids are no input
    predict.predict(best, workdir / 'data', workdir / 'p.csv')
    assert first_column(workdir / 'p.csv') == ['id'] + ids
    csv_file(workdir / 'no_ids.csv', rows)  # a file without the column: row numbers
    predict.predict(best, workdir / 'no_ids.csv', workdir / 'q.csv')
    assert first_column(workdir / 'q.csv') == ['id'] + [str(row) for row in range(32)]
    with pytest.raises(RunError) as error:  # named on the command line, the column must be there
        predict.predict(best, workdir / 'no_ids.csv', workdir / 'r.csv', id_column='PassengerId')
    assert str(error.value) == ("the data has no column 'PassengerId' (--id_column); name one of its columns, or leave "
                                '--id_column out')
    (workdir / 'plain').mkdir()  # a run trained without ids, predicting on a file with them
    csv_file(workdir / 'plain' / 'data.csv', rows)
    assert train.main(['--dataset_dir', 'plain', '--n_epoch', '1', '--run_name', 'plain'] + SMALL_MODEL + FAST) == 0
    plain = workdir / 'checkpoints' / 'plain' / 'best_checkpoint.pt'
    with pytest.raises(RunError, match=r"not trained on 'PassengerId'"):
        predict.predict(plain, workdir / 'data', workdir / 'r.csv')
    with pytest.raises(RunError) as error:
        predict.predict(plain, workdir / 'data', workdir / 'r.csv', id_column=label)
    assert str(error.value) == (f"--id_column '{label}' is the run's label column; name the column of sample ids, "
                                'or leave --id_column out')
    predict.predict(plain, workdir / 'data', workdir / 'r.csv', id_column='PassengerId')
    assert first_column(workdir / 'r.csv') == ['id'] + ids  # the errors above left no r.csv: it is never replaced
    with pytest.raises(RunError) as error:
        train.main(args + ['--id_column', 'Id'])
    more = len(table[0]) - HEADER_NAMES_SHOWN
    shown = ', '.join(map(repr, table[0][:HEADER_NAMES_SHOWN])) + (f' and {more} more' if more > 0 else '')
    assert str(error.value) == ("'data/data.csv' has no column 'Id' (id_column); pass --id_column with one of: "
                                f"{shown}, or --id_column '' to number the rows")
    with pytest.raises(RunError) as error:
        train.main(args + ['--id_column', label])
    assert str(error.value) == (f"id_column and label_column are both '{label}'; name the ids' column in "
                                "--id_column, or pass --id_column '' to number the rows")
    with pytest.raises(RunError, match=r'^cannot change id_column when resuming: it fixes which data trains and '):
        train.main(args + ['--resume', 'first', '--n_epoch', '2', '--id_column', ''])
    (workdir / 'blank').mkdir()  # an id left empty, in training and in predict.py's data
    table[3][0] = ' '
    (workdir / 'blank' / 'data.csv').write_text('\n'.join(','.join(map(str, line)) for line in table) + '\n')
    blank = "'blank/data.csv' line 4 has an empty PassengerId (id_column); fill it in"
    with pytest.raises(RunError) as error:
        train.main(['--dataset_dir', 'blank', '--n_epoch', '1', '--id_column', 'PassengerId'] + SMALL_MODEL + FAST)
    assert str(error.value) == blank
    with pytest.raises(RunError) as error:
        predict.predict(best, workdir / 'blank' / 'data.csv', workdir / 's.csv')
    assert str(error.value) == blank.replace("'blank/data.csv'", f"'{workdir / 'blank' / 'data.csv'}'")
    assert not (workdir / 's.csv').exists()


def test_a_numeric_id_column_left_as_a_feature_is_named_in_the_count_error_and_a_warning(workdir):
    from conftest import FAST, SMALL_MODEL

    n, label = DATA_CONFIG['num_features'], DATA_CONFIG['label_column']
    rows = [[round(0.1 * i + row % 7, 1) for i in range(n)] + [row % 2] for row in range(32)]
    table = [['PassengerId'] + [f'f{i}' for i in range(n)] + [label]] + [[892 + i] + row for i, row in enumerate(rows)]
    (workdir / 'data').mkdir()
    (workdir / 'data' / 'data.csv').write_text('\n'.join(','.join(map(str, line)) for line in table) + '\n')
    args = ['--dataset_dir', 'data', '--n_epoch', '1'] + SMALL_MODEL + FAST
    with pytest.raises(RunError) as error:  # one column too many, and it reads as ids
        train.main(args)
    assert str(error.value) == (f"'data/data.csv' has {n + 1} feature columns but num_features is {n}; pass "
                                "--id_column PassengerId if 'PassengerId' holds sample ids (not a feature), else "
                                f'--num_features {n + 1}')
    assert train.main(args + ['--num_features', str(n + 1), '--run_name', 'ids']) == 0
    warning = (f"warning: feature column 'PassengerId' holds a different whole number in each row, as sample ids do, "
               f"and trains as a feature; if it holds ids, pass --id_column PassengerId --num_features {n}, which "
               "makes them the samples' ids")
    log = workdir / 'loggers' / 'ids' / 'train.log'
    assert [line.split(' | ')[-1] for line in log.read_text().splitlines() if 'PassengerId' in line] == [warning]
    assert train.main(args + ['--num_features', str(n + 1), '--resume', 'ids', '--n_epoch', '2']) == 0
    assert log.read_text().count(warning) == 1  # a resumed run cannot change id_column: no second warning
    assert train.main(args + ['--id_column', 'PassengerId', '--run_name', 'named']) == 0
    assert 'warning: feature column' not in (workdir / 'loggers' / 'named' / 'train.log').read_text()


@pytest.mark.parametrize('name', ['id', 'ID', 'Id', 'sample_id', 'user id', 'user-ID', 'PassengerId', 'customerID',
                                  'index', 'Unnamed: 0'])
def test_id_like_column_takes_id_names_of_distinct_whole_numbers(name):
    ids = torch.tensor([[0.5, 3.0], [0.25, 1.0], [0.5, 2.0]])
    assert id_like_column(['x', name], ids) == name
    assert id_like_column(['x', name], ids[:, [1, 1]] * 0.5) is None  # 1.5: not a whole number
    assert id_like_column(['x', name], torch.tensor([[0.5, 3.0], [0.25, 1.0], [0.5, 3.0]])) is None  # 3 twice


@pytest.mark.parametrize('name', ['valid', 'paid', 'ACID', 'UUID', 'idx', 'identity', 'count', 'grid'])
def test_id_like_column_leaves_other_names_to_the_features(name):
    assert id_like_column([name], torch.tensor([[3.0], [1.0], [2.0]])) is None


def test_the_id_warning_names_a_second_id_column_when_id_column_is_set_and_predict_gets_none(tmp_path, config):
    n, label = DATA_CONFIG['num_features'], DATA_CONFIG['label_column']
    table = ([['name', 'customerID'] + [f'f{i}' for i in range(n - 1)] + [label]]
             + [[f'c{row}', 4_000_000_000 + row] + [0.5] * (n - 1) + [row % 2] for row in range(8)])  # one float32
    (tmp_path / 'data.csv').write_text('\n'.join(','.join(map(str, line)) for line in table) + '\n')
    train_set, _ = build_datasets({**config, 'dataset_dir': str(tmp_path), 'id_column': 'name'})
    assert train_set.dataset.warnings == [
        "warning: feature column 'customerID' holds a different whole number in each row, as sample ids do, and "
        "trains as a feature; if it holds ids, drop it from the data (id_column is 'name')"]
    assert CsvDataset({**config, 'id_column': 'name'}, tmp_path, labels_required=False).warnings == []


def test_predict_reads_a_csv_with_one_row_and_no_labels(tmp_path, config):
    path = tmp_path / 'new.csv'
    path.write_text(','.join(f'f{i}' for i in range(DATA_CONFIG['num_features'])) + '\n'
                    + ','.join(['0.5'] * DATA_CONFIG['num_features']) + '\n')
    dataset = CsvDataset(config, path, labels_required=False)
    assert len(dataset) == 1 and not dataset.has_labels


def scaled_csv(path, seed, units):
    """A learnable data.csv whose feature columns (and regression target) are in `units` (one per column)."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(64, DATA_CONFIG['num_features'], generator=g)
{%- if cookiecutter.task == 'regression' %}
    labels = (features[:, :4].sum(1) * units[-1] + 10 * units[-1]).tolist()
{%- else %}
    labels = (features[:, :4].sum(1) > 0).long().tolist()
{%- endif %}
    rows = [[f'{v:.7g}' for v in row] + [label] for row, label in zip((features * units).tolist(), labels)]
    return csv_file(path, rows)


def test_the_model_keeps_the_training_splits_scaling_for_predict_and_init_from(workdir, config):
    # features in units from thousandths to thousands: train.py fits the model's scaling to the training split
    # (not the whole file); the checkpoint keeps it, so predict.py on one row and a run --init_from use it as is
    from conftest import FAST, SMALL_MODEL, load

    units = torch.logspace(-3, 3, DATA_CONFIG['num_features'])
    (workdir / 'data').mkdir()
    scaled_csv(workdir / 'data' / 'data.csv', 0, units)
    assert train.main(['--dataset_dir', 'data', '--n_epoch', '1', '--run_name', 'first'] + SMALL_MODEL + FAST) == 0
    weights = load(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt')['model']
    assert 'has no fit_' not in (workdir / 'loggers' / 'first' / 'train.log').read_text()  # no warning: the MLP fits
    train_set, _ = build_datasets({**config, 'dataset_dir': 'data'})
    inputs, targets = (x.double() for x in train_set.dataset[train_set.indices])
    assert len(inputs) < 64  # the validation samples are left out
    assert torch.allclose(weights['feature_mean'].double(), inputs.mean(0), rtol=1e-5)
    assert torch.allclose(weights['feature_std'].double(), inputs.std(0, correction=0), rtol=1e-5)
{%- if cookiecutter.task == 'regression' %}
    assert torch.allclose(weights['target_mean'].double(), targets.mean(0), rtol=1e-5)
    assert torch.allclose(weights['target_std'].double(), targets.std(0, correction=0), rtol=1e-5)
{%- endif %}

    header, first_row = (workdir / 'data' / 'data.csv').read_text().splitlines()[:2]
    (workdir / 'one.csv').write_text(header.rsplit(',', 1)[0] + '\n' + first_row.rsplit(',', 1)[0] + '\n')
    first_features = torch.tensor([[float(v) for v in first_row.split(',')[:-1]]])
    check_predict_answers_as_the_checkpoint(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt',
                                            workdir / 'one.csv', workdir / 'p.csv', first_features)

    (workdir / 'other').mkdir()
    scaled_csv(workdir / 'other' / 'data.csv', 1, units * 10)
    assert train.main(['--dataset_dir', 'other', '--n_epoch', '1', '--run_name', 'second', '--init_from', 'first']
                      + SMALL_MODEL + FAST) == 0
    continued = load(workdir / 'checkpoints' / 'second' / 'best_checkpoint.pt')['model']
    assert all(torch.equal(continued[key], weights[key]) for key in weights if key.endswith(('_mean', '_std')))
{%- elif cookiecutter.dataset == 'sequence' %}


def test_an_index_that_is_not_utf8_is_a_clear_error(tmp_path, config):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=6)
    index = tmp_path / 'data' / 'index.csv'
    lines = index.read_text().splitlines()
    lines[3] = lines[3].replace('.pt', '_caf\u00e9.pt')  # Excel's plain "CSV" writes the Windows code page
    index.write_bytes('\r\n'.join(lines).encode('cp1252'))
    with pytest.raises(RunError, match=r"index.csv' line 4 is not UTF-8 text; save the file as UTF-8 \(in Excel"):
        SequenceDataset(config, tmp_path / 'data')


@pytest.mark.parametrize('bad', ['no label', 'extra value', 'empty label'])
def test_a_bad_index_line_is_named(tmp_path, config, bad):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=6)
    index = tmp_path / 'data' / 'index.csv'
    header, first, *rest = index.read_text().splitlines()
    file = first.split(',')[0]
    row = {'no label': file, 'extra value': first + ',7', 'empty label': file + ','}[bad]
    index.write_text('\n'.join([header, rest[0], '', row, *rest[1:]]) + '\n')  # on line 4: blank lines count
    with pytest.raises(RunError, match='line 4 does not have one value per column'):
        SequenceDataset(config, tmp_path / 'data')


def test_an_index_saved_by_a_spreadsheet_is_read(tmp_path, config):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    index = tmp_path / 'data' / 'index.csv'
    text = index.read_text().replace(',', ', ').replace('\n', '\r\n')
    index.write_bytes(b'\xef\xbb\xbf' + text.encode())  # a byte-order mark, spaces after commas, CRLF
    dataset = SequenceDataset(config, tmp_path / 'data')
    assert len(dataset) == 4 and dataset[0][0].shape[1] == DATA_CONFIG['num_features']


def relabel(index, labels):
    """Rewrite index.csv's label column: labels[i] for data row i (None keeps the row's label)."""
    header, *rows = index.read_text().splitlines()
    rows = [row if label is None else f"{row.split(',')[0]},{label}" for row, label in zip(rows, labels)]
    index.write_text('\n'.join([header, *rows]) + '\n')
{%- if cookiecutter.task == 'classification' %}


def test_an_index_with_one_label_value_is_refused_for_training_only(tmp_path, config):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    relabel(tmp_path / 'data' / 'index.csv', [1] * 4)
    with pytest.raises(RunError, match=r"has one label value only \('1'\); classification needs two or more"):
        SequenceDataset(config, tmp_path / 'data')
    assert len(SequenceDataset(config, tmp_path / 'data', labels_required=False)) == 4


def test_a_label_that_is_no_class_number_is_named_by_its_line_in_the_index(tmp_path, config):
    from utils import labels_warning

    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    relabel(tmp_path / 'data' / 'index.csv', [0, -1, 1, 1])  # '-1' on line 3
    with pytest.raises(RunError, match=r"has 3 class names but num_classes is 2; pass --num_classes 3 \(the labels are "
                                       r"read as names, .* since line 3 has label '-1', which is not a class number"):
        SequenceDataset({**config, 'num_classes': 2}, tmp_path / 'data')
    with pytest.raises(RunError, match=r"line 3 has label '-1', but the model was trained on class numbers 0\.\.2; "):
        SequenceDataset({**config, 'num_classes': 3}, tmp_path / 'data', labels_required=False)
    dataset = SequenceDataset({**config, 'num_classes': 3}, tmp_path / 'data')  # it trains, with a warning
    assert dataset.classes == ['-1', '0', '1']
    first = (tmp_path / 'data' / 'index.csv').read_text().splitlines()[1].split(',')[0]
    one_file = SequenceDataset({**config, 'num_classes': 3}, tmp_path / 'data' / first, labels_required=False,
                               classes=['ant', 'bee', 'cat'])  # predict.py --data one file, a run trained on names
    assert len(one_file) == 1
    assert labels_warning(dataset, 3) == ("warning: the labels are class names, numbered in sorted order, as some are "
                                          "not class numbers (e.g. '-1'), so label '0' is class 1; if the labels are "
                                          'numbers, fix the ones that are not')
{%- else %}


@pytest.mark.parametrize('label, message', [('big', 'line 3 has a non-numeric label'),
                                            ('nan', 'line 3 has a label that is not finite'),
                                            ('1e39', 'line 3 has a label that is not finite')])
def test_a_bad_regression_label_is_named_by_its_line(tmp_path, config, label, message):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    relabel(tmp_path / 'data' / 'index.csv', [None, label, None, None])
    with pytest.raises(RunError, match=message):
        SequenceDataset(config, tmp_path / 'data')
{%- endif %}


@pytest.mark.parametrize('content, message', [
    ('text', "cannot read '{}' with torch.load(weights_only=True); each file must hold one (frames, {}) tensor saved "
             'with torch.save'),
    ('dict', "'{}' holds a dict, not a (frames, {}) tensor; save the tensor itself with torch.save"),
    ('shape', "'{}' has shape (3,), expected (frames, {}) with at least one frame; fix or remove it"),
    ('no frames', "'{}' has shape (0, {}), expected (frames, {}) with at least one frame; fix or remove it"),
    ('nan', "'{}' holds values that are not finite (nan or inf); fix or remove it"),
])
def test_an_unreadable_sample_is_a_clear_error(tmp_path, config, content, message):
    """Each names the file by its path (dataset_dir and the index's name), which can be opened as it is."""
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    dataset = SequenceDataset(config, tmp_path / 'data')
    sample = tmp_path / 'data' / dataset.files[0]
    if content == 'text':
        sample.write_text('not a tensor')
    elif content == 'nan':
        torch.save(torch.full((5, DATA_CONFIG['num_features']), float('nan')), sample)
    elif content == 'no frames':  # before: the model's mean over no frames made the loss NaN, blamed on lr
        torch.save(torch.zeros(0, DATA_CONFIG['num_features']), sample)
    else:
        torch.save({'frames': torch.zeros(3)} if content == 'dict' else torch.zeros(3), sample)
    with pytest.raises(RunError) as error:
        dataset[0]
    features = DATA_CONFIG['num_features']
    assert str(error.value) == message.format(sample, features, features)
    assert dataset[1][0].shape[1] == DATA_CONFIG['num_features']  # the other samples still read


@pytest.mark.parametrize('n_missing', [1, 3])
def test_files_the_index_lists_that_are_missing_are_named_before_training(tmp_path, config, n_missing):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=6)
    files = SequenceDataset(config, tmp_path / 'data').files
    for name in files[2:2 + n_missing]:
        (tmp_path / 'data' / name).unlink()
    count = 'a missing file' if n_missing == 1 else '3 missing files, e.g.'
    with pytest.raises(RunError) as error:
        SequenceDataset(config, tmp_path / 'data')
    assert str(error.value).startswith(f"'{tmp_path / 'data' / 'index.csv'}' lists {count} "
                                       f"'{tmp_path / 'data' / files[2]}'; expected ")


def test_an_unreadable_sample_in_a_worker_is_still_one_line(workdir, data_args, config):
    # a validation sample other than the first: step 3.8 reads that one, and 3.9's scaling the training ones,
    # in this process; a DataLoader worker reads this one
    _, valid_set = build_datasets({**config, 'dataset_dir': str(workdir / 'data')})
    name = valid_set.dataset.files[valid_set.indices[1]]
    (workdir / 'data' / name).write_text('not a tensor')
    with pytest.raises(RunError) as error:
        train.main(data_args + ['--n_epoch', '1', '--num_workers', '1'])
    assert str(error.value).startswith(f"cannot read '{workdir / 'data' / name}'") and '\n' not in str(error.value)


def test_the_model_keeps_the_training_splits_feature_scaling_for_predict_and_init_from(workdir, config):
    # frames whose features are in units from thousandths to thousands: train.py fits the model's scaling to the
    # training split's real frames (not the validation ones, nor the padding); the checkpoint keeps it, so
    # predict.py on one file and a run --init_from use it as is
    from conftest import FAST, SMALL_MODEL, load

    units = torch.logspace(-3, 3, DATA_CONFIG['num_features'])
    for folder, seed, scale in (('data', 0, units), ('other', 1, units * 10)):
        make_example(workdir / folder, TEST_DATA_CONFIG, n_samples=64, seed=seed)
        for path in (workdir / folder / 'frames').iterdir():
            torch.save(torch.load(path, weights_only=True) * scale + 5 * scale, path)
    assert train.main(['--dataset_dir', 'data', '--n_epoch', '1', '--run_name', 'first'] + SMALL_MODEL + FAST) == 0
    weights = load(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt')['model']
    assert 'has no fit_' not in (workdir / 'loggers' / 'first' / 'train.log').read_text()  # no warning: the model fits
    train_set, _ = build_datasets({**config, 'dataset_dir': 'data'})
    frames = torch.cat([train_set[i][0] for i in range(len(train_set))]).double()
    assert len(train_set) < 64  # the validation samples are left out
    assert torch.allclose(weights['feature_mean'].double(), frames.mean(0), rtol=1e-5)
    assert torch.allclose(weights['feature_std'].double(), frames.std(0, correction=0), rtol=1e-5)

    one = train_set.dataset.files[train_set.indices[0]]
    frames = torch.load(workdir / 'data' / one, weights_only=True).unsqueeze(0)
    check_predict_answers_as_the_checkpoint(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt',
                                            workdir / 'data' / one, workdir / 'p.csv', frames,
                                            torch.zeros(frames.shape[:2], dtype=torch.bool))

    assert train.main(['--dataset_dir', 'other', '--n_epoch', '1', '--run_name', 'second', '--init_from', 'first']
                      + SMALL_MODEL + FAST) == 0
    continued = load(workdir / 'checkpoints' / 'second' / 'best_checkpoint.pt')['model']
    assert all(torch.equal(continued[key], weights[key]) for key in ('feature_mean', 'feature_std'))


def test_the_feature_scaling_reads_the_real_frames_of_a_few_training_sequences():
    from dataset import collate_fn
    from utils import training_frames

    # sequence i: i % 5 + 1 frames, each holding i + 1 (so a padded 0 would show); views of two tensors, which
    # forkserver workers can take (conftest's needs_forkserver), where 600 separate ones fail
    lengths = [i % 5 + 1 for i in range(300)]
    each = torch.cat([torch.full((n, 3), i + 1.0) for i, n in enumerate(lengths)]).split(lengths)
    sequences = list(zip(each, torch.zeros(300, 1)))
    frames = training_frames(sequences, collate_fn, most=40)
    values = frames[:, 0].tolist()
    assert frames.shape[1] == 3 and 0 not in values
    assert len(set(values)) == 40 and max(values) - min(values) > 150  # 40 sequences, drawn across the data
    assert all(values.count(v) == (int(v) - 1) % 5 + 1 for v in set(values))  # each with all its real frames
    assert torch.equal(training_frames(sequences, collate_fn, most=40, num_workers=2), frames)  # as train.py's workers
{%- elif cookiecutter.dataset == 'image_folder' %}


@pytest.fixture
def config(config):
    """This file's reads are at the baked image_size (the tests' training runs use at most 32x32, conftest)."""
    return {**config, 'image_size': DATA_CONFIG['image_size']}


# small examples: two class folders, and the num_classes that training needs for them (regression ignores it)
TWO_CLASSES = {'num_classes': 2}


def two_class_images(folder, config, n_samples=4):
    """Example images in `folder`, in two class (or target) folders, read as training reads them."""
    make_example(folder, {**DATA_CONFIG, **TWO_CLASSES}, n_samples=n_samples)
    return read_images(folder, config)


def read_images(folder, config):
    return ImageFolderDataset({**config, **TWO_CLASSES}, folder)


def dim_copy(source, target, levels):
    """The images under `source` written under `target` with each channel's 0..255 squeezed into levels[channel]
    (first, last): a dim, low-contrast image, as a camera's few levels read."""
    for path in source.rglob('*.png'):
        image = Image.open(path)
        bands = [band.point(lambda v, low=low, high=high: low + v * (high - low) // 255)
                 for band, (low, high) in zip(image.split(), levels)]
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        Image.merge(image.mode, bands).save(target / path.relative_to(source))


def test_the_model_keeps_the_training_splits_channel_scaling_for_predict_and_init_from(workdir, config):
    # dim images, each channel in a narrow band of levels: train.py fits the model's scaling of each channel to the
    # training split (not the validation images); the checkpoint keeps it, so predict.py on one image and a run
    # --init_from use it as is
    from conftest import load, tiny_data_args

    shared = [str(arg) for arg in tiny_data_args(workdir / 'example')] + ['--n_epoch', '1']  # its example images
    shared += ['--image_size', str(config['image_size'])]  # the baked size: past 32x32 the fit reads a grid
    dim_copy(workdir / 'example' / 'data', workdir / 'data', [(10, 40), (120, 130), (200, 255), (60, 90)])
    dim_copy(workdir / 'example' / 'data', workdir / 'other', [(0, 255)] * 4)
    assert train.main(shared + ['--dataset_dir', 'data', '--run_name', 'first', '--num_workers', '1']) == 0
    weights = load(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt')['model']
    assert 'has no fit_' not in (workdir / 'loggers' / 'first' / 'train.log').read_text()  # no warning: the model fits
    train_set, valid_set = build_datasets({**config, 'dataset_dir': 'data'})
    images = torch.stack([train_set[i][0] for i in range(len(train_set))]).double()
    stride = max(1, images.shape[-1] // 32)  # of images larger than 32x32, the fit reads a grid of pixels
    channels = images[..., ::stride, ::stride].transpose(0, 1).flatten(1)
    assert torch.allclose(weights['feature_mean'].flatten().double(), channels.mean(1), rtol=1e-5)
    assert torch.allclose(weights['feature_std'].flatten().double(), channels.std(1, correction=0), rtol=1e-5)
    assert weights['feature_std'].max() < 0.3  # the bands are narrow: the scaling widens them

    one = train_set.dataset.files[train_set.indices[0]]
    check_predict_answers_as_the_checkpoint(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt', one,
                                            workdir / 'p.csv', train_set[0][0].unsqueeze(0))

    assert train.main(shared + ['--dataset_dir', 'other', '--run_name', 'second', '--init_from', 'first']) == 0
    continued = load(workdir / 'checkpoints' / 'second' / 'best_checkpoint.pt')['model']
    assert all(torch.equal(continued[key], weights[key]) for key in ('feature_mean', 'feature_std'))


def test_the_channel_scaling_reads_a_grid_of_pixels_of_a_few_training_images():
    from utils import training_images

    # image i holds i + y * 1000 at row y, so the grid and the images drawn show
    rows = torch.arange(64.0).view(1, 64, 1).expand(2, 64, 64) * 1000
    # views of two tensors, which forkserver workers can take (conftest's needs_forkserver), where 1,200 separate fail
    images = list(zip(rows + torch.arange(600.0).view(600, 1, 1, 1), torch.zeros(600, dtype=torch.long)))
    read = training_images(images, None, most=100)
    assert read.shape == (100, 2, 32, 32)  # 64x64 images: every second row and column
    assert read[0, 0, :, 0].tolist() == [row * 1000 + read[0, 0, 0, 0].item() for row in range(0, 64, 2)]
    drawn = read[:, 0, 0, 0].tolist()
    assert len(set(drawn)) == 100 and max(drawn) - min(drawn) > 400  # 100 images, drawn across the data
    assert training_images(images[:8], None).shape == (8, 2, 32, 32)  # every one, when there are fewer
    assert torch.equal(training_images(images, None, most=100, num_workers=2), read)  # as train.py's workers read


@pytest.mark.parametrize('damage', ['not an image', 'truncated'])
def test_an_unreadable_image_is_a_clear_error(tmp_path, config, damage):
    dataset = two_class_images(tmp_path / 'data', config)
    image = dataset.files[0]
    image.write_bytes(b'not an image' if damage == 'not an image' else image.read_bytes()[:60])
    with pytest.raises(RunError, match=f"cannot read image '{image}' .*; remove or replace it"):
        dataset[0]
    assert dataset[1][0].shape[0] == DATA_CONFIG['image_channels']


def test_an_image_over_pillows_size_limit_is_a_clear_error(tmp_path, config, monkeypatch):
    dataset = two_class_images(tmp_path / 'data', config)
    with Image.open(dataset.files[0]) as image:
        pixels = image.width * image.height
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', (pixels - 1) // 2)  # Pillow refuses over twice the limit
    with pytest.raises(RunError, match=f"image '{dataset.files[0]}' is too large to read \\(.*\\b{pixels} pixels.*\\); "
                                       "shrink it once .*set Image.MAX_IMAGE_PIXELS = None in dataset.py"):
        dataset[0]
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', (pixels + 1) // 2)  # an odd image_size: 33 x 33 = 2 x 545 - 1
    with pytest.warns(Image.DecompressionBombWarning):  # up to twice the limit: a warning, and read
        assert dataset[0][0].shape[0] == DATA_CONFIG['image_channels']


@pytest.mark.parametrize('suffix, pil_format', [('.BMP', 'BMP'), ('.gif', 'GIF'), ('.webp', 'WEBP'),
                                               ('.tif', 'TIFF'), ('.TIFF', 'TIFF'), ('.jpe', 'JPEG'), ('.jfif', 'JPEG'),
                                               ('.ppm', 'PPM'), ('.PGM', 'PPM'), ('.pbm', 'PPM'), ('.pnm', 'PPM'),
                                               ('.tga', 'TGA')])
def test_other_image_formats_are_read(tmp_path, config, suffix, pil_format):
    png = two_class_images(tmp_path / 'data', config).files[0]
    with Image.open(png) as image:
        if suffix.lower() in ('.pgm', '.pbm'):  # Netpbm's greyscale and black-and-white files
            image = image.convert('L' if suffix.lower() == '.pgm' else '1')
        elif pil_format in ('JPEG', 'PPM') and image.mode == 'RGBA':  # neither keeps alpha
            image = image.convert('RGB')
        image.save(png.with_suffix(suffix), format=pil_format)
    png.unlink()
    dataset = read_images(tmp_path / 'data', config)
    assert len(dataset) == 4 and png.with_suffix(suffix) in dataset.files
    pixels, _ = dataset[dataset.files.index(png.with_suffix(suffix))]
    assert pixels.shape == (DATA_CONFIG['image_channels'], DATA_CONFIG['image_size'], DATA_CONFIG['image_size'])


@pytest.mark.parametrize('compression', [None, 'tga_rle'])
def test_tga_files_are_read_pixel_for_pixel_either_way_up(tmp_path, config, compression):
    # TGA stores rows bottom-up unless its header says otherwise, and often run-length encoded
    png = two_class_images(tmp_path / 'data', config).files[0]
    expected, _ = read_images(tmp_path / 'data', config)[0]
    tga = png.with_suffix('.tga')
    with Image.open(png) as image:
        for orientation in (1, -1):  # top-down, bottom-up
            image.save(tga, format='TGA', compression=compression, orientation=orientation)
            dataset = read_images(tmp_path / 'data', config)
            assert len(dataset) == 5 and torch.equal(dataset[dataset.files.index(tga)][0], expected)


@pytest.mark.parametrize('channels', [1, 3, 4])
@pytest.mark.parametrize('mode, suffix', [('I;16', '.png'), ('I;16', '.tif'), ('I;16', '.pgm'), ('F', '.tif')])
def test_16_bit_and_float_greyscale_images_keep_every_level(tmp_path, config, mode, suffix, channels):
    # microscopy and medical images: a plain convert clips them at 255 (float ones at 1: black), and 8 bits
    # would merge the levels of a faint structure
    png = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    full_scale = 65535 if mode == 'I;16' else 1.0
    ramp = torch.linspace(0, full_scale, size * size)  # black to white in steps finer than 8 bits
    if mode == 'I;16':
        ramp = ramp.round()
        data = struct.pack(f'<{len(ramp)}H', *ramp.int().tolist())
    else:
        data = struct.pack(f'={len(ramp)}f', *ramp.tolist())
    ramp_file = png.with_name(f'ramp{suffix}')
    if suffix == '.pgm':  # Netpbm's 16 bits are big-endian; written by hand, as Pillow's writer differs by version
        levels = struct.pack(f'>{len(ramp)}H', *ramp.int().tolist())
        ramp_file.write_bytes(f'P5\n{size} {size}\n65535\n'.encode() + levels)
    else:
        Image.frombytes(mode, (size, size), data).save(ramp_file)
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': channels})
    pixels, _ = dataset[dataset.files.index(ramp_file)]
    assert pixels.shape == (channels, size, size)
    expected = (ramp / full_scale * 2 - 1).view(size, size)
    for grey in pixels[:3]:
        torch.testing.assert_close(grey, expected, rtol=0, atol=1e-6)
    if channels == 4:
        assert torch.equal(pixels[3], torch.ones(size, size))  # opaque


def png_chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))


def paeth(left, up, up_left):
    guess = left + up - up_left
    return min((abs(guess - left), 0, left), (abs(guess - up), 1, up), (abs(guess - up_left), 2, up_left))[2]


def write_16_bit_png(path, levels, orientation=1, transparent=None):
    """A 16-bit PNG of `levels` (height, width, 1 grey, 2 grey and alpha, 3 RGB or 4 RGBA), its rows filtered
    in turn by each of PNG's five filters (which undo with the pixel's size in bytes), with an EXIF orientation
    and, for grey or RGB, a `transparent` grey level or colour (tRNS: a tuple of 1 or 3 levels)."""
    height, width, channels = levels.shape
    size = 2 * channels  # bytes per pixel
    rows = [list(struct.pack(f'>{width * channels}H', *row.flatten().tolist())) for row in levels]
    data, above = b'', [0] * len(rows[0])
    for y, row in enumerate(rows):
        kind = y % 5  # none, sub, up, average, paeth
        left = [0] * size + row[:-size]
        up_left = [0] * size + above[:-size]
        guess = [[0] * len(row), left, above, [(a + b) // 2 for a, b in zip(left, above)],
                 [paeth(a, b, c) for a, b, c in zip(left, above, up_left)]][kind]
        data += bytes([kind] + [(x - g) % 256 for x, g in zip(row, guess)])
        above = row
    exif = b'MM\x00*' + struct.pack('>IHHHIHHI', 8, 1, 0x0112, 3, 1, orientation, 0, 0)
    header = struct.pack('>IIBBBBB', width, height, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels], 0, 0, 0)
    key = png_chunk(b'tRNS', struct.pack(f'>{len(transparent)}H', *transparent)) if transparent else b''
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + png_chunk(b'IHDR', header) + png_chunk(b'eXIf', exif) + key
                     + png_chunk(b'IDAT', zlib.compress(data)) + png_chunk(b'IEND', b''))


def write_16_bit_tiff(path, levels, byte_order, deflate, planar=False, extra_sample=2, one_bits_per_sample=False):
    """A one-strip 16-bit RGB(A) TIFF of `levels` (height, width, 3 or 4), in either byte order, its bands
    interleaved or `planar` (a strip per band); deflated ones are read through libtiff. `extra_sample` says what
    a 4th band is: 2 alpha, 1 alpha the colours are premultiplied by (`levels` holds them so), 0 unspecified.
    `one_bits_per_sample`: BitsPerSample given once for all bands, as some writers do."""
    height, width, channels = levels.shape
    order = '<' if byte_order == 'little' else '>'
    planes = [levels[..., band] for band in range(channels)] if planar else [levels]
    strips = [struct.pack(f'{order}{plane.numel()}H', *plane.flatten().tolist()) for plane in planes]
    strips = [zlib.compress(strip) if deflate else strip for strip in strips]
    tags = {256: [width], 257: [height], 258: [16] * (1 if one_bits_per_sample else channels),
            259: [8 if deflate else 1], 262: [2], 273: [0] * len(strips), 277: [channels], 278: [height],
            279: [len(strip) for strip in strips], 284: [2 if planar else 1],
            **({338: [extra_sample]} if channels == 4 else {})}  # 273, 279: the strips' offsets and sizes
    arrays_at = 8 + 2 + 12 * len(tags) + 4

    def directory():  # a value over 4 bytes stands after the directory, at an offset
        ifd, arrays = b'', b''
        for tag, values in tags.items():
            kind, letter = (3, 'H') if tag in (258, 259, 262, 277, 284, 338) else (4, 'I')
            packed = struct.pack(f'{order}{len(values)}{letter}', *values)
            if len(packed) > 4:
                ifd += struct.pack(f'{order}HHII', tag, kind, len(values), arrays_at + len(arrays))
                arrays += packed
            else:
                ifd += struct.pack(f'{order}HHI', tag, kind, len(values)) + packed.ljust(4, b'\0')
        return ifd, arrays

    strips_at = arrays_at + len(directory()[1])  # the strips follow the arrays
    tags[273] = [strips_at + sum(len(strip) for strip in strips[:i]) for i in range(len(strips))]
    ifd, arrays = directory()
    path.write_bytes((b'II*\x00' if order == '<' else b'MM\x00*') + struct.pack(f'{order}IH', 8, len(tags)) + ifd
                     + bytes(4) + arrays + b''.join(strips))


@pytest.mark.parametrize('channels', [1, 3, 4])
@pytest.mark.parametrize('stored', ['png rgb', 'png rgba', 'png grey alpha', 'png rgb sideways', 'tiff rgb little',
                                    'tiff rgba big', 'tiff rgb deflate', 'tiff rgb planar', 'tiff rgba planar big',
                                    'tiff rgb planar one-bits', 'tiff rgbx', 'tiff rgba premultiplied'])
def test_16_bit_colour_images_keep_every_level(tmp_path, config, stored, channels):
    # Pillow reads them as 8-bit, keeping the high bytes: a 12-bit camera's levels (0..4095) come out as 0..15;
    # and an uncompressed planar TIFF's as half of its bytes, high and low mixed
    first = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    kind = stored.split()
    own_channels = {'rgb': 3, 'rgba': 4, 'rgbx': 4, 'grey': 2}[kind[1]]
    levels = torch.randint(0, 4096, (size, size, own_channels), generator=torch.Generator().manual_seed(0))
    if 'premultiplied' in kind:  # alphas this high keep the colours within a level of their own through the division
        levels[..., 3] += 40000
    levels[0, 0] = 65535  # black to white
    levels[0, 1] = 0
    upright = levels.flip(0, 1) if 'sideways' in kind else levels
    if kind[0] == 'png':
        image = first.with_name('levels.png')
        write_16_bit_png(image, levels, orientation=3 if 'sideways' in kind else 1)  # 3: turned by 180 degrees
    else:
        image = first.with_name('levels.tif')
        stored_levels = levels.clone()
        if 'premultiplied' in kind:
            stored_levels[..., :3] = (levels[..., :3] * levels[..., 3:] / 65535).round()
        extra_sample = 0 if 'rgbx' in kind else 1 if 'premultiplied' in kind else 2
        write_16_bit_tiff(image, stored_levels, 'big' if 'big' in kind else 'little', deflate='deflate' in kind,
                          planar='planar' in kind, extra_sample=extra_sample, one_bits_per_sample='one-bits' in kind)
    if own_channels == 2:
        upright = upright[..., [0, 0, 0, 1]]
    if 'rgbx' in kind:  # a 4th band that is not alpha: left out
        upright = upright[..., :3]
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': channels})
    pixels, _ = dataset[dataset.files.index(image)]
    scaled = (upright / 32767.5 - 1).permute(2, 0, 1)
    rgb, alpha = scaled[:3], scaled[3:] if len(scaled) == 4 else torch.ones(1, size, size)  # none: opaque
    expected = {1: (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]).unsqueeze(0), 3: rgb,
                4: torch.cat([rgb, alpha])}[channels]  # Pillow's luma weights; RGB drops the alpha, as Pillow does
    torch.testing.assert_close(pixels, expected.float(), rtol=0, atol=5e-5 if 'premultiplied' in kind else 1e-5)


def test_a_compressed_16_bit_planar_tiff_is_an_error_not_8_bits(tmp_path, config):
    # libtiff decodes its planes to their high bytes whatever the raw mode; an uncompressed one reads in full
    first = two_class_images(tmp_path / 'data', config).files[0]
    levels = torch.randint(0, 4096, (8, 8, 3), generator=torch.Generator().manual_seed(0))
    write_16_bit_tiff(first.with_name('planes.tif'), levels, 'little', deflate=True, planar=True)
    dataset = read_images(tmp_path / 'data', config)
    with pytest.raises(RunError, match=r"image '.*planes\.tif' is a compressed 16-bit TIFF stored a plane per band.*"
                                       'save it with its bands interleaved'):
        dataset[dataset.files.index(first.with_name('planes.tif'))]


@pytest.mark.parametrize('channels', [1, 3, 4])
@pytest.mark.parametrize('key', [(1000, 2000, 3000), (1000,)])  # a colour, or a grey level
def test_a_16_bit_pngs_transparent_colour_is_its_alpha(tmp_path, config, channels, key):
    first = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    levels = torch.randint(0, 1000, (size, size, len(key)), generator=torch.Generator().manual_seed(2))  # not the key
    levels[0, :3] = torch.tensor(key)
    levels[1, 0] = torch.tensor(key) + 1  # one level off the key: opaque
    write_16_bit_png(first.with_name('keyed.png'), levels, orientation=3, transparent=key)
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': channels})
    pixels, _ = dataset[dataset.files.index(first.with_name('keyed.png'))]
    upright = levels.flip(0, 1)
    scaled = (upright / 32767.5 - 1).permute(2, 0, 1).expand(3, size, size)  # grey: the same level in R, G and B
    expected = {1: (0.299 * scaled[0] + 0.587 * scaled[1] + 0.114 * scaled[2]).unsqueeze(0), 3: scaled,
                4: torch.cat([scaled, (upright != torch.tensor(key)).any(2).float().unsqueeze(0) * 2 - 1])}[channels]
    assert channels < 4 or (expected[3] == -1).sum() == 3  # transparent (-1) where the colour is the key
    torch.testing.assert_close(pixels, expected.float(), rtol=0, atol=1e-5)


def test_a_16_bit_grey_pngs_transparency_is_resized_as_pillow_resizes(tmp_path, config):
    first = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    levels = torch.randint(0, 1000, (3 * size, 2 * size + 1, 1), generator=torch.Generator().manual_seed(3))
    levels[:size] = 1000  # a transparent band along the top
    write_16_bit_png(first.with_name('band.png'), levels, transparent=(1000,))
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': 4})
    pixels, _ = dataset[dataset.files.index(first.with_name('band.png'))]
    opaque = (levels[..., 0] != 1000).float()
    data = struct.pack(f'={opaque.numel()}f', *opaque.flatten().tolist())
    image = Image.frombytes('F', opaque.shape[::-1], data).resize((size, size), Image.Resampling.BILINEAR)
    expected = torch.tensor(struct.unpack(f'={size * size}f', image.tobytes())).view(size, size)
    torch.testing.assert_close(pixels[3], expected * 2 - 1, rtol=0, atol=1e-5)


# two of a 16-bit image's 65,536 levels, scaled to [-1, 1]: Pillow's float resize and the reader add up a pixel's
# neighbours in another order, which at 224x224 (wider kernels, larger sums) moves a pixel by half a level
TWO_16_BIT_LEVELS = 2 / 32767.5


def test_a_16_bit_colour_image_is_resized_as_pillow_resizes(tmp_path, config):
    first = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    levels = torch.randint(0, 65536, (3 * size, 2 * size + 1, 3), generator=torch.Generator().manual_seed(1))
    write_16_bit_png(first.with_name('large.png'), levels)
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': 3})
    pixels, _ = dataset[dataset.files.index(first.with_name('large.png'))]
    for channel, resized in zip(levels.unbind(2), pixels):
        data = struct.pack(f'={channel.numel()}f', *channel.flatten().float().tolist())
        image = Image.frombytes('F', channel.shape[::-1], data).resize((size, size), Image.Resampling.BILINEAR)
        expected = torch.tensor(struct.unpack(f'={size * size}f', image.tobytes())).view(size, size)
        torch.testing.assert_close(resized, expected / 32767.5 - 1, rtol=0, atol=TWO_16_BIT_LEVELS)


# how each test image is stored (one per reader in dataset.py), and the channels it is read as: grey as RGBA, so
# that its transparency is read too
UNEVEN_STORED = {'8-bit': 3, '16-bit colour': 3, '16-bit grey': 4}


def uneven_image(folder, config, stored, shape):
    """Example images in `folder`, and among them 'uneven.png': a random image, 'wide' or 'tall', of odd sizes so
    that margins split unevenly, stored as 8-bit RGB, 16-bit RGB, or 16-bit grey whose left half is its transparent
    level (7). Its centred square (the odd pixel of margin right or bottom) is written beside it as
    'uneven_square.png'. Returns the first example image's path, the uneven image's and its levels (height, width,
    channels)."""
    first = two_class_images(folder, config).files[0]
    size = DATA_CONFIG['image_size']
    height, width = (size + 3, 3 * size + 2) if shape == 'wide' else (3 * size + 1, size + 3)
    side = size + 3
    left, top = (width - side) // 2, (height - side) // 2
    path, square = first.with_name('uneven.png'), first.with_name('uneven_square.png')
    generator = torch.Generator().manual_seed(height * width)
    if stored == '8-bit':
        levels = torch.randint(0, 256, (height, width, 3), generator=generator)
        image = Image.frombytes('RGB', (width, height), bytes(levels.flatten().tolist()))
        image.save(path)
        image.crop((left, top, left + side, top + side)).save(square)
        return first, path, levels
    levels = torch.randint(0, 65536, (height, width, 3 if stored == '16-bit colour' else 1), generator=generator)
    transparent = None
    if stored == '16-bit grey':
        levels[:, :width // 2] = 7
        transparent = (7,)
    write_16_bit_png(path, levels, transparent=transparent)
    write_16_bit_png(square, levels[top:top + side, left:left + side], transparent=transparent)
    return first, path, levels


def resized_like_pillow(plane, width, height):
    """A (height, width) plane resized to width x height as Pillow's BILINEAR resizes a float image."""
    data = struct.pack(f'={plane.numel()}f', *plane.flatten().float().tolist())
    image = Image.frombytes('F', plane.shape[::-1], data).resize((width, height), Image.Resampling.BILINEAR)
    return torch.tensor(struct.unpack(f'={width * height}f', image.tobytes())).view(height, width)


@pytest.mark.parametrize('stored', UNEVEN_STORED)
@pytest.mark.parametrize('shape', ['wide', 'tall'])
def test_resize_center_crop_reads_the_centred_square_of_an_image(tmp_path, config, stored, shape):
    _, image, _ = uneven_image(tmp_path / 'data', config, stored, shape)
    square = image.with_name('uneven_square.png')
    size, channels = DATA_CONFIG['image_size'], UNEVEN_STORED[stored]
    stretched = read_images(tmp_path / 'data', {**config, 'image_channels': channels})
    cropped = read_images(tmp_path / 'data', {**config, 'image_channels': channels, 'resize': 'center_crop'})
    pixels = cropped[cropped.files.index(image)][0]
    assert pixels.shape == (channels, size, size)
    assert torch.equal(pixels, stretched[stretched.files.index(square)][0])  # the centre square, resized
    assert torch.equal(cropped[cropped.files.index(square)][0], stretched[stretched.files.index(square)][0])
    assert not torch.allclose(pixels, stretched[stretched.files.index(image)][0], atol=0.1)  # the whole, squeezed
    if stored == '16-bit grey':
        # part of the transparent half is in the square (opaque pixels sum their neighbours' weights to 1 in float32)
        assert pixels[3].min() == -1 and pixels[3].max() == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize('stored', UNEVEN_STORED)
@pytest.mark.parametrize('shape', ['wide', 'tall'])
def test_resize_pad_keeps_the_whole_image_and_its_shape_in_a_black_square(tmp_path, config, stored, shape):
    first, image, levels = uneven_image(tmp_path / 'data', config, stored, shape)
    size, channels = DATA_CONFIG['image_size'], UNEVEN_STORED[stored]
    height, width = levels.shape[:2]
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': channels, 'resize': 'pad'})
    pixels, _ = dataset[dataset.files.index(image)]
    assert pixels.shape == (channels, size, size)
    scale = size / max(height, width)  # the longer side fills the square
    inner_width, inner_height = round(width * scale), round(height * scale)
    assert min(inner_width, inner_height) <= size // 2  # a wide margin to pad (also at image_size 8)
    top, left = (size - inner_height) // 2, (size - inner_width) // 2
    inner = pixels[:, top:top + inner_height, left:left + inner_width]
    if stored == '8-bit':
        with Image.open(image) as read:
            resized = read.resize((inner_width, inner_height), Image.Resampling.BILINEAR)
        expected = torch.tensor(list(resized.tobytes())).view(inner_height, inner_width, 3).permute(2, 0, 1) / 127.5 - 1
        assert torch.equal(inner, expected)
    else:
        planes = [resized_like_pillow(plane.float(), inner_width, inner_height) / 32767.5 - 1
                  for plane in levels.unbind(2)]
        if stored == '16-bit grey':
            opaque = resized_like_pillow((levels[..., 0] != 7).float(), inner_width, inner_height)
            planes = planes * 3 + [opaque * 2 - 1]
        torch.testing.assert_close(inner, torch.stack(planes), rtol=0, atol=TWO_16_BIT_LEVELS)
    margin = torch.ones(size, size, dtype=torch.bool)
    margin[top:top + inner_height, left:left + inner_width] = False
    assert torch.equal(pixels[:, margin], torch.full((channels, int(margin.sum())), -1.0))  # black; transparent too
    with Image.open(first) as square:
        assert square.width == square.height  # a square image is read as it is stretched
    stretched = read_images(tmp_path / 'data', {**config, 'image_channels': channels})
    assert torch.equal(dataset[dataset.files.index(first)][0], stretched[stretched.files.index(first)][0])


@pytest.mark.parametrize('resize', ['center_crop', 'pad'])
def test_predict_reads_images_as_the_run_resized_them(workdir, config, resize):
    from conftest import load, tiny_data_args

    shared = [str(arg) for arg in tiny_data_args(workdir)] + ['--n_epoch', '1']
    shared += ['--image_size', str(config['image_size'])]  # resized to the baked size
    for path in sorted((workdir / 'data').rglob('*.png'))[::7]:  # some wide photos among the square ones
        with Image.open(path) as image:
            wide = Image.new(image.mode, (image.width * 2, image.height))
            wide.paste(image, (image.width // 2, 0))
        wide.save(path)
    assert train.main(shared + ['--resize', resize, '--run_name', resize]) == 0
    photo = sorted((workdir / 'data').rglob('*.png'))[7]
    dataset = ImageFolderDataset({**config, 'resize': resize}, workdir / 'data')
    pixels, _ = dataset[dataset.files.index(photo)]
    with Image.open(photo) as image:
        assert image.width == 2 * image.height
    assert not torch.equal(pixels, ImageFolderDataset(config, workdir / 'data')[dataset.files.index(photo)][0])
    checkpoint_path = workdir / 'checkpoints' / resize / 'best_checkpoint.pt'
    check_predict_answers_as_the_checkpoint(checkpoint_path, photo, workdir / 'p.csv', pixels.unsqueeze(0))
    # a checkpoint from before the key stretches, as its run did
    older = load(checkpoint_path)
    del older['config']['resize']
    torch.save(older, workdir / 'older.pt')
    stretched = ImageFolderDataset(config, workdir / 'data')[dataset.files.index(photo)][0]
    check_predict_answers_as_the_checkpoint(workdir / 'older.pt', photo, workdir / 'older.csv', stretched.unsqueeze(0))


@pytest.mark.parametrize('mode, values, found', [
    ('F', [0.0, 1.5], 'float pixels from 0 to 1.5, not within 0..1'),  # 0..255 saved as float, say
    ('F', [-0.25, 1.0], 'float pixels from -0.25 to 1, not within 0..1'),
    ('F', [0.5, math.nan], 'float pixels from .* to .*, not within 0..1'),
    ('I', [0, 70000], 'integer pixels from 0 to 70000, not within 0..65535'),  # a 32-bit integer image
])
def test_greyscale_outside_its_range_is_a_clear_error(tmp_path, config, mode, values, found):
    image = two_class_images(tmp_path / 'data', config).files[0]
    size = DATA_CONFIG['image_size']
    pixels = (values * size * size)[:size * size]
    data = struct.pack(f"={len(pixels)}{'f' if mode == 'F' else 'i'}", *pixels)
    Image.frombytes(mode, (size, size), data).save(image.with_suffix('.tif'))
    image.unlink()
    dataset = read_images(tmp_path / 'data', config)
    index = dataset.files.index(image.with_suffix('.tif'))
    with pytest.raises(RunError, match=f"image '{image.with_suffix('.tif')}' holds {found} \\(black to white\\); "
                                       "rescale it, or edit ImageFolderDataset's fine_greyscale in dataset.py"):
        dataset[index]


def test_cielab_images_are_read_as_their_rgb(tmp_path, config):
    image = two_class_images(tmp_path / 'data', config).files[0]
    with Image.open(image) as rgb:
        rgb.convert('RGB').convert('LAB').save(image.with_suffix('.tif'))  # Pillow converts CIELab to RGB only
    image.unlink()
    dataset = read_images(tmp_path / 'data', {**config, 'image_channels': 1})
    with Image.open(image.with_suffix('.tif')) as lab:
        grey = lab.convert('RGB').convert('L')
    pixels, _ = dataset[dataset.files.index(image.with_suffix('.tif'))]
    expected = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).view(1, *pixels.shape[1:]) / 127.5 - 1
    assert torch.equal(pixels, expected)


def test_photos_are_turned_upright_by_their_exif_orientation(tmp_path, config):
    dataset = two_class_images(tmp_path / 'data', config)
    size = DATA_CONFIG['image_size']
    upright = Image.new('L', (size, size), 0)
    upright.paste(255, (0, 0, size, size // 2))  # white on top, black below
    upright = upright.convert(dataset.mode)
    upright.save(dataset.files[0])
    # a phone held sideways: the pixels are stored turned a quarter left, with orientation 6 to turn them back
    exif = Image.Exif()
    exif[0x0112] = 6
    upright.transpose(Image.Transpose.ROTATE_90).save(dataset.files[1], exif=exif)
    torch.testing.assert_close(dataset[1][0], dataset[0][0])
    assert dataset[1][0][0, 0, :].min() == 1 and dataset[1][0][0, -1, :].max() == -1  # top row white, bottom black


def test_images_in_subfolders_of_a_class_folder_count(tmp_path, config):
    before = two_class_images(tmp_path / 'data', config, n_samples=6)
    image, target = before.files[0], before[0][1]
    nested = image.parent / 'day_2' / 'camera_b' / image.name  # sorted by shooting day, say
    nested.parent.mkdir(parents=True)
    image.rename(nested)
    (image.parent / '.thumbnails').mkdir()  # hidden folders stay hidden at any depth
    (image.parent / '.thumbnails' / 'a.png').write_bytes(nested.read_bytes())
    dataset = read_images(tmp_path / 'data', config)
    assert len(dataset) == 6 and nested in dataset.files
    assert torch.equal(dataset[dataset.files.index(nested)][1], target)  # the target of the folder it is under


def test_image_files_of_formats_left_out_are_counted_in_a_warning_in_training_and_predict(workdir, capsys):
    import predict
    from conftest import tiny_data_args

    args = [str(arg) for arg in tiny_data_args(workdir)] + ['--n_epoch', '1', '--run_name', 'first']
    images = sorted((workdir / 'data').rglob('*.png'))
    first, last = images[0].parent, images[-1].parent
    for name in ('IMG_0002.HEIC', 'IMG_0001.heic', 'sub/scan.dng', '.cache/a.heic', 'notes.txt'):  # hidden, not images
        (first / name).parent.mkdir(exist_ok=True)
        (first / name).write_bytes(b'not read')
    for name in ('photo.avif', 'scene.exr', 'tile.JP2', 'layers.psd', 'spinner.apng', 'scan.PCX'):
        (last / name).write_bytes(b'not read')
    for name in ('IMG_0003.HEIC', '._IMG_0003.HEIC'):  # beside the folders: no label either way; macOS's copy hidden
        (workdir / 'data' / name).write_bytes(b'not read')
    example = min(first / 'IMG_0001.heic', workdir / 'data' / 'IMG_0003.HEIC')
    warning = (f"warning: '{workdir / 'data'}' holds 10 image files of a format that this reader leaves out (1 .apng, "
               f"1 .avif, 1 .dng, 1 .exr, 3 .heic, 1 .jp2, 1 .pcx, 1 .psd; e.g. '{example}'), so the data goes without "
               'them; convert them to JPEG or PNG to use them')
    assert train.main(args) == 0
    log = (workdir / 'loggers' / 'first' / 'train.log').read_text()
    assert [line.split(' | ')[-1] for line in log.splitlines() if 'leaves out' in line] == [warning]
    note = (workdir / 'loggers' / 'first' / 'note.log').read_text()
    sizes = [int(line.split(': ')[1]) for line in note.splitlines() if line.strip().startswith(('train_s', 'valid_s'))]
    assert sum(sizes) == len(images)  # the images only
    capsys.readouterr()
    predict.predict(workdir / 'checkpoints' / 'first' / 'best_checkpoint.pt', workdir / 'data', workdir / 'p.csv')
    assert capsys.readouterr().err.splitlines()[0] == warning
    assert len((workdir / 'p.csv').read_text().splitlines()) == len(images) + 1


def test_the_readme_names_every_image_format_read_or_left_out():
    readme = (PROJECT / 'README.md').read_text(encoding='utf-8')
    assert not set(IMAGE_SUFFIXES) & set(LEFT_OUT_SUFFIXES)
    missing = [suffix for suffix in IMAGE_SUFFIXES + LEFT_OUT_SUFFIXES if f'`{suffix}`' not in readme]
    assert not missing, f"README.md does not name {', '.join(missing)}"


def test_one_image_file_of_a_format_left_out_beside_the_folders_gets_the_warning_in_the_singular(tmp_path, config):
    two_class_images(tmp_path / 'data', config)
    (tmp_path / 'data' / 'IMG_1.heic').write_bytes(b'not read')
    assert read_images(tmp_path / 'data', config).warnings == [
        f"warning: '{tmp_path / 'data'}' holds 1 image file of a format that this reader leaves out (1 .heic; e.g. "
        f"'{tmp_path / 'data' / 'IMG_1.heic'}'), so the data goes without it; convert it to JPEG or PNG to use it"]


def test_large_jpegs_are_decoded_at_a_reduced_scale_with_the_same_pixels(tmp_path, config, monkeypatch):
    from PIL import JpegImagePlugin

    dataset = two_class_images(tmp_path / 'data', config)
    size = DATA_CONFIG['image_size']
    with Image.open(dataset.files[0]) as image:  # a photo-sized JPEG: 16 times the side, smooth content
        photo = image.convert('RGB').resize((16 * size, 16 * size), Image.Resampling.BILINEAR)
    photo.save(dataset.files[0].with_suffix('.jpg'), quality=95)
    dataset.files[0].unlink()
    dataset = read_images(tmp_path / 'data', config)
    jpeg = dataset.files.index(next(p for p in dataset.files if p.suffix == '.jpg'))
    decoded = []
    draft = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, 'draft',
                        lambda image, mode, wanted: decoded.append(draft(image, mode, wanted)) or decoded[-1])
    fast = dataset[jpeg][0]
    assert decoded[0] is not None and decoded[0][1] != (0, 0, 16 * size, 16 * size)  # a reduced scale was used
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, 'draft', lambda image, mode, wanted: None)  # full decode
    full = dataset[jpeg][0]
    assert (fast - full).abs().mean() < 0.02  # within a couple of grey levels on average


def test_hidden_folders_and_files_are_not_data(tmp_path, config):
    images = two_class_images(tmp_path / 'data', config, n_samples=6).files
    (tmp_path / 'data' / '.ipynb_checkpoints').mkdir()  # Jupyter leaves these; macOS copies leave ._ files
    (tmp_path / 'data' / '.ipynb_checkpoints' / 'a.png').write_bytes(images[0].read_bytes())
    (images[0].parent / f'._{images[0].name}').write_bytes(b'resource fork')
    dataset = read_images(tmp_path / 'data', config)
    assert dataset.files == images
    assert len(dataset) == 6 and dataset[len(dataset) - 1][0].shape[0] == DATA_CONFIG['image_channels']
{%- if cookiecutter.task == 'classification' %}
    assert '.ipynb_checkpoints' not in dataset.classes


def test_an_empty_class_folder_is_a_clear_error(tmp_path, config):
    make_example(tmp_path / 'data', {**DATA_CONFIG, **TWO_CLASSES}, n_samples=6)
    (tmp_path / 'data' / 'zebra').mkdir()
    empty = f"class folder '{tmp_path / 'data' / 'zebra'}' holds no images"
    suffixes = '(.png, .jpg, .jpeg, .jpe, .jfif, .bmp, .gif, .webp, .tif, .tiff, .ppm, .pgm, .pbm, .pnm, .tga)'
    with pytest.raises(RunError) as error:
        ImageFolderDataset({**config, 'num_classes': 3}, tmp_path / 'data')
    assert str(error.value) == f'{empty} {suffixes}; add some or remove it'
    for name in ('IMG_1.HEIC', 'IMG_2.heic', 'IMG_3.avif', 'notes.txt'):  # an export of iPhone photos
        (tmp_path / 'data' / 'zebra' / name).write_bytes(b'not read')
    with pytest.raises(RunError) as error:
        ImageFolderDataset({**config, 'num_classes': 3}, tmp_path / 'data')
    assert str(error.value) == (f'{empty} {suffixes}, only files of formats it leaves out (1 .avif, 2 .heic); '
                                'convert them to JPEG or PNG')


def test_one_class_folder_is_refused_for_training_only(tmp_path, config):
    make_example(tmp_path / 'data', {**DATA_CONFIG, **TWO_CLASSES}, n_samples=4)
    first_class = sorted((tmp_path / 'data').iterdir())[0]
    (tmp_path / 'one').mkdir()  # the usual mistake: dataset_dir names a folder that holds a single class
    first_class.rename(tmp_path / 'one' / first_class.name)
    with pytest.raises(RunError,
                       match=r"has one class folder only \('class_\d'\); classification needs two or more: point"):
        ImageFolderDataset(config, tmp_path / 'one')
    assert len(ImageFolderDataset(config, tmp_path / 'one', labels_required=False)) >= 1
{%- endif %}


def test_an_image_beside_the_labelled_folders_is_an_error_that_names_it(tmp_path, config):
    """Training would leave it out unsaid (torchvision's ImageFolder does), and predict.py would not predict it."""
    data = tmp_path / 'data'
    images = two_class_images(data, config).files
    (data / 'notes.txt').write_text('other files are not data')
    (data / '._stray.png').write_bytes(b'resource fork')  # hidden: skipped, as in the folders
    (data / 'stray.png').write_bytes(images[0].read_bytes())
    kind = '{{ 'class' if cookiecutter.task == 'classification' else 'target value' }}'
    for labels_required, then in ((True, ''), (False, ' and predict on them with their own --data')):
        with pytest.raises(RunError) as error:
            ImageFolderDataset({**config, **TWO_CLASSES}, data, labels_required=labels_required)
        assert str(error.value) == (f"'{data}' holds an image ('stray.png') beside its {kind} folders, in none of "
                                    f"them; move each into its {kind} folder, or out of '{data}'{then}")
    (data / 'another.JPG').write_bytes(images[1].read_bytes())
    with pytest.raises(RunError, match=r"holds 2 images \(e\.g\. 'another\.JPG'\) beside its "):
        read_images(data, config)
    for name in ('stray.png', 'another.JPG'):
        (data / name).unlink()
    assert read_images(data, config).files == images
{%- endif %}
{%- if cookiecutter.task == 'classification' and cookiecutter.dataset in ['csv', 'sequence'] %}


LINES = [2, 3, 5]  # each label's line in its file (line 4 blank)


def test_class_names_must_fill_num_classes_in_training_only():
    from dataset import label_indices

    with pytest.raises(RunError, match=r"'data' has 2 class names but num_classes is 5; pass --num_classes 2$"):
        label_indices(['cat', 'dog', 'cat'], LINES, 5, 'data')  # outputs no name stands for could only be wrong answers
    assert label_indices(['cat', 'dog', 'cat'], LINES, 2, 'data')[0] == ['cat', 'dog']
    assert label_indices(['0', '1', '0'], LINES, 5, 'data')[1].tolist() == [0, 1, 0]  # numbers: a class may be absent
    with pytest.raises(RunError, match=r"'data' has labels outside 0\.\.2; pass --num_classes 5$"):
        label_indices(['0', '4', '1'], LINES, 3, 'data')
    with pytest.raises(RunError, match=r"'data' has labels 1\.\.3 but class numbers start at 0; subtract 1 from every "
                                      r"label \(or pass --num_classes 4 if class 0 exists\)$"):
        label_indices(['1', '3', '2'], LINES, 3, 'data')  # numbered from 1, as in many published label files
    with pytest.raises(RunError,
                       match=r"'new' has labels 1\.\.3 but class numbers start at 0; subtract 1 from every label$"):
        label_indices(['1', '3'], LINES, 3, 'new', labels_required=False)  # predicting
    # predicting
    classes, targets = label_indices(['dog'], LINES, 5, 'new', classes=['cat', 'dog'], labels_required=False)
    assert classes == ['cat', 'dog'] and targets.tolist() == [1]
    assert label_indices(['²', '³', '²'], LINES, 2, 'data')[0] == ['²', '³']  # digits that are no number: names
    with pytest.raises(RunError, match=r"^'data' line 3 has label 'dog' and line 5 ' dog', which differ only by the "
                                       r'spaces around them; write the label the same way in both$'):
        label_indices(['cat', 'dog', ' dog'], LINES, 3, 'data')  # three names for three outputs: it would train
    assert label_indices([' 1', '0', '1'], LINES, 2, 'data')[1].tolist() == [1, 0, 1]  # class numbers: as before


def test_one_label_that_is_no_class_number_among_numbers_is_named_by_its_line():
    from dataset import label_indices

    with pytest.raises(RunError) as error:  # training: as names, three are too many for two outputs
        label_indices(['0', '-1', '1'], LINES, 2, 'data')
    assert str(error.value) == ("'data' has 3 class names but num_classes is 2; pass --num_classes 3 (the labels are "
                                "read as names, numbered in sorted order, since line 3 has label '-1', which is not a "
                                'class number; fix that line if they are numbers)')
    with pytest.raises(RunError) as error:  # before, 'has labels outside 0..1; pass --num_classes 3'
        label_indices(['0', '-1', '1', 'x'], LINES + [6], 3, 'data')
    assert "has 4 class names but num_classes is 3; pass --num_classes 4 (the labels" in str(error.value)
    with pytest.raises(RunError) as error:  # pandas writes a float column so
        label_indices(['0.0', '1.0', '0.0'], LINES, 5, 'data')
    assert str(error.value).endswith("pass --num_classes 2 (the labels are read as names, numbered in sorted order, "
                                     "since line 2 has label '0.0', which is not a class number; fix that line if "
                                     'they are numbers)')
    classes, targets = label_indices(['0', '-1', '1'], LINES, 3, 'data')  # as many names as outputs: they train
    assert classes == ['-1', '0', '1'] and targets.tolist() == [1, 0, 2]
    with pytest.raises(RunError) as error:  # predicting with a model trained on numbers: a name would be renumbered
        label_indices(['2', '0', '2.5'], LINES, 3, 'new', labels_required=False)
    assert str(error.value) == ("'new' line 5 has label '2.5', but the model was trained on class numbers 0..2; fix "
                                'that line, or leave the label column out')
    classes, targets = label_indices(['1', '0', '1'], LINES, 3, 'new', classes=['-1', '0', '1'], labels_required=False)
    assert classes == ['-1', '0', '1'] and targets.tolist() == [2, 1, 2]  # trained on names: numbered as then
    with pytest.raises(RunError) as error:
        label_indices(['1', '7', '1'], LINES, 3, 'new', classes=['-1', '0', '1'], labels_required=False)
    assert str(error.value) == "'new' line 3 has label '7', which the model was not trained on"
{%- elif cookiecutter.task == 'classification' and cookiecutter.dataset == 'image_folder' %}


def test_class_folders_must_fill_num_classes_in_training_only(tmp_path, config):
    make_example(tmp_path / 'data', {**DATA_CONFIG, **TWO_CLASSES}, n_samples=4)
    with pytest.raises(RunError, match=r"has 2 class folders but num_classes is 5; pass --num_classes 2$"):
        ImageFolderDataset({**config, 'num_classes': 5}, tmp_path / 'data')
    assert ImageFolderDataset({**config, 'num_classes': 2}, tmp_path / 'data').classes == ['class_0', 'class_1']
    predicting = ImageFolderDataset({**config, 'num_classes': 5}, tmp_path / 'data', labels_required=False,
                                    classes=['class_0', 'class_1', 'class_2'])
    assert len(predicting) == 4
    (tmp_path / 'data' / 'class_1').rename(tmp_path / 'data' / '2024')  # new photos sorted by year, say
    with pytest.raises(RunError, match=r"has a folder that is none of the model's classes: '2024'; give it class "
                                       'folders named as in training, or unlabelled images directly, without '
                                       'subfolders$'):
        ImageFolderDataset(config, tmp_path / 'data', labels_required=False, classes=['class_0', 'class_1'])
{%- elif cookiecutter.dataset == 'image_folder' %}


@pytest.mark.parametrize('name, message', [
    ('cats', "is not named as a number"),
    ('nan', "is named 'nan', not a finite number"),  # float() reads these: the loss would be NaN from step 1
    ('-inf', "is named '-inf', not a finite number"),
    ('3_5', "is named '3_5', which reads as 35; rename it '35' if that is meant, or write a fraction with a "
            'decimal point'),
])
def test_a_folder_not_named_as_a_finite_number_is_a_clear_error(tmp_path, config, name, message):
    make_example(tmp_path / 'data', DATA_CONFIG, n_samples=4)
    next(p for p in (tmp_path / 'data').iterdir() if p.is_dir()).rename(tmp_path / 'data' / name)
    for labels_required, layout in ((True, 'expected'), (False, '--data takes')):  # training and predict.py
        with pytest.raises(RunError, match=f"folder '.*{name}' {message}; {layout}"):
            ImageFolderDataset(config, tmp_path / 'data', labels_required=labels_required)
{%- endif %}

"""Predict with a trained model, {{ "on fresh synthetic samples (another seed than training's)" if cookiecutter.dataset == 'synthetic' else "on data in this project's layout (labels optional)" }}:
{% if cookiecutter.dataset == 'synthetic' %}
    python predict.py --run 20260101_120000                              # that run's best checkpoint
    python predict.py --checkpoint path/to/latest_checkpoint.pt --n_samples 1000 --output out.csv
{%- else %}
    python predict.py --run 20260101_120000 --data new_data/             # that run's best checkpoint
    python predict.py --checkpoint path/to/latest_checkpoint.pt --data new_data/ --output out.csv
{%- endif %}

Writes predictions.csv: id, prediction, label (when the data has labels){{ ', then one probability column per class' if cookiecutter.task == 'classification' else '' }}.
When the data has labels, it also prints the test loss and {{ 'accuracy' if cookiecutter.task == 'classification' else 'mean absolute error' }}{{ ', and writes predictions_confusion.csv: the
confusion matrix with recall and precision per class, drawn in predictions_confusion.png' if cookiecutter.task == 'classification' else ', and draws the
predictions against their labels in predictions_scatter.png' }}.
"""

import csv
import math
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dataset import DATA_CONFIG, build_predict_dataset, collate_fn
from model import MODEL_CONFIG, build_model
from plot import figure_text, pyplot
from runfiles import (
    METRIC_NAME,
    CommandParser,
    RunError,
    check_new_output,
    import_problem,
    names_a_run,
    new_file,
    newest_run,
    one_line_errors,
    print_output,
    project_folder_note,
    to_stderr,
)
from utils import (
    allocation_failure,
    bar_options,
    batched_as,
    check_minimums,
    check_not_a_device_option,
    data_warnings,
    load_checkpoint,
    load_model_state,
    local_device,
    metric_per_sample,
    model_memory_errors,
    resolve_checkpoint,
    show_crash_stacks,
)


def find_checkpoint(run, checkpoint, checkpoints_root='checkpoints'):
    if run and checkpoint:
        raise RunError('pass --run <timestamp> or --checkpoint <file>, not both')
    if checkpoint and Path(checkpoint).is_dir():
        raise RunError(f"--checkpoint '{checkpoint}' is a folder; pass a file in it, or the folder to --run (its "
                       'best_checkpoint.pt)')
    if checkpoint:
        return Path(checkpoint)
    if run:  # a timestamp or folder: its best checkpoint; the error lists the run's checkpoints if it has none
        return resolve_checkpoint(run, checkpoints_root, name='best_checkpoint.pt', option='--run')
    newest = newest_run(checkpoints_root, 'best_checkpoint.pt')
    raise RunError('pass --run <timestamp> (its best checkpoint) or --checkpoint <file>; ' + (
        f'the newest run here: python predict.py --run {newest}' if newest else
        f"no run under '{checkpoints_root}' has a best_checkpoint.pt yet{project_folder_note(checkpoints_root)}"))


def option_for_word(word):
    """The option a bare word on predict.py's command line is likely meant for: a run, {{ 'or data, ' if cookiecutter.dataset != 'synthetic' }}else None."""
    if names_a_run(word):
        return '--run'
{%- if cookiecutter.dataset == 'synthetic' %}
    return None
{%- else %}
    return '--data' if Path(word).exists() else None
{%- endif %}
{%- if cookiecutter.task == 'classification' %}


def confusion_file(output):
    """predictions.csv -> predictions_confusion.csv (.tsv -> _confusion.tsv)"""
    return output.with_name(f'{output.stem}_confusion{output.suffix}')


def confusion_rows(confusion, names):
    """Counts per true class (rows) and predicted class (columns), each class's samples and recall, then
    each predicted class's count and precision."""
    true_counts, predicted_counts = confusion.sum(dim=1).tolist(), confusion.sum(dim=0).tolist()
    correct = confusion.diagonal().tolist()

    def share(part, whole):
        return f'{part / whole:.6f}' if whole else ''  # a class with no samples (or never predicted) has none

    rows = [['true \\ predicted', *names, 'samples', 'recall']]
    for i, name in enumerate(names):
        rows.append([name, *confusion[i].tolist(), true_counts[i], share(correct[i], true_counts[i])])
    rows.append(['predicted', *predicted_counts, sum(true_counts), ''])
    rows.append(['precision', *(share(c, p) for c, p in zip(correct, predicted_counts)), '', ''])
    return rows


CONFUSION_MOST_CLASSES = 40  # a larger matrix's cells and names are too small to read: its table holds them all


def confusion_figure_file(output):
    """predictions.csv -> predictions_confusion.png"""
    return output.with_name(f'{output.stem}_confusion.png')


def draw_confusion(table):
    """Draw the confusion table that predict() wrote (`table`) as a .png of the same name: each cell coloured by its
    share of the true class's samples, so the diagonal shows each class's recall whatever the class sizes, and the
    counts written in while they fit. Returns a line to print, never an error: the predictions are written already."""
    output = table.with_suffix('.png')
    with open(table, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f, delimiter=table_delimiter(table)))
    names = rows[0][1:-2]
    if len(names) > CONFUSION_MOST_CLASSES:
        return (f'no figure of it: {len(names)} classes are more than a figure can show legibly '
                f'({CONFUSION_MOST_CLASSES})')
    counts = [[int(count) for count in row[1:len(names) + 1]] for row in rows[1:len(names) + 1]]
    n = len(names)
    shares = [[count / sum(row) if sum(row) else 0.0 for count in row] for row in counts]

    def draw(figure, ax):
        image = ax.imshow(shares, cmap='Blues', vmin=0, vmax=1)
        figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class's samples")
        if n <= 20:  # the counts fit in their cells
            for i, row in enumerate(counts):
                for j, count in enumerate(row):
                    ax.text(j, i, count, ha='center', va='center', fontsize='small',
                            color='white' if shares[i][j] > 0.6 else 'black')
        labels = [figure_text(name) for name in names]
        ax.set_xticks(range(n), labels, rotation=90 if max(map(len, names)) > 3 else 0)
        ax.set_yticks(range(n), labels)
        ax.set(xlabel='predicted class', ylabel='true class')
        total, correct = sum(map(sum, counts)), sum(counts[i][i] for i in range(n))
        ax.set_title(f'{figure_text(table.name)}: {total} samples, accuracy {correct / total:.4f}')

    side = min(2.5 + 0.45 * n, 16)  # inches
    why_not = draw_figure(output, (side + 1.2, side), draw)
    return f'no figure of it: {why_not}' if why_not else f'drew it in {output}'
{%- else %}


SCATTER_MOST_POINTS = 20000  # more would hide each other and slow the drawing: an even share of them is drawn


def scatter_figure_file(output):
    """predictions.csv -> predictions_scatter.png"""
    return output.with_name(f'{output.stem}_scatter.png')


def draw_scatter(table):
    """Draw each prediction in predict()'s table (`table`) against its label, with the line where they are equal,
    in <name>_scatter.png. Returns a line to print, never an error: the predictions are written already."""
    output = scatter_figure_file(table)
    with open(table, newline='', encoding='utf-8') as f:
        pairs = [(float(row['label']), float(row['prediction']))
                 for row in csv.DictReader(f, delimiter=table_delimiter(table))]
    every = math.ceil(len(pairs) / SCATTER_MOST_POINTS)
    labels, predictions = zip(*pairs[::every])

    def draw(figure, ax):
        low, high = min(labels + predictions), max(labels + predictions)
        ax.plot([low, high], [low, high], color='grey', linestyle='--', linewidth=1, label='prediction = label')
        ax.scatter(labels, predictions, s=8, alpha=0.5 if len(labels) > 500 else 0.9,
                   label='a sample' if every == 1 else f'one sample in {every}')
        ax.set(xlabel='label', ylabel='prediction')
        ax.set_aspect('equal', adjustable='datalim')  # the same scale on both axes: errors look as large as they are
        mae = sum(abs(prediction - label) for label, prediction in pairs) / len(pairs)
        ax.set_title(f'{figure_text(table.name)}: {len(pairs)} samples, mean absolute error {mae:.4g}')
        ax.legend()
        ax.grid(alpha=0.3)

    why_not = draw_figure(output, (6.4, 6), draw)
    return f'no figure of them: {why_not}' if why_not else f'drew them against their labels in {output}'
{%- endif %}


def draw_figure(output, size, draw):
    """Make a figure of `size` inches, let draw(figure, ax) fill it, and write it to `output`, a new PNG. Returns None,
    or why there is no figure: never an error, since the predictions it shows are written already."""
    try:
        plt = pyplot()
    except ImportError as err:
        return '{} ({})'.format(*import_problem(err, 'matplotlib'))
    figure, ax = plt.subplots(figsize=size, constrained_layout=True)
    try:
        draw(figure, ax)
        with new_file(output, binary=True, doing='drawing') as f:
            figure.savefig(f, format='png', dpi=100)
    except RunError as err:  # a full disk, or a file that appeared there meanwhile
        return str(err)
    except Exception as err:  # a drawing bug must not hide that the predictions are written
        return f'drawing failed ({type(err).__name__}: {err})'
    finally:
        plt.close(figure)
    return None


DELIMITERS = {'.csv': ',', '.txt': ',', '': ',', '.tsv': '\t'}  # by the output's suffix


def table_delimiter(output):
    """The delimiter of the table `output` names: a tab for .tsv, else a comma. Raises RunError for a suffix
    that names another format (.parquet, .json, .xlsx): the file would be a CSV under a name that says not."""
    if output.suffix.lower() not in DELIMITERS:
        raise RunError(f"predict.py writes a CSV or TSV table, not '{output.suffix}'; end --output with .csv or .tsv")
    return DELIMITERS[output.suffix.lower()]


def check_label_batch(target, result):
    """Raise RunError unless a batch's labels are what the loss and the table need. Data of your own: train.py
    checks its data's first sample, but a reader used for prediction only may return other labels."""
    found = batched_as(target)
{%- if cookiecutter.task == 'classification' %}
    needed = f'({len(result)},) {torch.long}'
    if found != needed:
        raise RunError(f"the data's labels batch as {found}, but the loss needs {needed}: a class index per sample; "
                       'fix __getitem__ in dataset.py')
{%- else %}
    if not isinstance(target, torch.Tensor) or target.shape != result.shape:
        raise RunError(f"the data's labels batch as {found}, but the loss needs {tuple(result.shape)}: one number per "
                       'sample, shaped (1,); fix __getitem__ in dataset.py')
{%- endif %}


def predict(checkpoint_path, data=None, output='predictions.csv', batch_size=256, n_samples=256{{ ', id_column=None' if cookiecutter.dataset == 'csv' else '' }}):
    """Write the predictions to `output`, a CSV table (TSV for .tsv); return (number of samples, test loss,
    test metric) or Nones.{{ " `id_column`: the data's column of sample ids (None: the run's id_column)." if cookiecutter.dataset == 'csv' else '' }}"""
    output = Path(output)
    delimiter = table_delimiter(output)
    check_new_output(output)
    check_minimums({'batch_size': batch_size, 'n_samples': n_samples}, {'batch_size': 1, 'n_samples': 1})
    if not Path(checkpoint_path).is_file():
        raise RunError(f"checkpoint '{checkpoint_path}' does not exist{project_folder_note(checkpoint_path)}; train "
                       'first, or pass --checkpoint')
    checkpoint = load_checkpoint(checkpoint_path)
    # a key added to DATA_CONFIG or MODEL_CONFIG after the run was saved takes its default, as on resume
    config, classes = {**DATA_CONFIG, **MODEL_CONFIG, **checkpoint['config']}, checkpoint.get('classes')
{%- if cookiecutter.dataset == 'csv' %}
    if id_column is not None:  # ids in a file for a run trained without them, or under another name
        if id_column and id_column == config['label_column']:
            raise RunError(f"--id_column {id_column!r} is the run's label column; name the column of sample ids, "
                           'or leave --id_column out')
        config['id_column'] = id_column
{%- endif %}
    device = local_device()
    with model_memory_errors(fix="its sizes are the checkpoint's: predict on a machine with more memory"):
        model = build_model(config)
        load_model_state(model, checkpoint['model'], checkpoint_path)
        model.to(device).eval()
    dataset = build_predict_dataset(config, data, classes=classes, feature_columns=checkpoint.get('feature_columns'),
                                    n_samples=n_samples)
    for line in data_warnings(dataset):  # dataset.py's, on data that reads but probably not as meant
        to_stderr(line)
{%- if cookiecutter.dataset == 'csv' %}
    if id_column and isinstance(dataset.ids, range):  # the reader numbers the rows of a file without the column
        raise RunError(f"the data has no column {id_column!r} (--id_column); name one of its columns, or leave "
                       '--id_column out')
{%- endif %}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
{%- if cookiecutter.task == 'classification' %}
    criterion = torch.nn.CrossEntropyLoss(reduction='sum')
    names = classes or [str(i) for i in range(config['num_classes'])]
    # older runs: fewer names than outputs
    names = names + [f'output_{i}' for i in range(len(names), config['num_classes'])]
    header = ['id', 'prediction'] + ['label'] * dataset.has_labels + [f'prob_{name}' for name in names]
    confusion = torch.zeros(len(names), len(names), dtype=torch.long)
    confusion_path = confusion_file(output)
    drawn_path = confusion_figure_file(output) if len(names) <= CONFUSION_MOST_CLASSES else None
    taken = [path for path in (confusion_path, drawn_path) if path and path.exists()] if dataset.has_labels else []
    if taken:
        raise RunError(f"'{taken[0]}' already exists (the confusion matrix of labelled data goes there); "
                       'pass another --output, or move it away')
{%- else %}
    criterion = torch.nn.MSELoss(reduction='sum')
    header = ['id', 'prediction'] + ['label'] * dataset.has_labels
    if dataset.has_labels and scatter_figure_file(output).exists():
        raise RunError(f"'{scatter_figure_file(output)}' already exists (the predictions against their labels are "
                       'drawn there); pass another --output, or move it away')
{%- endif %}
    loss_sum = metric_sum = 0.0
    ids = iter(dataset.ids)
    with new_file(output) as f, torch.inference_mode():
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        for *inputs, target in tqdm(loader, desc='predict', **bar_options()):
            try:
                result = model(*[x.to(device) for x in inputs])
            except RuntimeError as err:
                failed = allocation_failure(err)  # CUDA's out of memory is a RuntimeError too
                if failed:
                    raise RunError(f'out of memory in a batch of {len(inputs[0])} samples ({failed}); pass a smaller '
                                   '--batch_size') from None
                raise RunError(f'the data does not fit the model ({str(err).splitlines()[0]}); '
                               "check its shape against the checkpoint's config") from None
            if dataset.has_labels:
                check_label_batch(target, result)
            target = target.to(device)
{%- if cookiecutter.task == 'classification' %}
            outside = target[(target < 0) | (target >= len(names))]  # data of your own: the readers check theirs
            if dataset.has_labels and len(outside):  # names[-1] would pass, and the loss fail part-way
                raise RunError(f'the data has label {int(outside[0])}, outside the classes 0..{len(names) - 1} the '
                               'model knows; fix the labels in dataset.py')
            probabilities = result.softmax(dim=1).tolist()
            labels = [[names[label]] for label in target.tolist()] if dataset.has_labels else [[]] * len(probabilities)
            for p, label in zip(probabilities, labels):
                best = max(range(len(p)), key=p.__getitem__)
                writer.writerow([next(ids), names[best], *label] + [f'{v:.6f}' for v in p])
{%- else %}
            labels = [[f'{value:.6g}'] for value in target[:, 0].tolist()] if dataset.has_labels else [[]] * len(result)
            for value, label in zip(result[:, 0].tolist(), labels):
                writer.writerow([next(ids), f'{value:.6g}', *label])
{%- endif %}
            if dataset.has_labels:
                loss_sum += criterion(result, target).item()
                metric_sum += metric_per_sample(result, target).sum().item()
{%- if cookiecutter.task == 'classification' %}
                pairs = target * len(names) + result.argmax(dim=1)  # (true, predicted) as one number
                confusion += torch.bincount(pairs, minlength=len(names) ** 2).view(len(names), len(names)).cpu()
    if dataset.has_labels:
        with new_file(confusion_path) as f:
            csv.writer(f, delimiter=delimiter).writerows(confusion_rows(confusion, names))
{%- endif %}
    if not dataset.has_labels:
        return len(dataset), None, None
    return len(dataset), loss_sum / len(dataset), metric_sum / len(dataset)


if __name__ == '__main__':
    show_crash_stacks()  # a crash in native code (a segfault), or Ctrl-\, shows each thread's Python stack
    parser = CommandParser(description='Predict with a trained checkpoint; write predictions.csv.',
                           word_option=option_for_word)
    parser.add_argument('--run', help="a run's timestamp or checkpoints folder: uses its best_checkpoint.pt")
    parser.add_argument('--checkpoint', help='a checkpoint file (instead of --run)')
{%- if cookiecutter.dataset == 'synthetic' %}
    parser.add_argument('--data', help='not used: synthetic samples are drawn in memory (see --n_samples)')
{%- else %}
    parser.add_argument('--data', help="data in this project's layout (default: the run's dataset_dir)")
{%- endif %}
    parser.add_argument('--output', default='predictions.csv', help='where to write (never overwritten); a .tsv name '
                        'writes tab-separated values')
    parser.add_argument('--batch_size', type=int, default=256)
{%- if cookiecutter.dataset == 'csv' %}
    parser.add_argument('--id_column', help="the data's column of sample ids, for predictions.csv's id (default: the "
                        "run's id_column where the data has it, else row numbers)")
{%- endif %}
{%- if cookiecutter.dataset == 'synthetic' %}
    parser.add_argument('--n_samples', type=int, default=256, help='how many fresh samples to draw (default: 256)')
{%- endif %}
    with one_line_errors():
        for arg in sys.argv[1:]:
            if arg.startswith('-'):
                check_not_a_device_option(arg, f'{arg} is not an option', script='predict.py')
        args = parser.parse_args()
        n, loss, metric = predict(find_checkpoint(args.run, args.checkpoint), args.data, args.output,
                                  args.batch_size{{ ', args.n_samples' if cookiecutter.dataset == 'synthetic' else ', id_column=args.id_column' if cookiecutter.dataset == 'csv' else '' }})
        print_output(f"wrote {n} prediction{'s' * (n != 1)} to {args.output}")
        if loss is not None and math.isfinite(loss):
            print_output(f'test loss {loss:.6f} {METRIC_NAME} {metric:.6f} on {n} labelled samples')
{%- if cookiecutter.task == 'classification' %}
        if loss is not None:
            confusion = confusion_file(Path(args.output))
            print_output(f'wrote the confusion matrix, with recall and precision per class, to {confusion}')
            print_output(draw_confusion(confusion))
{%- else %}
        if loss is not None:
            print_output(draw_scatter(Path(args.output)))
{%- endif %}

"""A table of every run under loggers/, or of the runs named:

    python runs.py                       # by run name: timestamps newest first
    python runs.py --sort valid_loss     # any column; --reverse flips the order
    python runs.py 20260101_120000 exp1  # these runs only, and the hyperparameters that differ between them

Columns: run (its timestamp, or its --run_name), status (running, finished, early-stopped, interrupted, failed),
epochs done, the best valid loss and metric and their epoch, the seconds an epoch takes, the training samples a second
(its training part only) and the share of an epoch spent waiting for batches (medians over the epochs), then the
hyperparameters, and the splits' sizes, that differ between the runs listed.
A damaged, partial or empty run folder is listed as such, never a crash.
"""

import difflib
import math
import statistics
from pathlib import Path

from runfiles import (
    HEARTBEAT_FILE,
    METRIC_NAME,
    PROJECT_FOLDER,
    CommandParser,
    RunError,
    differing_keys,
    holds_checkpoints_not_logs,
    named_runs,
    one_line_errors,
    parse_attempt,
    print_output,
    project_folder_note,
    read_heartbeat,
    read_metrics_rows,
    read_note,
    shown_status,
)

FIXED = ['run', 'status', 'epochs', 'valid_loss', f'valid_{METRIC_NAME}', 'best_epoch', 's_per_epoch', 'samples_per_s',
         'data_wait']


def summarize(folder):
    row = {'run': folder.name}
    try:
        config, provenance, status = read_note(folder)
    except (OSError, UnicodeDecodeError):
        if is_empty(folder):  # train.py made it in 3.5 and has not opened the logs (3.10) yet, or never will
            return {**row, 'status': 'empty (starting, or stopped before its logs)'}, {}
        return {**row, 'status': 'corrupt (no readable note.log)'}, {}
    if status is None:
        return {**row, 'status': 'partial (no status in note.log)'}, config
    row['status'] = shown_status(status, provenance, read_heartbeat(folder), folder)
    try:
        epochs = read_metrics_rows(folder / 'metrics.csv')
        best = min(epochs, key=lambda r: float(r['valid_loss'])) if epochs else None
        row.update(epoch_timing(epochs, config.get('data.train_samples', config.get('train_samples'))))
    except FileNotFoundError:
        epochs, best = [], None
    except (OSError, ValueError):  # ValueError: a missing column, or bytes that are not UTF-8
        row['status'] += ' (metrics.csv damaged)'
        epochs, best = [], None
    row['epochs'] = epochs[-1]['epoch'] if epochs else '0'
    if best:
        row.update({'valid_loss': f"{float(best['valid_loss']):.4f}",
                    f'valid_{METRIC_NAME}': f"{float(best['valid_metric']):.4f}", 'best_epoch': best['epoch']})
    return row, config


def epoch_timing(epochs, train_samples=None):
    """s_per_epoch, samples_per_s and data_wait of metrics.csv's rows: the median epoch's seconds, the training
    samples a second in the median epoch's training part (train_samples, note.log's size of the training split, over
    train_seconds), and the median share of an epoch spent waiting for batches (data_seconds). samples_per_s and
    data_wait are left out for rows from before their columns, and samples_per_s for a run whose note.log has no
    size. Medians, so that the first epoch (the workers' start, compiling) and one resumed from an older checkpoint
    do not decide them."""
    if not epochs:
        return {}
    timing = {'s_per_epoch': f"{statistics.median(float(r['epoch_seconds']) for r in epochs):.2f}"}
    train_seconds = [float(r['train_seconds']) for r in epochs if r.get('train_seconds')]
    median_train_seconds = statistics.median(train_seconds) if train_seconds else 0.0
    if str(train_samples).isdigit() and median_train_seconds > 0:
        per_second = int(train_samples) / median_train_seconds
        timing['samples_per_s'] = f'{per_second:.0f}' if per_second >= 100 else f'{per_second:.3g}'
    shares = [float(r['data_seconds']) / float(r['epoch_seconds']) for r in epochs
              if r.get('data_seconds') and float(r['epoch_seconds']) > 0]
    if shares:
        timing['data_wait'] = f'{100 * statistics.median(shares):.0f}%'
    return timing


def is_empty(folder):
    try:
        return not any(path.name != HEARTBEAT_FILE for path in folder.iterdir())
    except OSError:
        return False


def table(root, sort='run', reverse=False, folders=None):
    """The runs' table: the run folders under root, or only `folders` when given."""
    if folders is None:
        folders = sorted(p for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
    rows, configs = zip(*[summarize(folder) for folder in folders]) if folders else ((), ())
    differing = differing_keys(configs)
    columns = FIXED + differing
    if sort not in columns:
        close = difflib.get_close_matches(sort, columns, n=1)
        raise RunError(f"cannot sort by '{sort}'; " + (f"did you mean '{close[0]}'? " if close else '')
                       + f"choose one of: {', '.join(columns)}")
    rows = [{**row, **{key: config.get(key, '') for key in differing}} for row, config in zip(rows, configs)]

    def sort_key(row):
        value = row.get(sort, '')
        if sort == 'run':  # NAME.attempt-K right after NAME, in the order they started
            return parse_attempt(value) or (value, math.inf)
        try:
            return (0, float(str(value).removesuffix('%')), '')
        except ValueError:
            return (1, 0.0, str(value))

    rows.sort(key=sort_key, reverse=reverse)
    cells = [columns] + [[str(row.get(column, '')) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return '\n'.join('  '.join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells)


if __name__ == '__main__':
    parser = CommandParser(description='List every run under loggers/, or the runs named.')
    parser.add_argument('run', nargs='*', help='a timestamp or --run_name under loggers/, or a loggers/<run> folder: '
                        'list only these (default: every run)')
    parser.add_argument('--sort', default='run',
                        help='column to sort by (default: run, by name: timestamps newest first)')
    parser.add_argument('--reverse', action='store_true', help='flip the order')
    parser.add_argument('--loggers', default='loggers', help='the loggers folder (default: ./loggers)')
    with one_line_errors():
        args = parser.parse_args()
        if args.run:
            folders, files = named_runs(args.run, args.loggers)
        else:
            folders, files = None, []
            if not Path(args.loggers).is_dir():
                in_project = Path.cwd().resolve() == PROJECT_FOLDER and args.loggers == 'loggers'
                fix = 'no run has started here yet: python train.py starts one' if in_project else (
                    'run from the project folder or pass --loggers')
                raise RunError(f"no '{args.loggers}' folder here{project_folder_note(args.loggers)}; {fix}")
            runs = [folder for folder in Path(args.loggers).iterdir() if folder.is_dir()]
            if (runs and not any((run / 'note.log').exists() for run in runs)
                    and any(map(holds_checkpoints_not_logs, runs))):
                raise RunError(f"'{args.loggers}' holds runs' checkpoints, not their logs; pass their loggers folder, "
                               'such as --loggers loggers')
        text = table(args.loggers, args.sort, reverse=args.reverse != (args.sort == 'run'), folders=folders)
        for file in files:
            print_output(f'left out {file}: a file, not a run folder')
        print_output(text)

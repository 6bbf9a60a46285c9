"""Draw a run's curves from its metrics.csv, or compare runs in one figure:

    python plot.py 20260101_120000          # or a loggers/<timestamp> folder
    -> loggers/20260101_120000/curves.png
    python plot.py 20260101_120000 exp1 exp2 --output lr_sweep.pdf
    -> lr_sweep.pdf (default comparison.png; .svg, .pdf, .png ...; never over an existing file)
    python plot.py loggers/*                # every run that has finished an epoch
    python plot.py amp_run fp32_run --x time  # compared against training time, not epochs

Loss, metric and learning rate against epoch, train and valid together, the best epoch marked, and the
gradient norm before clipping when the run measured it (clip_flag true). A comparison gives each run a
colour (valid solid, train dashed), labelled with the hyperparameters that differ between the runs, as
runs.py lists them; its gradient-norm panel is there when any of the runs measured one. With --x time its curves
are against the time each run took to get there (the running sum of metrics.csv's epoch_seconds), so runs of
different speeds (amp, batch size, num_workers) show which reaches a loss first.
Needs matplotlib (pip install matplotlib); train.py draws the curves at the end of every run.
"""

import itertools
import math
from pathlib import Path

from runfiles import (
    METRIC_NAME,
    METRICS_COLUMNS,
    OPTIONAL_METRICS_COLUMNS,
    CommandParser,
    RunError,
    check_new_output,
    differing_keys,
    escaped,
    fix_for,
    import_problem,
    named_runs,
    new_file,
    newest_run,
    one_line_errors,
    print_output,
    project_folder_note,
    read_metrics_rows,
    read_note,
)

PANELS_SIZE = (15, 4.6)  # inches: three panels side by side
TIME_UNITS = (('seconds', 1), ('minutes', 60), ('hours', 3600))
METRIC_LABEL = {'acc': 'accuracy', 'mae': 'mean absolute error'}[METRIC_NAME]


class NoEpochs(RunError):
    """A run that has not finished an epoch yet: nothing to draw."""


def read_metrics(folder):
    """metrics.csv as {column: [values]}, one value per epoch (read_metrics_rows: after a resume from an
    earlier point, the epochs trained again replace the ones logged before). An optional column's missing or
    empty values (OPTIONAL_METRICS_COLUMNS: a run that did not measure it) are NaN."""
    path = Path(folder) / 'metrics.csv'
    try:
        rows = read_metrics_rows(path)
        metrics = {column: [float(row[column]) for row in rows] for column in METRICS_COLUMNS}
        for column in OPTIONAL_METRICS_COLUMNS:
            metrics[column] = [float(row[column]) if row.get(column) else math.nan for row in rows]
    except FileNotFoundError:
        raise NoEpochs(f"no metrics.csv in '{folder}': has the run finished an epoch?") from None
    except OSError as err:
        raise RunError(f"cannot read '{path}' ({err.strerror or err})") from None
    except ValueError as err:  # a missing column: read_metrics_rows skips cut lines
        raise RunError(f"'{path}' is damaged ({err})") from None
    if not rows:
        raise NoEpochs(f"'{path}' has no epochs yet")
    return metrics


def best_index(metrics):
    """The position of the best epoch (the lowest valid loss; the first of equals) in read_metrics' lists."""
    losses = metrics['valid_loss']
    return losses.index(min(losses))


def pyplot():
    """matplotlib.pyplot, drawing to files only (no display needed). Raises ImportError without a matplotlib that
    imports (import_problem(err, 'matplotlib') says which)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    return plt


def whole_epochs(axes):
    """Ticks at whole epochs only (none at 1.5, 2.5), and a light grid."""
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)


def log_scale_for_wide_losses(ax, losses):
    """A log scale for a loss axis whose values span more than two decades (a regression's squared error
    falling from 1e4 to 1), where a linear one would flatten every epoch after the first few."""
    if min(losses) > 0 and max(losses) > 100 * min(losses):
        ax.set_yscale('log')
        ax.set_ylabel('loss (log scale)')


def plot_run(folder):
    """Write <folder>/curves.png and return its path. Raises ImportError without matplotlib, RunError
    when metrics.csv is missing or damaged or the image cannot be written."""
    plt = pyplot()
    folder = Path(folder)
    m = read_metrics(folder)
    epochs = m['epoch']
    best = best_index(m)
    marker = '.' if len(epochs) <= 60 else None
    norms = any(math.isfinite(norm) for norm in m['grad_norm'])  # clip_flag true measures it
    width = PANELS_SIZE[0] * (3 + norms) / 3
    figure, axes = plt.subplots(1, 3 + norms, figsize=(width, PANELS_SIZE[1]), constrained_layout=True)
    for ax, name, label in ((axes[0], 'loss', 'loss'), (axes[1], 'metric', METRIC_LABEL)):
        ax.plot(epochs, m[f'train_{name}'], marker=marker, label='train')
        ax.plot(epochs, m[f'valid_{name}'], marker=marker, label='valid')
        ax.axvline(epochs[best], color='grey', linestyle='--', linewidth=1, label=f'best epoch ({epochs[best]:g})')
        ax.plot(epochs[best], m[f'valid_{name}'][best], 'o', color='C1', markersize=9, fillstyle='none')
        ax.set(xlabel='epoch', ylabel=label, title=label)
    log_scale_for_wide_losses(axes[0], m['train_loss'] + m['valid_loss'])
    axes[2].plot(epochs, m['lr'], marker=marker, color='C2', label='learning rate (end of epoch)')
    axes[2].ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))
    axes[2].set(xlabel='epoch', ylabel='learning rate', title='learning rate')
    if norms:  # a rising norm warns of instability before the loss shows it; NaN epochs (none finite) leave a gap
        axes[3].plot(epochs, m['grad_norm'], marker=marker, color='C3', label='train (mean over steps)')
        axes[3].set(xlabel='epoch', ylabel='gradient norm', title='gradient norm (before clipping)')
    whole_epochs(axes)
    for ax in axes:
        ax.legend()
    figure.suptitle(f"run {figure_text(folder.name)}: best valid loss {m['valid_loss'][best]:.4g} "
                    f'at epoch {epochs[best]:g}')
    path = folder / 'curves.png'
    try:
        figure.savefig(path, dpi=100)
    except OSError as err:  # a full disk or a read-only folder must not fail the run that just finished
        raise RunError(f"cannot write '{path}' ({err.strerror or err}); {fix_for(err)}, then python plot.py "
                       f'{folder.name}') from None
    finally:
        plt.close(figure)
    return path


def figure_text(text):
    """`text` as a figure should show it: a byte that is not UTF-8 (in a folder's name) escaped as the logs write it,
    since matplotlib cannot draw it, and each '$' escaped, since two of them would start matplotlib's math text,
    which misdraws the rest or fails the whole figure ('x$_$')."""
    return escaped(text).replace('$', r'\$')


def run_labels(folders, most=4):
    """Each run's name with the hyperparameters that differ between the runs (at most `most` of them)."""
    configs = []
    for folder in folders:
        try:
            configs.append(read_note(folder)[0])
        except (OSError, UnicodeDecodeError):  # no readable note.log: the name alone
            configs.append({})
    keys = differing_keys(configs)
    labels = []
    for folder, config in zip(folders, configs):
        shown = [f'{key}={config[key]}' for key in keys if key in config]
        if len(shown) > most:
            shown = shown[:most] + [f'{len(shown) - most} more']
        labels.append(figure_text(f"{folder.name} ({', '.join(shown)})" if shown else folder.name))
    return labels


def elapsed(metrics):
    """Each run's time at the end of each of its epochs (the running sum of its epoch_seconds: training and
    validation, not start-up or the time between a stop and its resume), in the unit that suits the longest run,
    and that unit's name."""
    times = [list(itertools.accumulate(m['epoch_seconds'])) for m in metrics]
    longest = max(run[-1] for run in times)
    unit, seconds = next(((unit, seconds) for unit, seconds in TIME_UNITS if longest <= 120 * seconds), TIME_UNITS[-1])
    return [[t / seconds for t in run] for run in times], unit


def compare_runs(folders, output, against='epoch'):
    """Write one figure of several runs' curves to `output`, a new file in the format its suffix names (.png
    if none); return its path and the runs left out, as (folder, why) pairs: runs that have not finished an
    epoch (`plot.py loggers/*` takes in runs just started) or whose metrics.csv cannot be read. The curves
    are against epochs, or with against='time' against each run's time so far (elapsed). Raises
    ImportError without matplotlib, RunError for an output that exists or is no image format, or fewer than
    two runs to draw."""
    output, runs, left_out = Path(output), [], []
    if not output.suffix:  # as matplotlib names a file given without one
        output = output.with_suffix('.png')
    image_format = drawn_format(output)
    check_new_output(output)
    for folder in map(Path, folders):
        try:
            runs.append((folder, read_metrics(folder)))
        except NoEpochs:
            left_out.append((folder, 'no epochs yet'))
        except RunError as err:
            left_out.append((folder, str(err)))
    if len(runs) < 2:
        raise RunError('a comparison needs two runs that have finished an epoch; of these, '
                       + (f"only '{runs[0][0].name}' has" if runs else 'none has'))
    folders, metrics = zip(*runs)
    if against == 'time':
        xs, unit = elapsed(metrics)
        x_label = f'time ({unit}: training and validation)'
    else:
        xs, x_label = [m['epoch'] for m in metrics], 'epoch'
    norms = any(math.isfinite(norm) for m in metrics for norm in m['grad_norm'])  # a run with clip_flag true
    plt = pyplot()
    panels_size = (PANELS_SIZE[0] * (3 + norms) / 3, PANELS_SIZE[1])
    figure = plt.figure(figsize=panels_size, constrained_layout=True)
    grid = figure.add_gridspec(2, 3 + norms, height_ratios=[PANELS_SIZE[1], 1])  # the panels, the legend under them
    axes = [figure.add_subplot(grid[0, i]) for i in range(3 + norms)]
    n = len(folders)  # matplotlib's ten colours, or for more runs as many shades of viridis, one per run
    colours = [f'C{i}' for i in range(n)] if n <= 10 else [plt.get_cmap('viridis')(i / (n - 1)) for i in range(n)]
    for folder, m, x, label, colour in zip(folders, metrics, xs, run_labels(folders), colours):
        best = best_index(m)
        for ax, name in ((axes[0], 'loss'), (axes[1], 'metric')):
            ax.plot(x, m[f'valid_{name}'], color=colour, label=label)
            ax.plot(x, m[f'train_{name}'], color=colour, linestyle='--', linewidth=1, alpha=0.7)
            ax.plot(x[best], m[f'valid_{name}'][best], 'o', color=colour, markersize=8, fillstyle='none')
        axes[2].plot(x, m['lr'], color=colour)
        if norms:  # a run without clipping measured none: no line of its own
            axes[3].plot(x, m['grad_norm'], color=colour)
    for ax, label in ((axes[0], 'loss'), (axes[1], METRIC_LABEL)):
        ax.set(xlabel=x_label, ylabel=label, title=f'{label} (valid solid, train dashed, o: best epoch)')
    log_scale_for_wide_losses(axes[0], [loss for m in metrics for loss in m['train_loss'] + m['valid_loss']])
    axes[2].set(xlabel=x_label, ylabel='learning rate', title='learning rate')
    axes[2].ticklabel_format(axis='y', style='sci', scilimits=(-2, 3))
    if norms:
        axes[3].set(xlabel=x_label, ylabel='gradient norm', title='gradient norm (train, before clipping)')
    if against == 'time':
        for ax in axes:
            ax.grid(alpha=0.3)
    else:
        whole_epochs(axes)
    legend_below(figure, grid, *axes[0].get_legend_handles_labels(), panels_size)
    lowest = min(range(n), key=lambda i: min(metrics[i]['valid_loss']))  # the first of equals
    m, best = metrics[lowest], best_index(metrics[lowest])
    figure.suptitle(f"{n} runs: lowest valid loss {m['valid_loss'][best]:.4g} ({figure_text(folders[lowest].name)}, "
                    f"epoch {m['epoch'][best]:g})")
    try:
        with new_file(output, binary=True, doing='drawing') as f:
            figure.savefig(f, format=image_format, dpi=100)
    except OSError as err:  # new_file names a full disk; this is another failure (a read error, a file too large)
        raise RunError(f"cannot write '{output}' ({err.strerror or err}); {fix_for(err)}, or pass another "
                       '--output') from None
    finally:
        plt.close(figure)
    return output, left_out


def drawn_format(output):
    """The image format matplotlib writes `output` in, named by its suffix. Raises RunError for one it cannot
    write (or not without LaTeX, or only as headerless pixels)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = sorted(set(FigureCanvasBase.get_supported_filetypes()) - {'pgf', 'raw', 'rgba'})
    if output.suffix[1:].lower() not in formats:
        raise RunError(f"cannot draw '{output}': not an image format matplotlib writes; end --output with one of "
                       + ', '.join(f'.{name}' for name in formats))
    return output.suffix[1:].lower()


def legend_below(figure, grid, handles, labels, panels_size, most_columns=5):
    """The runs' legend in the grid's second row, clear of every curve however many runs there are: as
    many columns as fit the figure's width, and the figure made taller by its rows (and wider, for labels
    longer than it is wide)."""
    key = figure.add_subplot(grid[1, :])
    key.axis('off')
    renderer = figure.canvas.get_renderer()
    for columns in range(min(len(labels), most_columns), 0, -1):
        legend = key.legend(handles, labels, loc='upper center', ncol=columns, frameon=False, fontsize='small')
        size = legend.get_window_extent(renderer)
        if size.width <= 0.95 * figure.bbox.width:
            break
    height = size.height / figure.dpi + 0.1
    figure.set_size_inches(max(panels_size[0], size.width / figure.dpi + 0.5), panels_size[1] + height)
    grid.set_height_ratios([panels_size[1], height])


def save_curves(folder):
    """plot_run() for the end of a run: a one-line message, never an exception."""
    try:
        return f'saved {plot_run(folder)}'
    except ImportError as err:
        why, fix = import_problem(err, 'matplotlib')
        return f'no curves.png: {why}; {fix}, then python plot.py {Path(folder).name}'
    except RunError as err:
        return f'no curves.png: {err}'
    except Exception as err:  # a plotting bug must not fail a run that has finished (or leave DDP ranks waiting)
        return (f'no curves.png: drawing failed ({type(err).__name__}: {err}); '
                f'python plot.py {Path(folder).name} shows the traceback')


if __name__ == '__main__':
    parser = CommandParser(description='Write loggers/<run>/curves.png from its metrics.csv, or compare runs.')
    parser.add_argument('run', nargs='*', help='a timestamp or --run_name under loggers/, or a loggers/<run> folder; '
                        'two or more: one figure that compares them')
    parser.add_argument('--output', help='the comparison figure (default: comparison.png; its suffix names the format: '
                        '.png, .svg, .pdf ...); never replaces a file')
    parser.add_argument('--x', choices=('epoch', 'time'), default='epoch',
                        help="a comparison's horizontal axis: epochs (default), or each run's time so far")
    with one_line_errors():
        args = parser.parse_args()
        if not args.run:
            newest = newest_run('loggers', 'metrics.csv')
            raise RunError('name a run to draw, or two or more to compare; ' + (
                f'the newest run here: python plot.py {newest}' if newest else
                f"no run under 'loggers' has finished an epoch yet{project_folder_note('loggers')}"))
        comparing = len(args.run) > 1
        folders, files = named_runs(args.run)
        if not comparing and args.output is not None:
            raise RunError("--output names a comparison of two or more runs; one run's figure is its curves.png")
        if not comparing and args.x != 'epoch':
            raise RunError(f"--x {args.x} is for a comparison of two or more runs (one run's curves.png is against "
                           'epochs); name more runs, or leave --x out')
        try:
            if not comparing:
                print_output(f'wrote {plot_run(folders[0])}')
            else:
                for file in files:
                    print_output(f'left out {file}: a file, not a run folder')
                path, left_out = compare_runs(folders, 'comparison.png' if args.output is None else args.output, args.x)
                for folder, why in left_out:
                    print_output(f'left out {folder}: {why}')
                print_output(f'wrote {path}')
        except ImportError as err:
            raise RunError('{}; {}'.format(*import_problem(err, 'matplotlib'))) from None

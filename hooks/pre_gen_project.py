"""Validate the answers before anything is written. One line per problem, then exit 1."""

import atexit
import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path

# The answers, read as data: never pasted into code.
ANSWERS = json.loads(r"""
{{ cookiecutter | tojson }}
""".strip())

# Which dataset readers feed which models.
SUPPORTED = {
    'mlp': ('synthetic', 'csv', 'image_folder'),
    'cnn': ('synthetic', 'image_folder'),
    'transformer': ('synthetic', 'sequence'),
}
SIZES = {'num_features': 1, 'image_channels': 1, 'image_size': 8, 'num_classes': 2}
SLUG = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_-]*')


def problems(answers):
    found = []
    if not str(answers['project_name']).strip():
        found.append('project_name is empty: give the project a name')
    slug = str(answers['project_slug'])
    if not SLUG.fullmatch(slug) or '..' in slug:
        found.append(f'project_slug {slug!r} is not a safe folder name: use letters, digits, _ and - only, '
                     'not starting with -')
    for key, minimum in SIZES.items():
        text = str(answers[key]).strip()
        if not re.fullmatch(r'[0-9]+', text):
            found.append(f'{key} must be a whole number, got {text!r}')
        elif int(text) < minimum:
            found.append(f'{key} must be at least {minimum}, got {text}')
    model, dataset = answers['model'], answers['dataset']
    if model in SUPPORTED and dataset not in SUPPORTED[model]:
        models = [m for m, datasets in SUPPORTED.items() if dataset in datasets]
        found.append(f'model {model!r} cannot read dataset {dataset!r}: with {model!r} choose one of '
                     f'{", ".join(SUPPORTED[model])}; for {dataset!r} choose model {" or ".join(models)}')
    if dataset == 'image_folder' and str(answers['image_channels']).strip() not in ('1', '3', '4'):
        found.append(f"image_channels must be 1, 3 or 4 for image files, got {answers['image_channels']!r}")
    return found


def remove_if_a_temp_copy(path):
    """cookiecutter runs a rendered copy of each hook from the temp folder and leaves it there, one file per hook
    and bake (cookiecutter issue 886): remove that copy when the hook ends. Never a file elsewhere, such as the
    template's own hook."""
    path = Path(path).resolve()
    if path.parent == Path(tempfile.gettempdir()).resolve():
        with contextlib.suppress(OSError):  # litter at worst, as before
            path.unlink()


if __name__ == '__main__':
    atexit.register(remove_if_a_temp_copy, __file__)  # __file__ may be unset by then
    found = problems(ANSWERS)
    for problem in found:
        print(f'error: {problem}', file=sys.stderr)
    sys.exit(1 if found else 0)

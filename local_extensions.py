"""Jinja filters for cookiecutter.json, loaded through `_extensions`.

cookiecutter creates the project folder from the slug before the pre-generation hook runs, so a slug
such as `a/b` would leave `a/` behind. This filter rejects it while the answers are still being read.
"""

import re

from cookiecutter.utils import simple_filter
from jinja2.exceptions import UndefinedError

SAFE_FOLDER_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_-]*')


@simple_filter
def safe_folder_name(slug):
    if not SAFE_FOLDER_NAME.fullmatch(slug) or '..' in slug:
        raise UndefinedError(f'project_slug {slug!r} is not a safe folder name: use letters, digits, _ and - only, '
                             'not starting with - (and a non-empty project_name)')
    return slug

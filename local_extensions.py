"""Jinja filters for cookiecutter.json, loaded through `_extensions`, and a quieter refusal.

cookiecutter creates the project folder from the slug before the pre-generation hook runs, so a slug
such as `a/b` would leave `a/` behind. This filter rejects it while the answers are still being read.

This module is imported into cookiecutter's own process, so it also decides how a refusal reads there:
one `error:` line, as the pre-generation hook prints its problems, rather than cookiecutter's traceback.
"""

import logging
import re
import sys

from cookiecutter.exceptions import FailedHookException
from cookiecutter.utils import simple_filter
from jinja2.exceptions import UndefinedError

SAFE_FOLDER_NAME = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_-]*')


def run_by_the_cookiecutter_command():
    """True inside `cookiecutter ...` (the click command), False under the API (pytest-cookies, cruft)."""
    try:
        import click
    except ImportError:
        return False
    context = click.get_current_context(silent=True)
    return context is not None and getattr(context.command.callback, '__module__', None) == 'cookiecutter.cli'


def refuse(message):
    # At the command line a traceback would bury the message; an API caller gets an exception it can catch.
    if run_by_the_cookiecutter_command():
        print(f'error: {message}', file=sys.stderr)
        raise SystemExit(1)
    raise UndefinedError(message)


@simple_filter
def safe_folder_name(slug):
    if not slug:
        refuse('project_slug is empty: give a project_name with letters or digits in it, or a project_slug')
    if not SAFE_FOLDER_NAME.fullmatch(slug) or '..' in slug:
        refuse(f'project_slug {slug!r} is not a safe folder name: use letters, digits, _ and - only, '
               'not starting with -')
    return slug


class WithoutHookTraceback(logging.Filter):
    """The pre-generation hook has printed its problems; cookiecutter's traceback of the hook's exit status
    (logged with the exception) would push them out of sight. Keep the log line, drop the traceback."""

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], FailedHookException):
            record.exc_info = None
            record.exc_text = None
        return True


HOOKS_LOGGER = logging.getLogger('cookiecutter.hooks')
if not any(isinstance(f, WithoutHookTraceback) for f in HOOKS_LOGGER.filters):
    HOOKS_LOGGER.addFilter(WithoutHookTraceback())

"""Errors shared by the command line and the stages (kept apart from `cli` so that running
`python -m deploy_compare.app.cli` and importing `deploy_compare.app.cli` see the same classes)."""


class UserError(Exception):
    """An error the user can fix (wrong argument, existing run folder, ...); printed without a traceback."""

"""Scripts run by a converter's own venv interpreter (`deploy_compare.models.venvs`), never imported by the project:
they import only their converter's libraries and print one JSON line as their result."""

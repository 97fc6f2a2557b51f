"""Launchers: how a server process runs (native process group, Docker container). Importing this
package registers both in `deploy_compare.serving.base.LAUNCHERS`, native first (`auto` prefers it)."""
# registration order = preference order of `--launcher auto`
# isort: off
from deploy_compare.serving.launchers import native  # noqa: F401  (registered first)
from deploy_compare.serving.launchers import docker  # noqa: F401
# isort: on

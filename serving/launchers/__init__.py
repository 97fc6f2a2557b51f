"""Launchers: how a server process runs (native process group, Docker container). Importing this
package registers both in `serving.base.LAUNCHERS`, native first (`auto` prefers it)."""
# isort: off  (registration order = preference order of `--launcher auto`)
from serving.launchers import native  # noqa: F401  (registered first)
from serving.launchers import docker  # noqa: F401,E402
# isort: on

"""One installed namespace: the design card keeps the layers in top-level folders (core/, models/, serving/,
loadtests/); installed, they are subpackages of `deploy_compare` (`models/` -> `deploy_compare.models`), beside
the app layer in `deploy_compare/app/`. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

LAYERS = ("core", "models", "serving", "loadtests")

packages = find_packages(include=["deploy_compare", "deploy_compare.*"])
for layer in LAYERS:
    packages += [f"deploy_compare.{name}" for name in find_packages(include=[layer, f"{layer}.*"])]

setup(packages=packages, package_dir={f"deploy_compare.{layer}": layer for layer in LAYERS})

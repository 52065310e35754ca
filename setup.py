"""The package list (everything else is in pyproject.toml).

enrollment/ and models/ are folders of the repository, as the design lays them out,
but they install inside the kiosk namespace (kiosk.enrollment, kiosk.models), so
nothing but ``kiosk`` lands in site-packages.
"""
from setuptools import find_packages, setup

MAPPED = {"kiosk.enrollment": "enrollment", "kiosk.models": "models"}
setup(packages=find_packages(include=["kiosk", "kiosk.*"]) + list(MAPPED), package_dir=MAPPED)

"""KFP components: thin wrappers around `alphafactory.stages`, one file per stage.

The runtime image already holds the library and kfp, so components are declared with
`install_kfp_package=False` and no `packages_to_install`.
"""

import os

#: The runtime image of every component; per-environment images are set at compile time.
RUNTIME_IMAGE = os.environ.get(
    "ALPHAFACTORY_RUNTIME_IMAGE", "ghcr.io/alphafactory/alphafactory-cpu:0.1.0"
)

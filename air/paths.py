"""Where the repository and its scripts are: the one module that knows the layout on disk.

Everything that needs a file of the repository (a script to run, the shipped model, the source
snapshot of a results folder) asks here, so that moving a file changes one line.
"""
import os

# The repository's root folder: air/ sits directly below it.
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(REPO, "air")
CLI_MODULE = os.path.join(PACKAGE, "cli.py")
SHIPPED_MODEL = os.path.join(REPO, "model")
# Where multi_mnist.py and training.py write by default, run from the repository.
DEFAULT_DATA = os.path.join(REPO, "multi_mnist_data")
DEFAULT_RESULTS_MODEL = os.path.join(REPO, "air_results", "model")
# The child process that runs the original project's code: a file run by path, never imported
# (the original has a package named air too).
ORIGINAL_BOOTSTRAP = os.path.join(PACKAGE, "experiments", "original_bootstrap.py")

# The files of the repository a results folder's source/ snapshot copies beside air/.
SOURCE_FILES = ("training.py", "evaluate.py", "multi_mnist.py", "demo.py", "embeddings.py",
                "charts.py", "bench.py", "sweep.py", "export_model.py", "requirements.txt",
                "Makefile", "README.md")


def script(name):
    """The path of a top-level script of the repository, e.g. script("training")."""
    return os.path.join(REPO, name + ".py")

"""The registered model's MLflow pyfunc, logged as code ("models from code"), not as a pickle.

:func:`evaluation.registry.register_model` logs this file as the model's ``python_model`` and the
``evaluation`` package beside it (``code_paths``), so ``mlflow.pyfunc.load_model("models:/<name>/<version>")``
works in any environment with torch, transformers and mlflow, without this project installed, and loading
runs no unpickled code. The class: :class:`evaluation.pyfunc.ToolCallingModel`.
"""

from mlflow.models import set_model

from evaluation.pyfunc import ToolCallingModel

set_model(ToolCallingModel())

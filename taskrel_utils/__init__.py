"""taskrel_utils: the logic behind the taskrel kit's notebooks.

Transferability of representations via task-relatedness (Mehra, Zhang, Hamm, NeurIPS 2024).
Modules: ``config`` (profiles), ``runs`` (run directories), ``data`` (task registry),
``encoders`` (encoder registry), ``features`` (extraction + cache), ``plots``, ``report``,
``pipeline`` (papermill runner, ``python -m taskrel_utils``).
"""
__version__ = "0.1.0"

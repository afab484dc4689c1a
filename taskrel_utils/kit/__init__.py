"""The kit around the notebooks: run folders, the papermill runner, HTML reports, student copies,
and the command line (``python -m taskrel_utils``).

``runs`` (run directories), ``pipeline`` (runs the notebooks), ``report`` and ``report_index``
(HTML reports and the run's index), ``mathml`` (formulas for the reports), ``student`` (the
notebooks without their solution cells), ``cli`` (the command line), ``workflow`` (the Makefile's
setup, reproduce, test and lab without make: ``python -m taskrel_utils setup``), ``layers`` (the
layers read from the source: ``python -m taskrel_utils layers``).

The top layer: may import every other subpackage; none imports it.
"""
__all__ = ["runs", "pipeline", "report", "report_index", "mathml", "student", "cli", "workflow", "layers"]

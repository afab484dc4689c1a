"""Interactive exploration (ipywidgets) placed next to the notebooks' static figures."""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import seaborn as sns
from IPython.display import display


def projection_explorer(frame):
    """Pick an encoder and a task; see its 2-D projection coloured by class name.

    ``frame`` columns: encoder, task, pc1, pc2, label, class_name.
    """
    encoder = widgets.Dropdown(options=sorted(frame.encoder.unique()), description="encoder")
    task = widgets.Dropdown(options=sorted(frame.task.unique()), description="task")
    out = widgets.Output()

    def draw(*_):
        sel = frame[(frame.encoder == encoder.value) & (frame.task == task.value)]
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(5.5, 4.5))
            sns.scatterplot(data=sel, x="pc1", y="pc2", hue="class_name", s=10, linewidth=0, ax=ax,
                            palette="tab10")
            ax.legend(fontsize=7, markerscale=1.5, bbox_to_anchor=(1.02, 1), loc="upper left")
            ax.set_title(f"{encoder.value} on {task.value}")
            plt.show()

    encoder.observe(draw, names="value")
    task.observe(draw, names="value")
    draw()
    box = widgets.VBox([widgets.HBox([encoder, task]), out])
    display(box)
    return box

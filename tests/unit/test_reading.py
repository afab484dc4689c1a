"""The notebooks' reading sentences follow the numbers they read."""
import pandas as pd

from taskrel_utils import reading


def test_reading_sentences_follow_the_numbers():
    pearson = pd.DataFrame({"Ours (TR)": [-0.8, 0.2], "LogME": [0.5, -0.1]}, index=["a", "b"])
    pearson.loc["Average"] = pearson.mean()
    text = reading.correlation_reading(pearson)
    assert "`a` -0.80, `b` +0.20" in text and "average -0.30" in text and "1 of 2 targets" in text
    assert "ranks 1 of 2" in text  # sign-corrected: TR +0.30 beats LogME +0.20
    assert "ranks 2 of 2" in reading.correlation_reading(pearson, score="LogME")

"""REST over evaluation: the out-of-sample table, a sweep started and read back."""

from __future__ import annotations

import pandas as pd
import pytest
import requests

from experimenthub import NotReady


def test_evaluation_over_rest_and_without_a_backtest(served, daily_records):
    hub, server = served
    hub.create_experiment("no_backtest", "time_series", {"setup": {"target": "value"}},
                          data=pd.DataFrame(daily_records))
    hub.wait("no_backtest")
    answer = requests.get(f"{server.url}/no_backtest/evaluation", timeout=30)
    assert answer.status_code == 409 and "evaluate" in answer.json()["detail"]
    with pytest.raises(NotReady):
        hub.evaluation("no_backtest")
    huge = requests.post(f"{server.url}/no_backtest/sweep",
                         json={"params": {f"p{i}": list(range(10)) for i in range(8)}}, timeout=30)
    assert huge.status_code == 413 and "MAX_SWEEP_CANDIDATES" in huge.json()["detail"]
    sweep = requests.post(f"{server.url}/no_backtest/sweep", json={"params": {"seasonality_mode": ["additive"]}},
                          timeout=60)
    assert sweep.status_code == 200
    hub.wait("no_backtest", timeout=600)
    rows = requests.get(f"{server.url}/no_backtest/evaluation", timeout=30).json()
    assert rows and {"fold", "step", "y", "yhat", "baseline"} <= set(rows[0])
    candidates = requests.get(f"{server.url}/no_backtest/sweep", timeout=30).json()
    assert len(candidates) == 1 and candidates[0]["cv_mape"] is not None

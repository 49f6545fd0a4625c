"""Writes the tutorial notebooks from the cell sources below (run it after editing them):

    .venv/bin/python notebooks/_build.py

Keeping the sources here keeps diffs readable; the .ipynb files are what users open and what CI
runs under nbval (outputs are not stored)."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
CHECK = "# NBVAL_CHECK_OUTPUT\n"


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str, check: bool = False):
    return new_code_cell((CHECK if check else "") + text.strip())


QUICKSTART = [
    md("""
# Quickstart: a Prophet forecast in three calls

One `ExperimentHub` object runs experiments in the background, tracks each training as an MLflow run
and draws Plotly figures. With no settings at all it works on this machine alone: MLflow in a local
sqlite file, an in-process data queue.
"""),
    code("""
from experimenthub import ExperimentHub, datasets

hub = ExperimentHub()
hub
"""),
    md("Prophet's own test data: 510 daily values. Any DataFrame with a timestamp and a numeric column works."),
    code("""
df = datasets.load("prophet_daily")
df.tail()
"""),
    md("""
The config has the REST API's shape: `setup` names the columns, `create_model` picks the model and passes
`params` to `Prophet(...)`. `create_experiment` validates everything, then returns at once: the fit runs
in a background worker process.
"""),
    code("""
config = {
    "setup": {"target": "y", "ds": "ds"},
    "create_model": {"model_type": "Prophet", "params": {"seasonality_mode": "multiplicative"}},
    "forecast": {"horizon": 60},
    "evaluate": {"horizon": 20, "folds": 3},  # a rolling-origin backtest, scored out of sample
}
experiment = hub.create_experiment("sales", "time_series", config, data=df)
experiment.state
"""),
    code("""
status = hub.wait("sales")
print(status.state)
""", check=True),
    md("""
Metrics: in-sample (`mae`, `mape`, `coverage`, `anomaly_rate`) and out of sample from the backtest
(`cv_*`: 3 folds of 20 business days each), beside a seasonal-naive baseline on the same folds
(`baseline_cv_*`). `cv_rel_mae` below 1 reads "better than naive". `hub.evaluation("sales")` has the
error of every fold and horizon step.
"""),
    code("""
{k: round(v, 3) for k, v in status.metrics.items()}
"""),
    md("""
The data has weekdays only, so the forecast follows that calendar (business days; Prophet's advice
for data with regular gaps). The anomaly band is its own setting (`anomaly.interval_width`, default
0.99: about 1 % of normal points flagged), apart from the forecast interval drawn around the forecast.
"""),
    code("""
hub.plot("sales", "forecast")
"""),
    code("""
hub.plot("sales", "components")
"""),
    md("With no new data, `predict` forecasts the configured horizon ahead:"),
    code("""
ahead = hub.predict("sales")
print(len(ahead), list(ahead.columns))
print(sorted(set(ahead["ds"].dt.day_name())))
""", check=True),
    md("With new actuals it flags the ones the model did not expect:"),
    code("""
new = df.tail(10).copy()
new.loc[new.index[3], "y"] *= 2.5  # an unusual value
flags = hub.predict("sales", new)
print(int(flags["anomaly"].sum()) >= 1)
""", check=True),
    md("Every training is an MLflow run; `save` brings it up to date and `load` rebuilds the experiment from it\n"
       "(in any process)."),
    code("""
run_id = hub.save("sales")
print(hub.load("sales", run_id).state)
""", check=True),
    md("Runs side by side, best first (`hub.compare()` for every experiment, or one name for its runs):"),
    code("""
hub.compare(metric="cv_mae")[["experiment", "model_type", "cv_mae", "baseline_cv_mae", "cv_rel_mae", "run_id"]]
"""),
    code("""
hub.plot_eda("sales", "correlation")
"""),
    code("""
hub.close()
"""),
]

FAULT_DETECTION = [
    md("""
# Fault detection on the Tennessee Eastman Process

PCA monitoring: Hotelling's T² inside the model plane, SPE (Q) off it, each with a control limit.
We train on normal operation and watch fault IDV(1) (a step in the A/C feed ratio) come in at sample 160.
"""),
    code("""
from experimenthub import ExperimentHub, datasets

hub = ExperimentHub()
normal = datasets.load("tep_normal_train")
faulty = datasets.load("tep_idv01_test")
normal.shape, faulty.shape
"""),
    md("Sensible defaults: every numeric column is a feature, components explain 90 % of the variance,\n"
       "limits at 99 %."),
    code("""
hub.create_experiment("tep", "fault_detection", {"setup": {}, "create_model": {"model_type": "PCA", "params": {}}},
                      data=normal)
status = hub.wait("tep")
print(status.state)
""", check=True),
    code("""
result = hub.predict("tep", faulty)
after = faulty["fault"] == 1
print(f"detected {result.loc[after, 'anomaly'].mean():.0%} of faulty samples; "
      f"{result.loc[~after, 'anomaly'].mean():.1%} false alarms before the fault")
"""),
    code("""
hub.plot("tep", "control_chart")
"""),
    md("Which variables drive the alarms: the contributions of the flagged samples."),
    code("""
hub.plot("tep", "contributions")
"""),
    code("""
result.loc[after, "top_contributors"].value_counts().head()
"""),
    md("The same data with an IsolationForest: its limit is the 99 % quantile of out-of-fold anomaly scores."),
    code("""
hub.create_experiment("tep_forest", "fault_detection",
                      {"setup": {}, "create_model": {"model_type": "IsolationForest", "params": {"n_estimators": 200}}},
                      data=normal)
hub.wait("tep_forest")
forest = hub.predict("tep_forest", faulty)
print(forest.loc[after, "anomaly"].mean() > 0.9)
""", check=True),
    code("""
hub.close()
"""),
]

REST = [
    md("""
# The REST API from the same kernel

`hub.serve()` starts the documented REST API in a background thread of this kernel. Programs that call
it drive the very experiments this notebook sees. Here the "other program" is the Python client, run
from this notebook.
"""),
    code("""
from experimenthub import ExperimentHub, datasets
from experimenthub.client import APIError, ExperimentHubClient
from experimenthub.tables import to_records

hub = ExperimentHub()
server = hub.serve(port=0)  # port=0: a free port; the default is 8010
server
"""),
    code("""
client = ExperimentHubClient(server.url)
print(sorted(client.check_health()))
""", check=True),
    md("Each plugin says whether it is healthy, and why not (MLflow says `starting` while it creates its database):"),
    code("""
client.check_health()
"""),
    code("""
config = {
    "setup": {"target": "y", "ds": "ds"},
    "create_model": {"model_type": "Prophet", "params": {"daily_seasonality": False}},
    "data": to_records(datasets.load("prophet_daily")),
}
print(client.create_experiment("over_rest", "time_series", config))
""", check=True),
    md("The kernel's hub has it at once:"),
    code("""
print("over_rest" in hub.experiments)
""", check=True),
    code("""
print(client.wait_until_ready("over_rest")["state"])
""", check=True),
    code("""
print(client.predict("over_rest"), len(client.predictions("over_rest")))
""", check=True),
    code("""
import json

import plotly.io

plotly.io.from_json(json.dumps(client.get_plot("over_rest", "forecast")))
"""),
    md("Errors come back as a status code and a `detail` you can act on:"),
    code("""
try:
    client.create_experiment("x", "invalid_type", {})
except APIError as error:
    print(error.status_code, error.detail)
""", check=True),
    code("""
hub.stop_server()
hub.close()
"""),
]


STREAMING = [
    md("""
# Streaming: data through a queue

Every experiment has a queue named after it. Without settings it lives in this process; with
`EXPERIMENTHUB_RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672/%2F` it is a durable RabbitMQ queue, and any
program can publish to it. Training drains the queue; `watch` predicts every batch that arrives.
"""),
    code("""
import time

from experimenthub import ExperimentHub, datasets

hub = ExperimentHub()
hub.health()["datastream"]
"""),
    code("""
name = "sensor"
hub.flush(name)  # start from an empty queue (a broker keeps queues between runs)
df = datasets.load("prophet_daily")
history, live = df.iloc[:480], df.iloc[480:]
for start in range(0, len(history), 120):  # four messages of 120 rows
    hub.publish(name, history.iloc[start:start + 120])
config = {"setup": {"target": "y", "ds": "ds"}, "create_model": {"model_type": "Prophet", "params": {}}}
hub.create_experiment(name, "time_series", config)  # no data given: it drains the queue
print(hub.wait(name).state, len(hub.train_data(name)))
""", check=True),
    md("Streaming mode: each batch published from now on is predicted, in order, once, and acknowledged after."),
    code("""
hub.watch(name)
for start in range(0, len(live), 5):  # six batches of five new days, with their actual values
    hub.publish(name, live.iloc[start:start + 5])
deadline = time.monotonic() + 120
while (hub.predictions(name) is None or len(hub.predictions(name)) < len(live)) and time.monotonic() < deadline:
    time.sleep(0.1)
print(len(hub.predictions(name)), hub.datastream.depth(name))
""", check=True),
    code("""
hub.predictions(name).tail()
"""),
    code("""
hub.plot(name, "forecast")
"""),
    md("A malformed message is not retried forever nor dropped: it goes to the dead-letter queue with the reason."),
    code("""
hub.datastream.publish(name, b"this is not JSON")
deadline = time.monotonic() + 30
while not hub.datastream.dead_letters(name) and time.monotonic() < deadline:
    time.sleep(0.1)
print(len(hub.datastream.dead_letters(name)) >= 1)
""", check=True),
    code("""
hub.datastream.dead_letters(name)[-1].reason
"""),
    code("""
hub.unwatch(name)
hub.flush(name)
hub.close()
"""),
]

DASHBOARD = [
    md("""
# ExperimentHub dashboard

Open it with Voila (`voila notebooks/dashboard.ipynb`): the panel alone, no code. The REST API runs in
this same kernel; its URL is in the panel's header (under Voila every visitor's kernel gets a free port).
"""),
    code("""
from experimenthub import ExperimentHub
from experimenthub.api.server import PortInUse, under_voila

hub = ExperimentHub()
try:
    server = hub.serve()  # 8010 by default; a free port under Voila
except PortInUse:
    server = hub.serve(port=0)  # 8010 is taken (another notebook?): any free port
app = hub.panel()
app
"""),
    code("""
# When this notebook runs top to bottom outside Voila (CI, "Run all"), stop the API again;
# as a Voila app the kernel, and the API with it, live as long as the page.
if not under_voila():
    app.close()
    hub.stop_server()
"""),
]


def write(name: str, cells) -> None:
    """Execute the notebook and store the outputs of the NBVAL_CHECK_OUTPUT cells only: they are
    the references nbval compares against; other outputs (figures) would only bloat the file."""
    import os
    import tempfile

    from nbclient import NotebookClient

    notebook = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"}})
    with tempfile.TemporaryDirectory() as home:
        os.environ["EXPERIMENTHUB_HOME"] = home
        NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
                       ).execute()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            if not cell.source.startswith(CHECK):
                cell.outputs = []
                cell.execution_count = None
            else:  # compare what the cell prints, not log lines that background threads emit
                cell.outputs = [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")]
            cell.metadata = {}
    nbformat.write(notebook, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    write("quickstart", QUICKSTART)
    write("fault_detection", FAULT_DETECTION)
    write("rest_from_the_kernel", REST)
    write("streaming", STREAMING)
    write("dashboard", DASHBOARD)

"""crmbot's benchmarks: scripts run by hand, never collected as tests. Run each as a module
from the project root, e.g. `python -m benchmarks.run --customers 10000`; they import the
test support code as `tests.support` (the fake Slack, the signed requests).

* `run`: the whole suite, each figure beside its target (`run_common`: shared helpers and
  the child processes; `run_data`: generating and importing the sample company;
  `run_machine`: the machine and its fixed reference work; `run_training`: training, the
  BG/NBD summary and fits; `run_bot`: commands, HTTP end to end and digests;
  `run_report`: the table);
* `load`: slash commands under load while a retrain runs (`load_setup`: the database and
  the processes; `load_checks`: the requests, the checks and the table);
* `clv_bench`, `graph_bench`, `import_bench`, `slack_bench`, `value_stages_bench`: one
  part each;
* `lookup_bench`: 12 misspelt lookups at once and a lookup by id behind them, through the
  Slack app, on a book of N customers.
"""

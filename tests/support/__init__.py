"""Support code shared by the tests and the benchmarks (`from tests.support.slack_fake import
SlackFake`); nothing here is collected as a test.

Fake Slack:

* `slack_fake`: a local fake of the Slack Web API (a real HTTP server on 127.0.0.1, port 0)
  that answers like Slack or as a test scripts it, and records every request;
* `socket_mode_fake`: a local stand-in for Slack's Socket Mode WebSocket endpoint;
* `slack_requests`: the HTTP requests Slack sends (slash commands, events, button clicks),
  signed as Slack signs them;
* `slack_bot`: the real Bolt app over a `SlackFake`, driven by signed requests and read
  back from what the fake received (`tests/slack/`);
* `http_serving`: that app behind the real HTTP server on loopback, and waiting for a
  `crmbot run` child to answer /healthz.

Networking:

* `tcp_proxy`: a TCP forwarder on loopback that can be cut and restored, so the database
  goes away and comes back.

Fake CRMs, written straight into the real tables (as import and training leave them):

* `small_crm`: a dozen scored customers over two model runs with the awkward cases planted,
  and `ChatBot`, the dispatcher and shell over it (command, query and Slack tests; the
  `crm` and `bot` fixtures);
* `ask_crm`: five scored customers, two runs, orders and referrals (the `ask` tests);
* `scored_data`: customers and one scored model run built from `Account`s (digest and
  scheduler tests);
* `value_data`: a seeded company buying as a Poisson process with drop-out, tickets,
  surveys, order lines and referrals, inserted with Core inserts (training, CLI, feature
  and summary tests).

In memory:

* `synthetic_crm`: a seeded company built straight into a `TrainingData`, with planted
  frustrated churners (churn and satisfaction tests; no database).
"""

"""mlpower.analytics: energy, efficiency and compliance of every run, live and after the fact.

Public surface (what the lab wiring and other tools call), all over ``mlpower.runview.RunView``:

* ``summary.summarize(view) -> RunSummary``: average power, energy over the covered time with
  the coverage beside it, uncertainty, performance and efficiency;
* ``rules.RULES`` (the one rule table) and ``rules.evaluate(view, CheckOptions)``, the one way to
  judge a run; ``check.check_run_dir(path, CheckOptions) -> CheckReport`` (``mlpower check``);
* ``live.LiveChecker`` (the live rules over the run so far, pure);
* ``service.AnalyticsService(settings, bus)`` with ``start()``/``stop()``/``analyze(run_id, folder)``,
  ``app.create_app(service)``; ``mlpower analytics`` runs both until SIGTERM.
"""

"""mlpower.analytics: energy, efficiency and compliance of every run, live and after the fact.

Public surface (what the lab wiring and other tools call):

* ``summary.summarize_documents(docs_or_path) -> RunSummary`` and ``summary.summarize_tree(path)``
  (strict), ``summary.analyze_documents`` / ``summary.analyze_tree`` (summary plus findings);
* ``check.check_run_dir(path, CheckOptions) -> CheckReport`` (``mlpower check``), the rule table
  ``rules.RULES``;
* ``live.LiveChecker`` (pure streaming checks);
* ``service.AnalyticsService(settings, bus)`` with ``start()``/``stop()``/``analyze(run_id, folder)``,
  ``app.create_app(service)``; ``mlpower analytics`` runs both until SIGTERM.
"""

"""mlpower.sut_agent: runs the workload on the system under test, in ranging then testing mode.

In-process wiring (what ``mlpower.lab`` calls):

* bus mode: ``AgentService(settings, bus).start()`` ... ``.close()`` (``bus_mode.py``) consumes
  ``RunWorkloadPhase`` on ``command_key("agent", sut, lab=lab)`` and publishes ``WorkloadPhase`` events;
* power-dev client mode: ``run_client_session(ClientOptions(host=..., port=..., out_dir=...),
  parse_workload("builtin:offline"), publish)`` (``powerdev_client.py``) against any power-dev v3
  server, writing ``<out_dir>/<session>/{power,ranging,run_1}``;
* one phase on its own: ``run_phase(workload, mode, log_dir, run_id=..., sut=..., duration_s=...)``.

Workloads: ``builtin:offline|server|singlestream[:cuda]`` (MLPerf LoadGen driving a numpy ResNet,
in a subprocess under ``TZ=UTC``) or any shell command that writes LoadGen logs into
``$MLPOWER_LOADGEN_LOG_DIR`` (also substituted for ``{log_dir}``).
"""

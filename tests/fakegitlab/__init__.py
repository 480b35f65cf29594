"""A fake GitLab coordinator that hands real-format CI jobs to a runner, offline.

It serves the part of GitLab's runner API that gitlab-runner uses to verify and
register, take jobs, stream their traces and report their end, and records everything
the runner sends so tests can assert on traces, final states and timings. Test control
lives under ``/_pipglr/`` and in :mod:`.ctl`.

Standard library only, relative imports only: it runs inside the pipglr image
(``PYTHONPATH=/usr/local/lib/pipglr-test python3 -m fakegitlab serve ...``) and is
imported on the host as ``tests.fakegitlab``.

Modules and the upstream files they mirror:

- :mod:`.payloads` — job specs → ``JobResponse``: gitlab-runner ``common/spec/spec.go``,
  GitLab ``lib/api/entities/ci/job_request/*.rb``, ``app/models/ci/build.rb``.
- :mod:`.records` — job state, trace appends, updates, cancel: GitLab
  ``app/models/commit_status.rb``, ``app/services/ci/append_build_trace_service.rb``,
  ``app/services/ci/update_build_state_service.rb``.
- :mod:`.state` — runners, queue, request log: GitLab ``lib/api/ci/runner.rb``,
  ``lib/api/ci/helpers/job_request.rb``; Workhorse's long poll
  (``workhorse/internal/builds/register.go``).
- :mod:`.ack` — two-phase job commit: ``app/services/ci/register_job_service.rb``,
  ``app/services/ci/update_build_state_service.rb``,
  ``app/workers/ci/retry_stuck_waiting_job_worker.rb``.
- :mod:`.artifacts` — ``artifacts:``/``dependencies:`` of a spec → payload: GitLab
  ``app/presenters/ci/build_runner_presenter.rb``,
  ``lib/api/entities/ci/job_request/{artifacts,dependency}.rb``.
- :mod:`.artifactstore` — artifact upload, storage, download: ``lib/api/ci/runner.rb``,
  ``app/services/ci/job_artifacts/create_service.rb``.
- :mod:`.api` — the HTTP endpoints: ``lib/api/ci/runner.rb``, ``lib/api/ci/helpers/runner.rb``;
  runner side ``network/gitlab.go``, ``network/trace.go``.
- :mod:`.control`, :mod:`.ctl` — test control (no upstream counterpart).
- :mod:`.server`, :mod:`.wire` — HTTP/1.1 plumbing.
"""

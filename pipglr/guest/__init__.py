"""In-image code: one module per service, run as ``python3 -m pipglr.guest COMMAND``.

``setup-podman`` (:mod:`~pipglr.guest.podmansetup`)
    user podman, before the API service: id maps, storage driver, cgroups, subnets,
    the network settings' registries.conf.d drop-in and certs.d.
``carry-over`` (:mod:`~pipglr.guest.carryover`)
    user podman, the API service's first start in an outer run: remove what the last
    run's transient store left, register the storage volume's volumes again.
``check-config PATH [COMMAND...]`` (:mod:`~pipglr.guest.cli`)
    user runner: validate the config.toml secret, then exec COMMAND (the runner).
``prepare-runner SECRET STATE_CONFIG COMMAND...`` (:mod:`~pipglr.guest.cli`)
    user runner, the runner unit: check the secret, write the runner's working copy
    (:mod:`~pipglr.guest.runnerstate`), warn of privileged runners this container
    cannot serve (:mod:`~pipglr.guest.privileged`), exec COMMAND (the runner).
``register [ARGS...]`` (:mod:`~pipglr.guest.register`)
    the register label: ``gitlab-runner register`` into ./config.toml.
``ping`` (:mod:`~pipglr.guest.health`)
    ``GET /_ping`` on the API socket; exit 0 when it answers.
``host-ids-guard`` (:mod:`~pipglr.guest.hostids`)
    root, first: refuse the host's own ids (root without a user namespace) unless
    ``PIPGLR_ALLOW_HOST_IDS=true``; a refusal stops the container (status 78).
``network-setup`` (:mod:`~pipglr.guest.netconfig`)
    root, after the host-ids guard, before the egress guard, the podman setup, the API
    and the runner: this boot's files of the company-network settings (trust bundle,
    mirrors drop-in, certs.d, proxy environment, job settings) in /run/pipglr-net.
``egress-guard`` (:mod:`~pipglr.guest.netguard`)
    root, before the API and the runner: the nftables egress guard, with the network
    settings' mirrors, proxies and login registries opened on their port.
``storage-check`` (:mod:`~pipglr.guest.storagereserve`)
    user podman, every 15 s: keep a reserve, recover a full nested storage.
``evictor`` (:mod:`~pipglr.guest.evictor`)
    user podman, a service: keep the nested storage under its cap, least recently used
    first (order: :mod:`~pipglr.guest.lru`; last uses: :mod:`~pipglr.guest.lastuse`).
``export-env`` (:mod:`~pipglr.guest.evictor`)
    root, before the evictor and the prune: copy their settings from PID 1's environment.
``prune`` (:mod:`~pipglr.guest.prune`)
    user podman, by its timer: remove what finished jobs left, never a running job's.
``storage-report [--json]`` (:mod:`~pipglr.guest.storagereport`)
    user podman: what ``pipglr storage`` prints.
``images-build [--all-due] [--pull] [NAME...]`` (:mod:`~pipglr.guest.maintained`)
    user podman, by ``pipglr-images.timer`` and ``pipglr images build``: build the
    maintained job images that are due (those named: rebuilt), parents first.
``images-list [--json]`` (:mod:`~pipglr.guest.maintainedlist`)
    user podman: what ``pipglr images list`` prints.
``metrics`` (:mod:`~pipglr.guest.metrics`)
    user podman, a service: the Prometheus exporter on ``layout.METRICS_PORT``.
``metrics-facts [--json]`` (:mod:`~pipglr.guest.metricfacts`)
    user podman: the exporter's facts now (``pipglr status --json`` prints them).
``executor config|prepare|run|cleanup|toml`` (:mod:`~pipglr.guest.executor`)
    user runner, run by gitlab-runner's custom executor: the job's containers
    (:mod:`~pipglr.guest.jobcontainer`, :mod:`~pipglr.guest.jobimages`,
    :mod:`~pipglr.guest.jobservices`) and stages (:mod:`~pipglr.guest.jobexec`).
``health`` (:mod:`~pipglr.guest.health`)
    the container's health check (``pipglr quadlet --auto-update``).
:mod:`~pipglr.guest.systemdrun`
    installed as ``systemd-run`` on the API service's PATH (aardvark-dns start).

Errors print one ``pipglr: ...`` line and exit non-zero (78 for config errors).
Standard library plus Debian-packaged libraries only: this package runs in the image.
"""

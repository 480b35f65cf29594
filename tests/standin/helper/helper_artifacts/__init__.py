"""The stand-in helper's ``artifacts-uploader`` and ``artifacts-downloader`` (PIPGLR-TEST-
STANDIN): Python replays of gitlab-runner v18.11.4's commands/helpers/
artifacts_uploader.go and artifacts_downloader.go, run by the ``gitlab-runner-helper``
shim as ``python3 -I -m helper_artifacts COMMAND ARGS...``.

Standard library only and relative imports only: the helper image installs this
package as ``helper_artifacts`` beside the system Python's packages; the unit tests
import it as ``tests.standin.helper.helper_artifacts``.

- :mod:`.commands` — the two commands (flags, retries, exit status).
- :mod:`.network` — ``UploadRawArtifacts`` and ``DownloadArtifacts`` (network/gitlab.go).
- :mod:`.archive` — file selection (file_archiver.go) and the zip format
  (helpers/archives).
- :mod:`.patterns` — doublestar path patterns.
- :mod:`.log` — logrus with the runner's text formatter.
"""

VERSION = "0.0.0-pipglr-standin"

"""Browser backends: search and open behind one async interface (see ``base``)."""

from __future__ import annotations

from toolkits.browser.backends.base import Backend as Backend
from toolkits.browser.backends.base import BackendError as BackendError
from toolkits.browser.backends.base import BackendSession as BackendSession
from toolkits.browser.backends.http import HttpBackend as HttpBackend
from toolkits.browser.backends.recorded import RecordingBackend as RecordingBackend
from toolkits.browser.backends.recorded import ReplayBackend as ReplayBackend

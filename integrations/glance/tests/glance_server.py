"""A real glance-api for the tests: SQLite, the file store, no Keystone, served by gunicorn on 127.0.0.1.

Keystone's place is taken by the `identity` paste filter in glance_test_identity.py, which sets the headers
keystonemiddleware would set, ahead of Glance's own `context` filter.
"""

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

PASTE = """\
[pipeline:glance-api]
pipeline = versionnegotiation identity context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:identity]
paste.filter_factory = glance_test_identity:filter_factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
"""

API_CONF = """\
[DEFAULT]
node_staging_uri = file://{root}/staging
enabled_import_methods = [glance-direct]
log_file = {root}/glance-api.log
debug = true

[database]
# The import thread and the API's request threads share one SQLite file: wait for its lock rather than fail.
connection = sqlite:///{root}/glance.sqlite?timeout=120

[glance_store]
stores = file
default_store = file
filesystem_store_datadir = {root}/store
# Zero chunks become holes: a converted raw image stays sparse in the store.
filesystem_thin_provisioning = true

[image_format]
disk_formats = {disk_formats}

[oslo_concurrency]
lock_path = {root}/locks
"""

IMPORT_CONF = """\
[image_import_opts]
image_import_plugins = [{plugins}]

[imgcustomize]
{options}
"""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class GlanceServer:
    """One deployment: its configuration, database, store and staging area under `root`."""

    def __init__(self, root, disk_formats, plugins, options=None):
        self.root = root
        self.store = os.path.join(root, 'store')
        self.staging = os.path.join(root, 'staging')
        self.log = os.path.join(root, 'glance-api.log')
        for d in (self.store, self.staging, os.path.join(root, 'locks')):
            os.makedirs(d, exist_ok=True)
        with open(os.path.join(root, 'glance-api-paste.ini'), 'w') as f:
            f.write(PASTE)
        with open(os.path.join(root, 'glance-api.conf'), 'w') as f:
            f.write(API_CONF.format(root=root, disk_formats=','.join(disk_formats)))
        self.options = options or {}
        self.configure_plugins(plugins)
        # HERE holds the identity filter; the caller's PYTHONPATH may hold the plugin.
        path = [HERE] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
        self.env = dict(os.environ, OS_GLANCE_CONFIG_DIR=root, PYTHONPATH=os.pathsep.join(path))
        self.process = None
        self.port = None
        self.synced = False

    def configure_plugins(self, plugins):
        """Writes glance-image-import.conf; a running server reads it at its next start."""
        with open(os.path.join(self.root, 'glance-image-import.conf'), 'w') as f:
            f.write(IMPORT_CONF.format(plugins=','.join(plugins), options='\n'.join(
                '%s = %s' % item for item in self.options.items())))

    @property
    def url(self):
        return 'http://127.0.0.1:%d' % self.port

    def start(self):
        bindir = os.path.dirname(sys.executable)
        if not self.synced:
            subprocess.run([os.path.join(bindir, 'glance-manage'), '--config-dir', self.root, 'db_sync'],
                           env=self.env, check=True, capture_output=True)
            # Write-ahead logging (kept in the file): the import thread's many small writes (the task's "Copied
            # N MiB" for every chunk it stores) no longer wait for the client's polls to finish reading, which
            # in rollback-journal mode failed a long import with "database is locked".
            with sqlite3.connect(os.path.join(self.root, 'glance.sqlite')) as db:
                db.execute('PRAGMA journal_mode=WAL')
            self.synced = True
        self.port = free_port()
        # One worker: the import tasks run in its thread pool, next to the SQLite database.
        self.process = subprocess.Popen(
            [os.path.join(bindir, 'gunicorn'), '--bind', '127.0.0.1:%d' % self.port, '--workers', '1',
             # A client polling every few seconds keeps its connection: with gunicorn's 2 s default it would
             # race the server closing it and read "connection reset".
             '--threads', '4', '--timeout', '900', '--keep-alive', '75',
             '--error-logfile', os.path.join(self.root, 'gunicorn.log'),
             'glance.wsgi.api:application'],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('glance-api exited with %s; see %s and %s/gunicorn.log'
                                   % (self.process.returncode, self.log, self.root))
            try:
                urllib.request.urlopen(self.url + '/versions', timeout=5).read()
                return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError('glance-api did not answer on %s within 120 s; see %s' % (self.url, self.log))

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_text(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ''

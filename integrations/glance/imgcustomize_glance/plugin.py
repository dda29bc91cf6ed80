"""An image import plugin for Glance that hands the staged image to imgcustomize.

For each import it runs `imgcustomize inspect` (headers only: the safety checks and the format), refuses an unsafe
image or one that is not what the user claimed, sets the introspected properties, optionally runs a profile, and
converts to the configured format with imgcustomize's parallel engine. It takes the place of Glance's own
`image_conversion` plugin in `[image_import_opts] image_import_plugins`.
"""

import json
import os
import subprocess

from oslo_config import cfg
from oslo_log import log as logging
from taskflow.patterns import linear_flow as lf
from taskflow import task

from glance.common import exception

LOG = logging.getLogger(__name__)

imgcustomize_opts = [
    cfg.StrOpt('binary', default='imgcustomize',
               help='The imgcustomize executable: a path, or a name looked up on the PATH of glance-api.'),
    cfg.StrOpt('output_format', default='raw', choices=('raw', 'qcow2'),
               help='Format every imported image is stored in (raw for Ceph). An ISO is stored as it is.'),
    cfg.StrOpt('profile',
               help='An imgcustomize profile (see `imgcustomize profiles`) run on every image before it is '
                    'converted; it also sets os_distro, os_version, os_name, os_type and architecture from the '
                    'guest. Unset: no profile, no guest inspection.'),
    cfg.IntOpt('timeout', default=3600, min=1,
               help='Seconds one imgcustomize run may take before the import fails.'),
]

CONF = cfg.CONF
CONF.register_opts(imgcustomize_opts, group='imgcustomize')


def list_opts():
    return [('imgcustomize', imgcustomize_opts)]


# The formats imgcustomize's own conversion engine reads (a VMDK that passed the safety checks is a single-file
# monolithicSparse or streamOptimized one, which it reads); the others go through qemu-img convert.
ENGINE_FORMATS = ('qcow2', 'raw', 'vmdk')


class _Refused(Exception):
    """What went wrong, worded for the user who imported the image."""


class _Imgcustomize(task.Task):

    default_provides = 'file_path'

    def __init__(self, task_id, task_type, action_wrapper, stores):
        self.task_id = task_id
        self.action_wrapper = action_wrapper
        self.stores = stores
        self.image_id = action_wrapper.image_id
        self.src_path = None
        # Files this task wrote; removed when the import fails, here or in a later task.
        self.written = []
        super().__init__(name='%s-Imgcustomize-%s' % (task_type, task_id))

    def execute(self, file_path, **kwargs):
        with self.action_wrapper as action:
            try:
                return self._execute(action, file_path)
            except _Refused as e:
                LOG.error('Import of image %s refused: %s', self.image_id, e)
                # UploadException is what Glance puts in the task's message; anything else reads "Internal Error".
                raise exception.UploadException('Image %s: %s. Nothing was stored; the image stays queued.'
                                                % (self.image_id, e))

    def _execute(self, action, file_path):
        self.src_path = file_path.split('file://')[-1]
        claimed = action.image_disk_format
        accepted = list(CONF.image_format.disk_formats)
        inspection = self._inspect(self.src_path, accepted)
        detected = inspection['glance']['disk_format']
        if detected != claimed:
            raise _Refused('it was imported with disk_format %s but its content is %s; create the image again '
                           'with --disk-format %s and import it again' % (claimed, detected, detected))

        action.set_image_attribute(virtual_size=inspection['virtual-size'])
        properties = {key: inspection['glance'][key] for key in ('vmware_disktype', 'vmware_adaptertype')
                      if key in inspection['glance']}

        path, qemu_format = self.src_path, inspection['format']
        if detected == 'iso':
            # An ISO is booted as a CD-ROM: it keeps its format and its bits.
            action.set_image_extra_properties(properties)
            return file_path
        if CONF.imgcustomize.profile:
            path, qemu_format, guest = self._apply(path, accepted)
            properties.update(guest)
        action.set_image_extra_properties(properties)

        target = CONF.imgcustomize.output_format
        if qemu_format != target:
            converted = '%s.%s' % (self.src_path, target)
            self.written.append(converted)
            self._convert(path, qemu_format, target, converted)
            path = converted
        if path == self.src_path:
            return file_path

        size = os.stat(path).st_size
        action.set_image_attribute(disk_format=target, container_format='bare', size=size)
        LOG.info('Image %s: converted from %s to %s, %d bytes', self.image_id, detected, target, size)
        for intermediate in [self.src_path] + [p for p in self.written if p != path]:
            _remove(intermediate)
        return 'file://%s' % path

    def _inspect(self, path, accepted):
        """The JSON report of `imgcustomize inspect`; refuses an unsafe image or a format Glance does not accept."""
        result = self._run(['inspect', '--json', '--glance', '--formats', ','.join(accepted), path], 'inspect',
                           check=False)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise _Refused('imgcustomize could not inspect it: %s' % _message(result.stderr))
        safety = report.get('safety', {})
        if result.returncode != 0 or not safety.get('safe'):
            problems = '; '.join('%s (%s)' % (v['message'], v['hint']) for v in safety.get('violations', []))
            raise _Refused('refused by imgcustomize: %s' % (problems or _message(result.stderr)))
        return report

    def _convert(self, path, qemu_format, target, output):
        if qemu_format in ENGINE_FORMATS:
            # --no-fsync: the staged output is read into the store at once and then deleted, as Glance's own plugin
            # leaves qemu-img's output unflushed.
            self._run(['convert', '-q', '--no-fsync', '-f', qemu_format, '-O', target, path, output], 'convert')
            return
        # imgcustomize's engine does not read this format yet; qemu-img does, and it is handed only an image that
        # imgcustomize inspected and found safe, with the format imgcustomize detected.
        command = ['qemu-img', 'convert', '-f', qemu_format, '-O', target, path, output]
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=CONF.imgcustomize.timeout)
        except subprocess.TimeoutExpired:
            raise _Refused('qemu-img convert took more than %d s; the operator raises [imgcustomize] timeout'
                           % CONF.imgcustomize.timeout)
        if result.returncode != 0:
            raise _Refused('qemu-img convert failed: %s' % _message(result.stderr))

    def _apply(self, path, accepted):
        """Runs the profile into a new file; returns it, its format and the guest's properties."""
        output = '%s.imgcustomize' % self.src_path
        self.written.append(output)
        result = self._run(['apply', CONF.imgcustomize.profile, path, '--output', output, '--json',
                            '--formats', ','.join(accepted)], 'apply --json', check=False)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            report = {}
        if result.returncode != 0:
            error = report.get('error') or {}
            message = ('%s (%s)' % (error['message'], error.get('hint'))) if 'message' in error else None
            raise _Refused('profile %s failed: %s' % (CONF.imgcustomize.profile, message or _message(result.stderr)))
        written = self._run(['inspect', '--json', output], 'inspect')
        return output, json.loads(written.stdout)['format'], _guest_properties(report.get('os') or {})

    def _run(self, arguments, what, check=True):
        command = [CONF.imgcustomize.binary] + arguments
        try:
            result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=CONF.imgcustomize.timeout)
        except FileNotFoundError:
            raise _Refused('imgcustomize is not installed at %r; the operator sets [imgcustomize] binary in '
                           'glance-image-import.conf' % CONF.imgcustomize.binary)
        except subprocess.TimeoutExpired:
            raise _Refused('imgcustomize %s took more than %d s; the operator raises [imgcustomize] timeout'
                           % (what, CONF.imgcustomize.timeout))
        if check and result.returncode != 0:
            raise _Refused('imgcustomize %s failed: %s' % (what, _message(result.stderr)))
        return result

    def revert(self, result=None, **kwargs):
        for path in self.written:
            _remove(path)
        # Nothing was imported to any store: they all failed, and the image waits for another import.
        with self.action_wrapper as action:
            action.set_image_attribute(status='queued')
            if self.stores:
                action.remove_importing_stores(self.stores)
                action.add_failed_stores(self.stores)
        if self.src_path:
            _remove(self.src_path)


def _guest_properties(facts):
    """The properties `imgcustomize inspect --os --glance` prints, from the guest facts of `apply --json`."""
    properties = {'architecture': facts.get('arch'), 'os_distro': facts.get('distro'),
                  'os_name': facts.get('osinfo'), 'os_type': facts.get('type')}
    if 'major-version' in facts:
        properties['os_version'] = '%s.%s' % (facts['major-version'], facts.get('minor-version', 0))
    return {key: value for key, value in properties.items() if value}


def _message(text):
    """What a tool said on stderr, on one line (imgcustomize's error and its hint line)."""
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    lines = [line.removeprefix('Error: ').removeprefix('imgcustomize: ') for line in lines]
    return '; '.join(lines) or 'no message'


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def get_flow(**kwargs):
    """The flow Glance's import machinery runs, between staging and the upload to the stores."""
    return lf.Flow(kwargs.get('task_type')).add(
        _Imgcustomize(kwargs.get('task_id'), kwargs.get('task_type'), kwargs.get('action_wrapper'),
                      kwargs.get('backend', [])))

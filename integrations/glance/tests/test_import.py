"""Imports through a real glance-api with the imgcustomize plugin, checked as a user would check them: the task's
status and message, the image's properties, and the stored file itself with qemu-img."""

import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
from glanceclient import Client

from glance_server import GlanceServer

IMGCUSTOMIZE = os.environ['IMGCUSTOMIZE']
FIXTURES = os.environ['IMGCUSTOMIZE_FIXTURES']
GLANCE_CLI = os.path.join(os.path.dirname(sys.executable), 'glance')


@pytest.fixture(scope='module')
def glance(tmp_path_factory):
    """Glance with its default disk_formats, converting every import to raw."""
    server = GlanceServer(str(tmp_path_factory.mktemp('glance')),
                          disk_formats=['ami', 'ari', 'aki', 'vhd', 'vhdx', 'vmdk', 'raw', 'qcow2', 'vdi', 'iso',
                                        'ploop'],
                          plugins=['imgcustomize'], options={'binary': IMGCUSTOMIZE, 'output_format': 'raw'})
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope='module')
def raw_and_iso_glance(tmp_path_factory):
    """A deployment that accepts raw and ISO images only."""
    server = GlanceServer(str(tmp_path_factory.mktemp('glance-raw-iso')), disk_formats=['raw', 'iso'],
                          plugins=['imgcustomize'], options={'binary': IMGCUSTOMIZE})
    try:
        yield server.start()
    finally:
        server.stop()


def run(*command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def import_image(server, path, disk_format, name):
    """`glance image-create-via-import --import-method glance-direct`, then waits for the import task to end.

    Returns the image and its task as glanceclient gives them."""
    # The glance CLI refuses --file when stdin is not a terminal, unless stdin is closed.
    result = subprocess.run(
        [GLANCE_CLI, '--os-image-url', server.url, '--os-auth-token', 'unused', 'image-create-via-import',
         '--name', name, '--disk-format', disk_format, '--container-format', 'bare',
         '--import-method', 'glance-direct', '--file', path],
        capture_output=True, text=True, preexec_fn=lambda: os.close(0))
    assert result.returncode == 0, result.stdout + result.stderr
    client = Client('2', endpoint=server.url, token='unused')
    image = next(i for i in client.images.list() if i.name == name)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        # glanceclient's get_associated_image_tasks asks /versions for v2.12, which Glance lists only with
        # multiple stores enabled; the call itself is there in every deployment.
        tasks = client.http_client.get('/v2/images/%s/tasks' % image.id)[1]['tasks']
        if tasks and tasks[0]['status'] in ('success', 'failure'):
            return client.images.get(image.id), tasks[0]
        time.sleep(2)
    pytest.fail('the import of %s did not finish within 600 s; see %s' % (name, server.log))


def assert_succeeded(server, task):
    """The task succeeded; if not, the message says why, with what glance-api logged at ERROR for it (Glance puts
    only "Internal Error" in the task when the failure is not an upload error)."""
    if task['status'] == 'success':
        return
    lines = server.log_text().splitlines()
    errors = [i for i, line in enumerate(lines) if ' ERROR ' in line and 'stevedore' not in line]
    excerpt = '\n'.join(lines[max(0, errors[0] - 5):errors[-1] + 40][-200:]) if errors else '(nothing logged at ERROR)'
    pytest.fail('the import task ended with %s: %s\nglance-api.log (%s):\n%s'
                % (task['status'], task['message'], server.log, excerpt))


def stored_file(server, image):
    return os.path.join(server.store, image.id)


def qemu_info(path):
    return json.loads(run('qemu-img', 'info', '--output=json', path))


def sha512(path):
    digest = hashlib.sha512()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            digest.update(chunk)
    return digest.hexdigest()


def assert_stored_as_raw(server, image, source, source_format):
    stored = stored_file(server, image)
    assert image.status == 'active'
    assert image.disk_format == 'raw' and image.container_format == 'bare'
    assert qemu_info(stored)['format'] == 'raw'
    assert image.size == os.stat(stored).st_size
    assert image.virtual_size == qemu_info(source)['virtual-size']
    assert image.checksum and image.os_hash_algo == 'sha512'
    # Same guest-visible content, sector by sector.
    run('qemu-img', 'compare', '-f', source_format, '-F', 'raw', source, stored)
    assert os.listdir(server.staging) == []


def assert_nothing_stored(server, image):
    """No file of this image in the store, none (not even a partial conversion) in the staging area."""
    assert image.status == 'queued' and image.size is None and image.checksum is None
    assert [f for f in os.listdir(server.store) if f.startswith(image.id)] == []
    assert os.listdir(server.staging) == []


def test_qcow2_fixture_becomes_raw(glance):
    source = os.path.join(FIXTURES, 'rhel6.qcow2')
    image, task = import_image(glance, source, 'qcow2', 'rhel6')
    assert_succeeded(glance, task)
    assert_stored_as_raw(glance, image, source, 'qcow2')


def test_stream_optimized_vmdk_gets_its_vmware_properties(glance, tmp_path):
    raw = tmp_path / 'disk.raw'
    with open(raw, 'wb') as f:
        f.truncate(256 << 20)
        f.seek(1 << 20)
        f.write(os.urandom(8 << 20))
        f.seek(200 << 20)
        f.write(b'imgcustomize' * 100000)
    vmdk = str(tmp_path / 'disk.vmdk')
    run('qemu-img', 'convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized,adapter_type=buslogic',
        str(raw), vmdk)
    image, task = import_image(glance, vmdk, 'vmdk', 'stream-optimized')
    assert_succeeded(glance, task)
    # Only the plugin sets these: proof that it ran.
    assert image.vmware_disktype == 'streamOptimized'
    assert image.vmware_adaptertype == 'busLogic'
    assert_stored_as_raw(glance, image, vmdk, 'vmdk')
    # The hash Glance recorded is the converted file's (the fixture's 4 GiB would take too long to hash here).
    assert image.os_hash_value == sha512(stored_file(glance, image))


def test_backing_file_naming_a_host_file_is_refused_unread(glance, tmp_path):
    secret = tmp_path / 'host-secret.raw'
    secret.write_bytes(b'a file on the Glance host that no image may read\n' * 1000)
    # Under relatime (and strictatime) a read moves an atime that is older than the mtime.
    os.utime(secret, (946684800, time.time()))
    atime = os.stat(secret).st_atime
    image_path = str(tmp_path / 'with-backing.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', '-b', str(secret), '-F', 'raw', image_path)

    image, task = import_image(glance, image_path, 'qcow2', 'with-backing')
    assert task['status'] == 'failure'
    assert image.id in task['message']
    assert 'backing file' in task['message'] and str(secret) in task['message']
    assert 'Nothing was stored' in task['message']
    assert_nothing_stored(glance, image)
    assert os.stat(secret).st_atime == atime, 'the backing file was read'
    # The check above can see a read: reading the file now moves its atime.
    secret.read_bytes()
    assert os.stat(secret).st_atime != atime


def test_content_must_be_the_claimed_format(glance, tmp_path):
    path = str(tmp_path / 'small.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M')
    image, task = import_image(glance, path, 'raw', 'claimed-raw')
    assert task['status'] == 'failure'
    assert 'disk_format raw but its content is qcow2' in task['message']
    assert '--disk-format qcow2' in task['message']
    assert_nothing_stored(glance, image)


def test_iso_is_stored_as_it_is_where_only_raw_and_iso_are_accepted(raw_and_iso_glance, tmp_path):
    tree = tmp_path / 'tree'
    tree.mkdir()
    (tree / 'README.TXT').write_text('an install medium\n')
    iso = str(tmp_path / 'medium.iso')
    run('xorriso', '-as', 'mkisofs', '-quiet', '-V', 'MEDIUM', '-o', iso, str(tree))
    image, task = import_image(raw_and_iso_glance, iso, 'iso', 'medium')
    assert_succeeded(raw_and_iso_glance, task)
    assert image.disk_format == 'iso' and image.status == 'active'
    stored = stored_file(raw_and_iso_glance, image)
    assert sha512(stored) == sha512(iso)
    assert os.listdir(raw_and_iso_glance.staging) == []


def test_qcow2_is_refused_where_only_raw_and_iso_are_accepted(raw_and_iso_glance, tmp_path):
    path = str(tmp_path / 'disguised.qcow2')
    run('qemu-img', 'create', '-q', '-f', 'qcow2', path, '64M')
    image, task = import_image(raw_and_iso_glance, path, 'raw', 'disguised')
    assert task['status'] == 'failure'
    assert image.id in task['message'] and 'qcow2' in task['message']
    assert_nothing_stored(raw_and_iso_glance, image)


def test_create_args_go_to_the_client_as_they_are(glance, tmp_path):
    """`inspect --create-args`, for users who upload by hand: its lines are the client's arguments, unquoted."""
    vmdk = str(tmp_path / 'by-hand.vmdk')
    run('qemu-img', 'create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized,adapter_type=lsilogic', vmdk, '3G')
    arguments = run(IMGCUSTOMIZE, 'inspect', '--create-args', vmdk).splitlines()
    result = subprocess.run(
        [GLANCE_CLI, '--os-image-url', glance.url, '--os-auth-token', 'unused', 'image-create', '--name', 'by-hand',
         '--file', vmdk] + arguments, capture_output=True, text=True, preexec_fn=lambda: os.close(0))
    assert result.returncode == 0, result.stdout + result.stderr
    client = Client('2', endpoint=glance.url, token='unused')
    image = next(i for i in client.images.list() if i.name == 'by-hand')
    assert image.status == 'active'
    assert (image.disk_format, image.container_format, image.min_disk) == ('vmdk', 'bare', 3)
    assert (image.vmware_disktype, image.vmware_adaptertype) == ('streamOptimized', 'lsiLogic')


def test_a_conversion_that_fails_midway_leaves_no_partial_file(glance, tmp_path):
    """A qcow2 whose headers are sound but whose data was cut off: the inspection passes, the conversion fails."""
    raw, path = tmp_path / 'data.raw', str(tmp_path / 'cut.qcow2')
    raw.write_bytes(os.urandom(64 << 20))
    run('qemu-img', 'convert', '-q', '-f', 'raw', '-O', 'qcow2', str(raw), path)
    os.truncate(path, 20 << 20)
    image, task = import_image(glance, path, 'qcow2', 'cut-off')
    assert task['status'] == 'failure'
    assert image.id in task['message'] and 'beyond the end of the file' in task['message']
    assert_nothing_stored(glance, image)


@pytest.fixture(scope='module')
def profile_glance(tmp_path_factory):
    """A deployment that prepares every import with the rhel6-cloud profile before converting it to raw."""
    server = GlanceServer(str(tmp_path_factory.mktemp('glance-profile')), disk_formats=['raw', 'qcow2'],
                          plugins=['imgcustomize'],
                          options={'binary': IMGCUSTOMIZE, 'output_format': 'raw', 'profile': 'rhel6-cloud'})
    try:
        yield server.start()
    finally:
        server.stop()


def guest_file(image, path):
    """A file of a stored image, read by libguestfs (software emulation: KVM hangs on the machines this runs on)."""
    environment = dict(os.environ, LIBGUESTFS_BACKEND_SETTINGS='force_tcg')
    return subprocess.run(['virt-cat', '--format=raw', '-a', image, path], check=True, capture_output=True,
                          text=True, env=environment).stdout


def test_a_profile_prepares_the_guest_and_names_its_os(profile_glance):
    source = os.path.join(FIXTURES, 'rhel6.qcow2')
    image, task = import_image(profile_glance, source, 'qcow2', 'rhel6-profile')
    assert_succeeded(profile_glance, task)
    stored = stored_file(profile_glance, image)
    assert image.disk_format == 'raw' and qemu_info(stored)['format'] == 'raw'
    assert image.size == os.stat(stored).st_size
    # What `imgcustomize inspect --os --glance` says of the guest, as Glance's properties.
    assert (image.os_distro, image.os_type, image.architecture) == ('rhel', 'linux', 'x86_64')
    assert image.os_version.startswith('6.')
    assert image.os_name.startswith('rhel6')
    # The profile ran: the guide's NOZEROCONF=yes is in the stored guest.
    assert 'NOZEROCONF=yes' in guest_file(stored, '/etc/sysconfig/network')
    assert os.listdir(profile_glance.staging) == []
